"""Seals a frame for an alarm advert burst: AES-128-CTR, so an observer learns nothing.

Imported only when an alarm has to go out without a connection. The advert payload (27 bytes)
is iv(4) || AES-CTR(k_adv, iv)(kind, body bytes 6-17, host tag bytes 4-5, centre tag), iv being
the host tag's first four bytes (a synthetic IV: unique because the tag covers the never-reused
sequence number). The version and button id are left out and the host tag's last 2 bytes: a
legacy advert has room for no more. The host decrypts with each of its buttons' keys, puts the
version and button id back and checks 6 bytes of the host tag.
"""
import cryptolib

from micropython import const

from frame import BODY_LEN, FRAME_LEN, TAG_LEN, derive

PAYLOAD_LEN = const(27)
COMPANY_ID = const(0xFFFF)
_IV_LEN = const(4)
_HOST_TAG_LEN = const(6)  # of the host tag's 8 bytes, the burst carries 6
_ECB = const(1)


class BurstSealer:
    """Turns frames into encrypted advert payloads for one button key."""

    def __init__(self, key):
        self._key = derive(key, b"msa1 adv")[:16]
        self._block = bytearray(16)

    def seal(self, frame):
        """The 27-byte advert payload for a 34-byte frame."""
        plain = (bytes(frame[1:2]) + bytes(frame[6:BODY_LEN])
                 + bytes(frame[BODY_LEN + _IV_LEN:BODY_LEN + _HOST_TAG_LEN])
                 + bytes(frame[BODY_LEN + TAG_LEN:FRAME_LEN]))
        out = bytearray(PAYLOAD_LEN)
        iv = frame[BODY_LEN:BODY_LEN + _IV_LEN]
        out[0:_IV_LEN] = iv
        aes = cryptolib.aes(self._key, _ECB)
        block = self._block
        for i in range(len(plain)):
            if i % 16 == 0:
                for j in range(16):
                    block[j] = 0
                block[0:_IV_LEN] = iv
                block[15] = i // 16
                stream = aes.encrypt(block)
            out[_IV_LEN + i] = plain[i] ^ stream[i % 16]
        return out


def advert(payload):
    """Advertising data carrying a sealed payload: one manufacturer-specific AD structure."""
    return bytes((len(payload) + 3, 0xFF, COMPANY_ID & 0xFF, COMPANY_ID >> 8)) + bytes(payload)
