"""Version-2 segments (cargobay.crypto.segments), as chunked uploads stage them: read back by
StreamDecryptor over any range, and refused when reordered, cut, sealed as a staged tail
instead of the final segment, or bound to another digest."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cargobay.crypto import layout, segments
from cargobay.crypto.stream import StreamDecryptor, StreamError

KEY = bytes(range(32))
SEG = 64
DIGEST = b"sha256:" + b"ab" * 32


def _staged(data: bytes, *, final_flag: int = segments.FINAL, digest: bytes = DIGEST) -> bytes:
    header = layout.Header(SEG, os.urandom(7), b"ref", layout.VERSION_STAGED).encode()
    sealer = segments.SegmentSealer(KEY, header, SEG)
    full = (len(data) - 1) // SEG if data else 0
    middle = sealer.seal_middle(data[: full * SEG], 0)
    last = sealer.seal(data[full * SEG :], full, final_flag, digest)
    return header + bytes(middle) + last


def _read(blob: bytes, start: int = 0, end: int | None = None, digest: bytes = DIGEST) -> bytes:
    header = layout.parse_header(blob)
    dec = StreamDecryptor(KEY, blob[: header.size], len(blob), final_aad=digest)
    plan = dec.plan(start, end)
    return b"".join(dec.decrypt(plan, [blob[plan.cipher_start : plan.cipher_end]]))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5 * SEG + 7), a=st.integers(0, 400), b=st.integers(0, 400))
def test_any_range_round_trips(data: bytes, a: int, b: int) -> None:
    blob = _staged(data)
    start, end = sorted((min(a, len(data)), min(b, len(data))))
    assert _read(blob) == data
    assert _read(blob, start, end) == data[start:end]
    overhead = layout.segment_overhead(layout.VERSION_STAGED)
    header_size = layout.parse_header(blob).size
    assert layout.plaintext_size(len(blob), SEG, header_size, overhead) == len(data)


def test_tampering_reordering_and_wrong_bindings_fail() -> None:
    data = os.urandom(4 * SEG + 9)
    blob = _staged(data)
    header = layout.parse_header(blob).size
    sealed = SEG + segments.OVERHEAD
    flipped = bytearray(blob)
    flipped[header + sealed + 20] ^= 1
    swapped = (
        blob[:header]
        + blob[header + sealed : header + 2 * sealed]
        + blob[header : header + sealed]
        + blob[header + 2 * sealed :]
    )
    cut = blob[: header + 4 * sealed]  # ends on a boundary: its last segment is not final
    for bad in (bytes(flipped), swapped, cut):
        with pytest.raises(StreamError):
            _read(bad)
    with pytest.raises(StreamError):
        _read(blob, digest=b"sha256:" + b"cd" * 32)  # moved to another digest's address
    with pytest.raises(StreamError):
        _read(_staged(data, final_flag=segments.TAIL))  # a staged tail is never a final one
    # A Range that avoids the damaged segment still reads.
    assert _read(bytes(flipped), 2 * SEG, 3 * SEG) == data[2 * SEG : 3 * SEG]


def test_resealing_a_segment_uses_a_fresh_nonce() -> None:
    header = layout.Header(SEG, os.urandom(7), b"ref", layout.VERSION_STAGED).encode()
    sealer = segments.SegmentSealer(KEY, header, SEG)
    first, again = sealer.seal_middle(b"a" * SEG, 3), sealer.seal_middle(b"b" * SEG, 3)
    assert first[: layout.NONCE_SIZE] != again[: layout.NONCE_SIZE]
    assert sealer.open(first, 3, segments.MIDDLE) == b"a" * SEG
    with pytest.raises(StreamError):
        sealer.open(first, 4, segments.MIDDLE)
