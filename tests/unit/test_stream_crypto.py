"""The segmented AEAD (cargobay.crypto.stream): ranges round-trip, and every kind of tampering
fails with StreamError instead of returning bytes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cargobay.crypto import stream
from cargobay.crypto.stream import (
    TAG_SIZE,
    StreamDecryptor,
    StreamEncryptor,
    StreamError,
    ciphertext_size,
    decrypt_all,
    plaintext_size,
)

KEY = bytes(range(32))
SEG = 64  # small segments so that hypothesis crosses many boundaries cheaply


def _encrypt(data: bytes, chunk_sizes: list[int], key: bytes = KEY, seg: int = SEG) -> bytes:
    enc = StreamEncryptor(key, b"ref", seg)
    out = [enc.header]
    pos = 0
    for size in chunk_sizes:
        out += enc.update(data[pos : pos + size])
        pos += size
    out += enc.update(data[pos:])
    out.append(enc.finalize())
    return b"".join(out)


def _read(ct: bytes, start: int, end: int, chunk: int = 37, key: bytes = KEY) -> bytes:
    header = stream.parse_header(ct)
    dec = StreamDecryptor(key, ct[: header.size], len(ct))
    plan = dec.plan(start, end)
    body = ct[plan.cipher_start : plan.cipher_end]
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    return b"".join(dec.decrypt(plan, chunks))


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=1000),
    chunk_sizes=st.lists(st.integers(0, 300), max_size=8),
    bounds=st.tuples(st.integers(0, 1100), st.integers(0, 1100)),
    read_chunk=st.integers(1, 500),
)
def test_any_range_round_trips(
    data: bytes, chunk_sizes: list[int], bounds: tuple[int, int], read_chunk: int
) -> None:
    ct = _encrypt(data, chunk_sizes)
    header = stream.parse_header(ct)
    assert len(ct) == ciphertext_size(len(data), SEG, header.size)
    assert plaintext_size(len(ct), SEG, header.size) == len(data)
    start, end = sorted(bounds)
    start = min(start, len(data))
    assert _read(ct, start, end, read_chunk) == data[start:end]
    assert decrypt_all(KEY, ct) == data


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=1, max_size=400), position=st.integers(0, 10_000))
def test_any_flipped_bit_fails(data: bytes, position: int) -> None:
    ct = bytearray(_encrypt(data, []))
    position %= len(ct)
    ct[position] ^= 1 << (position % 8)
    with pytest.raises(StreamError):
        decrypt_all(KEY, bytes(ct))


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=1, max_size=400), cut=st.integers(1, 10_000))
def test_any_truncation_fails(data: bytes, cut: int) -> None:
    ct = _encrypt(data, [])
    cut = 1 + cut % (len(ct) - 1)  # keep at least one byte, drop at least one
    with pytest.raises(StreamError):
        decrypt_all(KEY, ct[:cut])


def test_truncation_at_a_segment_boundary_fails_on_the_new_last_segment() -> None:
    data = os.urandom(SEG * 4)
    ct = _encrypt(data, [])
    header = stream.parse_header(ct)
    cut = stream.segment_offset(2, SEG, header.size)  # keep segments 0 and 1, both whole
    truncated = ct[:cut]
    assert plaintext_size(len(truncated), SEG, header.size) == 2 * SEG
    with pytest.raises(StreamError, match="segment 1"):
        decrypt_all(KEY, truncated)
    # The untouched first segment still reads, and only with correct bytes.
    assert _read(truncated, 0, SEG) == data[:SEG]


def test_reordered_segments_fail() -> None:
    data = os.urandom(SEG * 3 + 5)
    ct = bytearray(_encrypt(data, []))
    header = stream.parse_header(bytes(ct))
    a, b = (stream.segment_offset(i, SEG, header.size) for i in (0, 1))
    sealed = SEG + TAG_SIZE
    ct[a : a + sealed], ct[b : b + sealed] = ct[b : b + sealed], ct[a : a + sealed]
    with pytest.raises(StreamError):
        decrypt_all(KEY, bytes(ct))
    with pytest.raises(StreamError):
        _read(bytes(ct), 0, 10)


def test_segment_swapped_from_another_blob_under_the_same_key_fails() -> None:
    one, two = os.urandom(SEG * 3), os.urandom(SEG * 3)
    ct_one, ct_two = bytearray(_encrypt(one, [])), _encrypt(two, [])
    header = stream.parse_header(ct_two)
    at = stream.segment_offset(1, SEG, header.size)
    ct_one[at : at + SEG + TAG_SIZE] = ct_two[at : at + SEG + TAG_SIZE]
    with pytest.raises(StreamError, match="segment 1"):
        _read(bytes(ct_one), SEG, SEG + 1)


def test_final_flag_is_checked_both_ways() -> None:
    """A last segment sealed as non-final, or a middle one sealed as final, does not open."""
    data = os.urandom(SEG * 2 + 3)
    enc = StreamEncryptor(KEY, b"", SEG)
    prefix = stream.parse_header(enc.header).nonce_prefix
    aead = stream.AESGCM(KEY)

    def seal(i: int, final: bool) -> bytes:
        return aead.encrypt(
            stream._nonce(prefix, i, final), data[i * SEG : (i + 1) * SEG], enc.header
        )

    honest = enc.header + seal(0, False) + seal(1, False) + seal(2, True)
    assert decrypt_all(KEY, honest) == data
    with pytest.raises(StreamError, match="segment 2"):
        decrypt_all(KEY, enc.header + seal(0, False) + seal(1, False) + seal(2, False))
    with pytest.raises(StreamError, match="segment 1"):
        decrypt_all(KEY, enc.header + seal(0, False) + seal(1, True) + seal(2, True))


def test_wrong_key_and_edited_header_fail() -> None:
    ct = _encrypt(b"secret layer bytes" * 10, [])
    with pytest.raises(StreamError):
        decrypt_all(os.urandom(32), ct)
    edited = bytearray(ct)
    edited[stream.FIXED_SIZE] ^= 0xFF  # the key reference, bound as associated data
    with pytest.raises(StreamError):
        decrypt_all(KEY, bytes(edited))


def test_empty_blob_is_one_final_segment() -> None:
    ct = _encrypt(b"", [])
    header = stream.parse_header(ct)
    assert len(ct) == header.size + TAG_SIZE
    assert decrypt_all(KEY, ct) == b""
    with pytest.raises(StreamError):
        decrypt_all(KEY, ct[: header.size])


def test_range_reads_only_the_segments_it_touches() -> None:
    data = os.urandom(SEG * 10)
    ct = _encrypt(data, [])
    header = stream.parse_header(ct)
    dec = StreamDecryptor(KEY, ct[: header.size], len(ct))
    plan = dec.plan(3 * SEG + 5, 4 * SEG + 2)
    assert (plan.first, plan.last) == (3, 4)
    assert plan.cipher_end - plan.cipher_start == 2 * (SEG + TAG_SIZE)
    # Bytes outside the plan may be garbage: they are never read.
    garbage = bytearray(ct)
    garbage[: plan.cipher_start] = b"\0" * plan.cipher_start
    body = bytes(garbage[plan.cipher_start : plan.cipher_end])
    assert b"".join(dec.decrypt(plan, [body])) == data[3 * SEG + 5 : 4 * SEG + 2]


def test_size_arithmetic_rejects_impossible_sizes() -> None:
    h = 20
    with pytest.raises(StreamError):
        plaintext_size(h + 5, SEG, h)  # shorter than one tag
    with pytest.raises(StreamError):
        plaintext_size(h + SEG + TAG_SIZE + 3, SEG, h)  # a cut inside the last tag
    assert plaintext_size(ciphertext_size(SEG * 3, SEG, h), SEG, h) == SEG * 3
    assert ciphertext_size(0, SEG, h) == h + TAG_SIZE


def test_large_default_segments_round_trip() -> None:
    data = os.urandom(3 * stream.DEFAULT_SEGMENT_SIZE + 12345)
    ct = b"".join(
        stream.encrypt_chunks(KEY, [data[i : i + 100_000] for i in range(0, len(data), 100_000)])
    )
    assert decrypt_all(KEY, ct) == data
    start = stream.DEFAULT_SEGMENT_SIZE - 7
    assert _read(ct, start, start + 70_000, chunk=1 << 20) == data[start : start + 70_000]


def test_without_the_into_methods_of_older_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "_HAS_INTO", False)
    data = os.urandom(SEG * 5 + 3)
    ct = _encrypt(data, [7, SEG * 2])
    assert _read(ct, 5, SEG * 4 + 1) == data[5 : SEG * 4 + 1]
    flipped = bytearray(ct)
    flipped[-1] ^= 1
    with pytest.raises(StreamError):
        decrypt_all(KEY, bytes(flipped))
