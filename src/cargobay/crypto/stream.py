"""Segmented authenticated encryption for blobs at rest (the STREAM construction).

A blob is encrypted as a header followed by fixed-size segments, each sealed on its own with
AES-256-GCM, so a Range read decrypts only the segments it touches. Each segment's 12-byte nonce
is a per-blob random prefix (7 bytes), the segment index (4 bytes, big-endian) and a final flag
(1 byte: 1 on the last segment only), as in Hoang-Reyhanitabar-Rogaway-Vizar's STREAM that
age and Tink use. The index in the nonce makes reordering fail; the flag makes truncation at a
segment boundary fail (the new last segment was not sealed as final); the header, bound into
every segment as associated data, makes swapping segments between blobs or editing the header
fail even under one data key. Any failure raises `StreamError`: wrong bytes are never returned.

The layout (header, segments, offsets) is in `crypto.layout`. Every segment holds
`segment_size` plaintext bytes except the last, which holds 1..S (0 only
for the empty blob, which is one empty final segment). `key_ref` is opaque to this module:
the envelope layer stores the wrapped data key there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cargobay.crypto import segments
from cargobay.crypto.layout import (
    DEFAULT_SEGMENT_SIZE,
    FIXED_SIZE,
    KEY_SIZE,
    MAGIC,
    MAX_SEGMENT_SIZE,
    MAX_SEGMENTS,
    MIN_SEGMENT_SIZE,
    NONCE_SIZE,
    PREFIX_SIZE,
    TAG_SIZE,
    VERSION,
    Header,
    RangePlan,
    StreamError,
    ciphertext_size,
    header_length,
    parse_header,
    plaintext_size,
    plan_range,
    segment_count,
    segment_offset,
)
from cargobay.crypto.layout import nonce as _nonce

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "FIXED_SIZE",
    "KEY_SIZE",
    "MAGIC",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "PREFIX_SIZE",
    "TAG_SIZE",
    "VERSION",
    "Header",
    "RangePlan",
    "RangeReader",
    "StreamDecryptor",
    "StreamEncryptor",
    "StreamError",
    "_nonce",
    "ciphertext_size",
    "decrypt_all",
    "encrypt_chunks",
    "header_length",
    "parse_header",
    "plaintext_size",
    "plan_range",
    "segment_count",
    "segment_offset",
]

# encrypt_into/decrypt_into (cryptography 46+) seal straight into the output buffer.
_HAS_INTO = hasattr(AESGCM, "decrypt_into")


def _check_key(key: bytes) -> AESGCM:
    if len(key) != KEY_SIZE:
        raise ValueError("the data key must be 32 bytes (AES-256)")
    return AESGCM(key)


# --------------------------------------------------------------------------------------------
# Encryption
# --------------------------------------------------------------------------------------------


class StreamEncryptor:
    """Encrypts a stream of plaintext chunks of any size, holding at most one segment plus the
    latest chunk in memory. Emit `header` first, then whatever `update` and `finalize` return.

    A full segment is only sealed once a byte beyond it has arrived, because the last segment
    must carry the final flag and the end is only known at `finalize`.
    """

    def __init__(
        self,
        key: bytes,
        key_ref: bytes = b"",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        nonce_prefix: bytes | None = None,
    ) -> None:
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError("segment size out of range")
        if len(key_ref) > 0xFFFF:
            raise ValueError("key reference too long")
        self._aead = _check_key(key)
        prefix = os.urandom(PREFIX_SIZE) if nonce_prefix is None else nonce_prefix
        self.header = Header(segment_size, prefix, key_ref).encode()
        self._prefix = prefix
        self._size = segment_size
        self._buffer = bytearray()
        self._index = 0
        self._done = False
        self.plaintext_bytes = 0

    def _seal(self, data: bytes | memoryview, final: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, final), data, self.header)
        self._index += 1
        return sealed

    def update(self, data: bytes | bytearray | memoryview) -> list[bytearray]:
        """Sealed segments that `data` completes (possibly none), as one buffer: sealing
        straight into it saves an allocation and a copy per segment."""
        if self._done:
            raise RuntimeError("encryptor already finalized")
        self.plaintext_bytes += len(data)
        size, sealed_size = self._size, self._size + TAG_SIZE
        total = len(self._buffer) + len(data)
        if total <= size:
            self._buffer += data
            return []
        # Seal all but the last 1..size bytes, which may turn out to be the final segment.
        count = (total - 1) // size
        out = bytearray(count * sealed_size)
        target = memoryview(out)
        view = memoryview(data)
        position = 0
        if self._buffer:
            need = size - len(self._buffer)
            self._buffer += view[:need]
            view = view[need:]
            self._seal_into(self._buffer, target[:sealed_size])
            self._buffer = bytearray()
            position, count = sealed_size, count - 1
        for i in range(count):
            self._seal_into(
                view[i * size : (i + 1) * size], target[position : position + sealed_size]
            )
            position += sealed_size
        self._buffer += view[count * size :]
        return [out]

    def _seal_into(self, data: bytes | bytearray | memoryview, target: memoryview) -> None:
        nonce = _nonce(self._prefix, self._index, False)
        if _HAS_INTO:
            self._aead.encrypt_into(nonce, data, self.header, target)
        else:  # cryptography < 46
            target[:] = self._aead.encrypt(nonce, data, self.header)
        self._index += 1

    def finalize(self) -> bytes:
        """The last segment, sealed as final."""
        if self._done:
            raise RuntimeError("encryptor already finalized")
        self._done = True
        sealed = self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        return sealed


def encrypt_chunks(
    key: bytes,
    chunks: Iterable[bytes],
    key_ref: bytes = b"",
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> Iterator[bytes]:
    """Header and sealed segments for a plaintext stream."""
    enc = StreamEncryptor(key, key_ref, segment_size)
    yield enc.header
    for chunk in chunks:
        yield from enc.update(chunk)
    yield enc.finalize()


# --------------------------------------------------------------------------------------------
# Decryption
# --------------------------------------------------------------------------------------------


class StreamDecryptor:
    """Decrypts plaintext ranges of one stored ciphertext whose header and total size are known.

    Usage: `plan = dec.plan(start, end)`, read ciphertext [plan.cipher_start, plan.cipher_end)
    from the store, feed it (in chunks of any size) to `dec.decrypt(plan, chunks)`.
    """

    def __init__(
        self, key: bytes, header_bytes: bytes, stored_size: int, final_aad: bytes = b""
    ) -> None:
        """`final_aad`: what a version-2 blob's final segment binds (its digest)."""
        self.header = parse_header(header_bytes)
        self._header_bytes = self.header.encode()
        self._aead = _check_key(key)
        self._final_aad = final_aad
        self.stored_size = stored_size
        self.segment_size = self.header.segment_size
        self.overhead = self.header.overhead
        self.plaintext_size = plaintext_size(
            stored_size, self.segment_size, self.header.size, self.overhead
        )
        self._last = segment_count(self.plaintext_size, self.segment_size) - 1

    @property
    def last_segment(self) -> int:
        return self._last

    def plan(self, start: int = 0, end: int | None = None) -> RangePlan:
        size = self.plaintext_size
        return plan_range(
            start,
            size if end is None else end,
            size,
            self.segment_size,
            self.header.size,
            self.overhead,
        )

    def _nonce_for(self, index: int) -> bytes:
        return _nonce(self.header.nonce_prefix, index, index == self._last)

    def _split(self, index: int, sealed: bytes | memoryview) -> tuple[bytes, Any, bytes]:
        """Nonce, sealed bytes and associated data of segment `index`."""
        if self.header.version == VERSION:
            return self._nonce_for(index), sealed, self._header_bytes
        if len(sealed) < self.overhead:
            raise StreamError(f"segment {index} is cut")
        view = memoryview(sealed)
        final = index == self._last
        flag = segments.FINAL if final else segments.MIDDLE
        extra = self._final_aad if final else b""
        associated = segments.aad(self._header_bytes, index, flag, extra)
        return bytes(view[:NONCE_SIZE]), view[NONCE_SIZE:], associated

    def open_segment(self, index: int, sealed: bytes | memoryview) -> bytes:
        """One segment's plaintext; StreamError unless it is exactly segment `index`."""
        nonce, body, associated = self._split(index, sealed)
        try:
            return self._aead.decrypt(nonce, body, associated)
        except InvalidTag:
            raise StreamError(f"segment {index} failed authentication") from None

    def open_segment_into(self, index: int, sealed: bytes | memoryview, target: memoryview) -> None:
        """`open_segment` into a buffer of exactly the plaintext's length. On failure the
        buffer holds unauthenticated bytes: the caller must discard it."""
        if not _HAS_INTO:
            target[:] = self.open_segment(index, sealed)
            return
        nonce, body, associated = self._split(index, sealed)
        try:
            self._aead.decrypt_into(nonce, body, associated, target)
        except InvalidTag:
            raise StreamError(f"segment {index} failed authentication") from None

    def decrypt(self, plan: RangePlan, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Plaintext of the planned range from the ciphertext chunks that cover it."""
        reader = RangeReader(self, plan)
        for chunk in chunks:
            yield from reader.update(chunk)
        yield from reader.finish()


class RangeReader:
    """Push-style decryption of one planned range, for callers that receive ciphertext
    asynchronously: `update(chunk)` returns the plaintext the chunk completes, and `finish()`
    raises StreamError if the ciphertext ended early. Ciphertext past the range raises too.
    Holds at most one partial sealed segment between calls."""

    def __init__(self, decryptor: StreamDecryptor, plan: RangePlan) -> None:
        self._dec = decryptor
        self._plan = plan
        self.overhead = decryptor.overhead
        self._sealed_size = decryptor.segment_size + self.overhead
        last_offset = plan.cipher_start + (plan.last - plan.first) * self._sealed_size
        self._last_size = plan.cipher_end - last_offset
        self._pending = bytearray()
        self._index = plan.first
        self._skip = plan.skip
        self._remaining = plan.length
        self._expected = plan.cipher_end - plan.cipher_start
        self._received = 0

    def _size(self, index: int) -> int:
        return self._sealed_size if index < self._plan.last else self._last_size

    def update(self, chunk: bytes | bytearray | memoryview) -> list[bytes | bytearray]:
        self._received += len(chunk)
        if self._received > self._expected:
            raise StreamError("more ciphertext than the range needs")
        view = memoryview(chunk)
        segments: list[memoryview | bytearray] = []
        first = self._index
        if self._pending:
            need = self._size(self._index) - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) < self._size(self._index):
                return []
            segments.append(self._pending)  # handed over whole: no copy
            self._pending = bytearray()
        index = first + len(segments)
        while index <= self._plan.last and len(view) >= (size := self._size(index)):
            segments.append(view[:size])
            view = view[size:]
            index += 1
        self._pending += view
        if not segments:
            return []
        out = bytearray(sum(len(s) for s in segments) - self.overhead * len(segments))
        target = memoryview(out)
        position = 0
        for offset, sealed in enumerate(segments):
            length = len(sealed) - self.overhead
            self._dec.open_segment_into(
                first + offset, sealed, target[position : position + length]
            )
            position += length
        self._index = index
        return self._trim(out)

    def _trim(self, out: bytearray) -> list[bytes | bytearray]:
        skip, remaining = self._skip, self._remaining
        self._skip = 0
        if skip or remaining < len(out):
            piece: bytes | bytearray = bytes(memoryview(out)[skip : skip + remaining])
        else:
            piece = out
        self._remaining -= len(piece)
        return [piece] if piece else []

    def finish(self) -> list[bytes | bytearray]:
        if self._received != self._expected or self._pending or self._remaining:
            raise StreamError("ciphertext ended early")
        return []


def decrypt_all(key: bytes, data: bytes) -> bytes:
    """The whole plaintext of a ciphertext held in memory (small objects and tests)."""
    header = parse_header(data)
    dec = StreamDecryptor(key, data[: header.size], len(data))
    plan = dec.plan()
    return b"".join(dec.decrypt(plan, [data[plan.cipher_start : plan.cipher_end]]))
