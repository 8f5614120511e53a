"""Sealing of stored secrets.

SigV4 needs the plaintext secret of an access key to recompute signatures, so secrets cannot be
hashed; they are encrypted (Fernet: AES-128-CBC + HMAC-SHA256) under a deployment key that lives
outside the database: `CARGOBAY_SECRET_KEY`, or `<data-dir>/secret.key` written 0600.

Beside each sealed secret the database keeps a keyed verifier (HMAC-SHA256, standard library),
so HTTP Basic checks never open the secret. `cryptography` is imported only by `seal` and
`open`: serving processes that only check Basic credentials never load it (about 6 MiB each).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

# Domain separation: the verifier key is derived from, never equal to, the Fernet key.
_VERIFIER_LABEL = b"cargobay access-key verifier v1"


def decode_key(key: bytes) -> bytes:
    """The 32 raw bytes of a Fernet key; ValueError otherwise. Accepts exactly what Fernet
    accepts, without importing it."""
    try:
        raw = base64.urlsafe_b64decode(key)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raw = b""
    if len(raw) != 32:
        raise ValueError("the deployment key must be 32 url-safe base64-encoded bytes")
    return raw


def new_key() -> bytes:
    """A fresh deployment key; the same format as `Fernet.generate_key()`."""
    return base64.urlsafe_b64encode(os.urandom(32))


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._verifier_key = hmac.new(decode_key(key), _VERIFIER_LABEL, hashlib.sha256).digest()
        self._fernet: Fernet | None = None

    def _cipher(self) -> Fernet:
        """The Fernet object, built (and `cryptography` imported) on first seal or open."""
        if self._fernet is None:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(self._key)
        return self._fernet

    def seal(self, plaintext: str) -> str:
        return self._cipher().encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._cipher().decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be opened with this deployment key") from None

    def verifier(self, secret: str) -> str:
        """A keyed digest of a secret (hex, 64 characters), stored so that checking a presented
        secret needs no decryption. Generated secrets are 40 random characters, so a fast keyed
        hash is enough; the key keeps a stolen database from confirming guesses offline."""
        return hmac.new(self._verifier_key, secret.encode(), hashlib.sha256).hexdigest()


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable only by its owner (0600), refusing to follow or reuse one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_box(key_setting: str, data_dir: Path) -> SecretBox:
    """The deployment's SecretBox, creating `<data-dir>/secret.key` on first use. A bad
    `CARGOBAY_SECRET_KEY` fails here, at start-up, though Fernet is only loaded later."""
    if key_setting:
        try:
            return SecretBox(key_setting.encode())
        except ValueError:
            raise ValueError("CARGOBAY_SECRET_KEY must be a 32-byte url-safe base64 key") from None
    path = data_dir / "secret.key"
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        key = new_key()
        try:
            write_private(path, key + b"\n")
        except FileExistsError:  # another process won the race; use its key
            key = path.read_bytes().strip()
    return SecretBox(key)
