"""Version-2 segments (`crypto.layout`): sealed one by one, out of order, possibly again.

A chunked upload into a KMS repository is staged in the blob's final layout, so completing it
only seals the last segment instead of re-encrypting the blob (`storage.staging`). Its full
segments are sealed as PATCHes arrive; an interrupted PATCH is retried at the same offset with
other bytes, possibly, so a segment's nonce cannot be derived from its index as in version 1
(reusing a GCM nonce with other plaintext would leak the authentication key): each segment
stores a random 12-byte nonce, and its index and flag are bound as associated data:

    segment = nonce || AES-256-GCM(key, nonce, plaintext, aad)
    aad     = header || index u32 || flag u8 [|| final_aad]

`flag` is MIDDLE, FINAL (the last segment, which also binds `final_aad`: the blob's digest,
known only at completion) or TAIL (a staged partial segment, never part of a committed blob).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cargobay.crypto.layout import KEY_SIZE, NONCE_SIZE, TAG_SIZE, StreamError

MIDDLE, FINAL, TAIL = 0, 1, 2
OVERHEAD = NONCE_SIZE + TAG_SIZE
_HAS_INTO = hasattr(AESGCM, "encrypt_into")


def aad(header: bytes, index: int, flag: int, extra: bytes = b"") -> bytes:
    return header + index.to_bytes(4, "big") + bytes((flag,)) + extra


class SegmentSealer:
    """Seals and opens version-2 segments of one blob (its data key and encoded header)."""

    def __init__(self, key: bytes, header: bytes, segment_size: int) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("the data key must be 32 bytes (AES-256)")
        self.aead = AESGCM(key)
        self.header = header
        self.segment_size = segment_size

    def seal_middle(self, data: bytes | bytearray | memoryview, first: int) -> bytearray:
        """Full non-final segments `first`, `first + 1`, ... for `data` (a whole number of
        segments), sealed into one buffer."""
        size = self.segment_size
        count, rest = divmod(len(data), size)
        assert not rest, "only whole segments"
        sealed = size + OVERHEAD
        out = bytearray(count * sealed)
        target, view = memoryview(out), memoryview(data)
        for i in range(count):
            at = i * sealed
            nonce = os.urandom(NONCE_SIZE)
            target[at : at + NONCE_SIZE] = nonce
            piece = view[i * size : (i + 1) * size]
            associated = aad(self.header, first + i, MIDDLE)
            if _HAS_INTO:
                self.aead.encrypt_into(
                    nonce, piece, associated, target[at + NONCE_SIZE : at + sealed]
                )
            else:  # cryptography < 46
                target[at + NONCE_SIZE : at + sealed] = self.aead.encrypt(nonce, piece, associated)
        return out

    def seal(self, data: bytes | memoryview, index: int, flag: int, extra: bytes = b"") -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self.aead.encrypt(nonce, data, aad(self.header, index, flag, extra))

    def open(self, sealed: bytes | memoryview, index: int, flag: int, extra: bytes = b"") -> bytes:
        """One segment's plaintext; StreamError unless it was sealed as exactly this."""
        if len(sealed) < OVERHEAD:
            raise StreamError(f"segment {index} is cut")
        view = memoryview(sealed)
        try:
            return self.aead.decrypt(
                view[:NONCE_SIZE], view[NONCE_SIZE:], aad(self.header, index, flag, extra)
            )
        except InvalidTag:
            raise StreamError(f"segment {index} failed authentication") from None
