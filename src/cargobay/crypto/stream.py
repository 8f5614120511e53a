"""Segmented authenticated encryption for blobs at rest (the STREAM construction).

A blob is encrypted as a header followed by fixed-size segments, each sealed on its own with
AES-256-GCM, so a Range read decrypts only the segments it touches. Each segment's 12-byte nonce
is a per-blob random prefix (7 bytes), the segment index (4 bytes, big-endian) and a final flag
(1 byte: 1 on the last segment only), as in Hoang-Reyhanitabar-Rogaway-Vizar's STREAM that
age and Tink use. The index in the nonce makes reordering fail; the flag makes truncation at a
segment boundary fail (the new last segment was not sealed as final); the header, bound into
every segment as associated data, makes swapping segments between blobs or editing the header
fail even under one data key. Any failure raises `StreamError`: wrong bytes are never returned.

Layout (all integers big-endian):

    header  = b"CBS1" | version u8 | segment_size u32 | nonce_prefix 7B | ref_len u16 | key_ref
    segment = AES-256-GCM(plaintext[i*S : (i+1)*S]) = ciphertext || 16-byte tag

Every segment holds `segment_size` plaintext bytes except the last, which holds 1..S (0 only
for the empty blob, which is one empty final segment). `key_ref` is opaque to this module:
the envelope layer stores the wrapped data key there.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"CBS1"
VERSION = 1
DEFAULT_SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
TAG_SIZE = 16
PREFIX_SIZE = 7
KEY_SIZE = 32
MAX_SEGMENTS = 2**32
_FIXED = struct.Struct(">4sBI7sH")  # magic, version, segment size, nonce prefix, ref length
# encrypt_into/decrypt_into (cryptography 46+) seal straight into the output buffer.
_HAS_INTO = hasattr(AESGCM, "decrypt_into")


class StreamError(Exception):
    """The stored ciphertext is not what was written: tampered, truncated, reordered, swapped,
    or opened with the wrong key. Never retried, never partially trusted."""


@dataclass(frozen=True, slots=True)
class Header:
    segment_size: int
    nonce_prefix: bytes
    key_ref: bytes
    version: int = VERSION

    def encode(self) -> bytes:
        return (
            _FIXED.pack(
                MAGIC, self.version, self.segment_size, self.nonce_prefix, len(self.key_ref)
            )
            + self.key_ref
        )

    @property
    def size(self) -> int:
        return _FIXED.size + len(self.key_ref)


def header_length(prefix: bytes) -> int:
    """The full header's length, from its first `FIXED_SIZE` bytes."""
    if len(prefix) < _FIXED.size:
        raise StreamError("ciphertext is shorter than its header")
    return _FIXED.size + _FIXED.unpack_from(prefix)[4]


FIXED_SIZE = _FIXED.size


def parse_header(data: bytes) -> Header:
    """The header at the start of `data` (which must hold all of it)."""
    if len(data) < _FIXED.size:
        raise StreamError("ciphertext is shorter than its header")
    magic, version, segment_size, prefix, ref_len = _FIXED.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise StreamError("not an encrypted blob of a known version")
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise StreamError("invalid segment size in header")
    if len(data) < _FIXED.size + ref_len:
        raise StreamError("ciphertext is shorter than its header")
    return Header(segment_size, prefix, bytes(data[_FIXED.size : _FIXED.size + ref_len]), version)


# --------------------------------------------------------------------------------------------
# Size arithmetic
# --------------------------------------------------------------------------------------------


def segment_count(plaintext_size: int, segment_size: int) -> int:
    """Segments that hold `plaintext_size` bytes (at least one: the empty blob has one)."""
    return max(1, -(-plaintext_size // segment_size))


def ciphertext_size(plaintext_size: int, segment_size: int, header_size: int) -> int:
    return header_size + plaintext_size + TAG_SIZE * segment_count(plaintext_size, segment_size)


def plaintext_size(ciphertext_size_: int, segment_size: int, header_size: int) -> int:
    """The plaintext size a stored ciphertext of this size holds; StreamError if no plaintext
    size gives it (a cut inside a tag, or no segment at all)."""
    body = ciphertext_size_ - header_size
    sealed = segment_size + TAG_SIZE
    full, rest = divmod(body, sealed)
    if body < TAG_SIZE or (rest and rest < TAG_SIZE) or (full and rest == TAG_SIZE):
        raise StreamError("ciphertext size is not a whole number of segments")
    return full * segment_size + (rest - TAG_SIZE if rest else 0)


def segment_offset(index: int, segment_size: int, header_size: int) -> int:
    """Where segment `index` starts in the ciphertext."""
    return header_size + index * (segment_size + TAG_SIZE)


@dataclass(frozen=True, slots=True)
class RangePlan:
    """What to read for plaintext [start, end): ciphertext bytes [cipher_start, cipher_end),
    which are segments first..last; `skip` plaintext bytes are dropped from the first."""

    first: int
    last: int
    cipher_start: int
    cipher_end: int
    skip: int
    length: int


def plan_range(
    start: int, end: int, plaintext_size_: int, segment_size: int, header_size: int
) -> RangePlan:
    """The segments a plaintext range touches (end is clamped to the blob's size)."""
    end = min(end, plaintext_size_)
    if start < 0 or start > end:
        raise ValueError(f"invalid range [{start}, {end}) of a {plaintext_size_}-byte blob")
    last_segment = segment_count(plaintext_size_, segment_size) - 1
    first = min(start // segment_size, last_segment)
    last = first if end == start else min((end - 1) // segment_size, last_segment)
    cipher_end = segment_offset(last + 1, segment_size, header_size)
    if last == last_segment:
        cipher_end = ciphertext_size(plaintext_size_, segment_size, header_size)
    return RangePlan(
        first=first,
        last=last,
        cipher_start=segment_offset(first, segment_size, header_size),
        cipher_end=cipher_end,
        skip=start - first * segment_size,
        length=end - start,
    )


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    if index >= MAX_SEGMENTS:
        raise StreamError("too many segments for one blob")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


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
            self._seal_into(bytes(self._buffer), target[:sealed_size])
            self._buffer.clear()
            position, count = sealed_size, count - 1
        for i in range(count):
            self._seal_into(
                view[i * size : (i + 1) * size], target[position : position + sealed_size]
            )
            position += sealed_size
        self._buffer += view[count * size :]
        return [out]

    def _seal_into(self, data: bytes | memoryview, target: memoryview) -> None:
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

    def __init__(self, key: bytes, header_bytes: bytes, stored_size: int) -> None:
        self.header = parse_header(header_bytes)
        self._header_bytes = self.header.encode()
        self._aead = _check_key(key)
        self.stored_size = stored_size
        self.segment_size = self.header.segment_size
        self.plaintext_size = plaintext_size(stored_size, self.segment_size, self.header.size)
        self._last = segment_count(self.plaintext_size, self.segment_size) - 1

    def plan(self, start: int = 0, end: int | None = None) -> RangePlan:
        size = self.plaintext_size
        return plan_range(
            start, size if end is None else end, size, self.segment_size, self.header.size
        )

    def _nonce_for(self, index: int) -> bytes:
        return _nonce(self.header.nonce_prefix, index, index == self._last)

    def open_segment(self, index: int, sealed: bytes | memoryview) -> bytes:
        """One segment's plaintext; StreamError unless it is exactly segment `index`."""
        try:
            return self._aead.decrypt(self._nonce_for(index), sealed, self._header_bytes)
        except InvalidTag:
            raise StreamError(f"segment {index} failed authentication") from None

    def open_segment_into(self, index: int, sealed: bytes | memoryview, target: memoryview) -> None:
        """`open_segment` into a buffer of exactly the plaintext's length. On failure the
        buffer holds unauthenticated bytes: the caller must discard it."""
        if not _HAS_INTO:
            target[:] = self.open_segment(index, sealed)
            return
        try:
            self._aead.decrypt_into(self._nonce_for(index), sealed, self._header_bytes, target)
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
        self._sealed_size = decryptor.segment_size + TAG_SIZE
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
        segments: list[memoryview | bytes] = []
        first = self._index
        if self._pending:
            need = self._size(self._index) - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) < self._size(self._index):
                return []
            segments.append(bytes(self._pending))
            self._pending.clear()
        index = first + len(segments)
        while index <= self._plan.last and len(view) >= (size := self._size(index)):
            segments.append(view[:size])
            view = view[size:]
            index += 1
        self._pending += view
        if not segments:
            return []
        out = bytearray(sum(len(s) for s in segments) - TAG_SIZE * len(segments))
        target = memoryview(out)
        position = 0
        for offset, sealed in enumerate(segments):
            length = len(sealed) - TAG_SIZE
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
