"""Sealing of stored secrets.

SigV4 needs the plaintext secret of an access key to recompute signatures, so secrets cannot be
hashed; they are encrypted (Fernet: AES-128-CBC + HMAC-SHA256) under a deployment key that lives
outside the database: `CARGOBAY_SECRET_KEY`, or `<data-dir>/secret.key` written 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be opened with this deployment key") from None


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable only by its owner (0600), refusing to follow or reuse one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_box(key_setting: str, data_dir: Path) -> SecretBox:
    """The deployment's SecretBox, creating `<data-dir>/secret.key` on first use."""
    if key_setting:
        try:
            return SecretBox(key_setting.encode())
        except ValueError:
            raise ValueError("CARGOBAY_SECRET_KEY must be a 32-byte url-safe base64 key") from None
    path = data_dir / "secret.key"
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        key = Fernet.generate_key()
        try:
            write_private(path, key + b"\n")
        except FileExistsError:  # another process won the race; use its key
            key = path.read_bytes().strip()
    return SecretBox(key)
