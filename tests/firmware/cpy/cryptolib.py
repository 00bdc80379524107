"""MicroPython's builtin `cryptolib.aes` (ECB mode) for running the firmware on CPython."""
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_ECB = 1


class aes:  # noqa: N801 - MicroPython's name
    def __init__(self, key: bytes, mode: int) -> None:
        if mode != _ECB:
            raise ValueError("only ECB is used by the firmware")
        self._enc = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()

    def encrypt(self, block: bytes) -> bytes:
        return self._enc.update(bytes(block))
