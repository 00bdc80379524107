"""The centre's Ed25519 signing key, which signs evidence bundles (centre/evidence.py): kept in
STATE_DIR/signing/centre-ed25519.pem (folder 0700, file 0600, unencrypted PKCS8 PEM), made on
first use and never printed or logged. What the centre publishes, and a verifier pins, is the
raw 32-byte public key (64 hex digits) and its fingerprint.

The key is made once: two processes that both find it missing each write their own to a
temporary file, and only the first to link it into place wins; the other loads the winner's.
A key file that is unreadable, malformed, not Ed25519 or readable by others is refused, never
replaced: bundles already signed with it must go on verifying.
"""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

from .errors import EvidenceError

KEY_FOLDER = "signing"
KEY_FILE = "centre-ed25519.pem"
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64
_FINGERPRINT_BYTES = 16  # of the public key's SHA-256: 128 bits, read aloud in 8 groups


def fingerprint(public_key: bytes) -> str:
    """The first 16 bytes of SHA-256(public key) as colon-separated groups of 4 hex digits,
    e.g. "3f0a:91c2:..." (what an operator compares on the phone or in a letter)."""
    digest = hashlib.sha256(public_key).hexdigest()[:2 * _FINGERPRINT_BYTES]
    return ":".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def signature_ok(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """Whether `signature` is the holder of `public_key`'s Ed25519 signature over `data`
    (False, never an exception, for a key or signature of the wrong length or form)."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    """The centre's key pair; the private half never appears in repr or str."""

    private: Ed25519PrivateKey = field(repr=False)
    path: str

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature over `data`."""
        return self.private.sign(data)


def key_path(state_dir: Path) -> Path:
    return state_dir / KEY_FOLDER / KEY_FILE


def signing_key(state_dir: Path) -> SigningKey:
    """The centre's signing key from its state folder, made there on first use; EvidenceError
    if the state folder is missing or the key file cannot be used as it is."""
    if not state_dir.is_dir():
        raise EvidenceError(str(state_dir), "no such state folder: give the centre's"
                            " --state-dir")
    folder = state_dir / KEY_FOLDER
    path = folder / KEY_FILE
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        if not path.exists():
            _create(folder, path)
    except OSError as exc:
        raise EvidenceError(str(path), f"cannot make the signing key: {exc.strerror or exc}"
                            ) from exc
    return _load(path)


def _create(folder: Path, path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    fd, temp = tempfile.mkstemp(prefix=".new-", dir=folder)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)  # fails if another process linked its key first: keep that one
        except FileExistsError:
            pass
    finally:
        os.unlink(temp)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the new name survives a power cut with the key's bytes
    finally:
        os.close(dir_fd)


def _load(path: Path) -> SigningKey:
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise EvidenceError(str(path), "the signing key is not a regular file")
        if info.st_mode & 0o077:
            raise EvidenceError(str(path), "the signing key is readable by others: chmod 600"
                                " it, and replace it (publish the new key) if anyone may have"
                                " copied it")
        pem = path.read_bytes()
    except OSError as exc:
        raise EvidenceError(str(path), f"cannot read the signing key: {exc.strerror or exc}"
                            ) from exc
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        # Not the library's message: it could quote the file.
        raise EvidenceError(str(path), "the signing key file is not an unencrypted PKCS8 PEM"
                            " key; restore it from the backup") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise EvidenceError(str(path), "the signing key is not an Ed25519 key")
    return SigningKey(private, str(path))
