"""The layout of segmented ciphertext (`crypto.stream`): its header, and the arithmetic
between plaintext and ciphertext offsets that lets a Range read find its segments.

    header  = b"CBS1" | version u8 | segment_size u32 | nonce_prefix 7B | ref_len u16 | key_ref
    segment = AES-256-GCM(plaintext[i*S : (i+1)*S]) = ciphertext || 16-byte tag       (version 1)
    segment = nonce 12B || ciphertext || 16-byte tag                                 (version 2)

Version 1 (written in one pass): each segment's 12-byte nonce is the header's prefix, the
segment index (u32) and a final flag. Version 2 (staged by chunked uploads, `crypto.segments`)
stores a random nonce in each segment, since a segment may be sealed again when an interrupted
append is retried, and binds the index and final flag as associated data instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"CBS1"
VERSION = 1
VERSION_STAGED = 2
VERSIONS = (VERSION, VERSION_STAGED)
DEFAULT_SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
TAG_SIZE = 16
NONCE_SIZE = 12
PREFIX_SIZE = 7
KEY_SIZE = 32
MAX_SEGMENTS = 2**32
_FIXED = struct.Struct(">4sBI7sH")  # magic, version, segment size, nonce prefix, ref length


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

    @property
    def overhead(self) -> int:
        """Stored bytes per segment beyond its plaintext."""
        return segment_overhead(self.version)


def segment_overhead(version: int) -> int:
    return TAG_SIZE if version == VERSION else NONCE_SIZE + TAG_SIZE


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
    if magic != MAGIC or version not in VERSIONS:
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


def ciphertext_size(
    plaintext_size: int, segment_size: int, header_size: int, overhead: int = TAG_SIZE
) -> int:
    return header_size + plaintext_size + overhead * segment_count(plaintext_size, segment_size)


def plaintext_size(
    ciphertext_size_: int, segment_size: int, header_size: int, overhead: int = TAG_SIZE
) -> int:
    """The plaintext size a stored ciphertext of this size holds; StreamError if no plaintext
    size gives it (a cut inside a tag, or no segment at all)."""
    body = ciphertext_size_ - header_size
    sealed = segment_size + overhead
    full, rest = divmod(body, sealed)
    if body < overhead or (rest and rest < overhead) or (full and rest == overhead):
        raise StreamError("ciphertext size is not a whole number of segments")
    return full * segment_size + (rest - overhead if rest else 0)


def segment_offset(
    index: int, segment_size: int, header_size: int, overhead: int = TAG_SIZE
) -> int:
    """Where segment `index` starts in the ciphertext."""
    return header_size + index * (segment_size + overhead)


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
    start: int,
    end: int,
    plaintext_size_: int,
    segment_size: int,
    header_size: int,
    overhead: int = TAG_SIZE,
) -> RangePlan:
    """The segments a plaintext range touches (end is clamped to the blob's size)."""
    end = min(end, plaintext_size_)
    if start < 0 or start > end:
        raise ValueError(f"invalid range [{start}, {end}) of a {plaintext_size_}-byte blob")
    last_segment = segment_count(plaintext_size_, segment_size) - 1
    first = min(start // segment_size, last_segment)
    last = first if end == start else min((end - 1) // segment_size, last_segment)
    cipher_end = segment_offset(last + 1, segment_size, header_size, overhead)
    if last == last_segment:
        cipher_end = ciphertext_size(plaintext_size_, segment_size, header_size, overhead)
    return RangePlan(
        first=first,
        last=last,
        cipher_start=segment_offset(first, segment_size, header_size, overhead),
        cipher_end=cipher_end,
        skip=start - first * segment_size,
        length=end - start,
    )


def nonce(prefix: bytes, index: int, final: bool) -> bytes:
    if index >= MAX_SEGMENTS:
        raise StreamError("too many segments for one blob")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")
