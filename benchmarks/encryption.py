"""Throughput of encryption at rest (issue 13) against the unencrypted path, on this machine.

    python3 -m benchmarks.encryption [--size-mib 1024] [--chunk-kib 1024] [--repeat 3]

Two levels, each timed as the median of `--repeat` runs over `--size-mib` of data:

1. The stream layer (`crypto.stream`), one core: encrypting plaintext chunks vs copying them,
   and decrypting a ciphertext file vs reading (and copying) the plaintext file, both files in
   the page cache.
2. The store layer on the filesystem store: `EncryptedBlobs.write`/`read` (data key from the
   KMS service, AEAD in worker threads) vs the plain `FilesystemStore` upload and read of the
   same blob.

Ratios are encrypted / plain; the issue's targets: download (decrypt) >= 1 GB/s and >= 0.8x of
the unencrypted path, upload (encrypt) >= 0.8x. Nothing here asserts: RESULTS.md records.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cargobay import malloc
from cargobay.crypto import stream
from cargobay.iam.secrets import SecretBox, new_key
from cargobay.kms.service import KmsService
from cargobay.metadata import migrations
from cargobay.metadata.db import Database
from cargobay.storage.encrypted import EncryptedBlobs
from cargobay.storage.filesystem import FilesystemStore

MIB = 1024 * 1024
ACCOUNT = "123456789012"


def _chunks(block: bytes, total: int) -> Iterator[bytes]:
    """`total` bytes as chunks of one reused random block (nothing big held in memory)."""
    sent = 0
    while sent < total:
        piece = block if total - sent >= len(block) else block[: total - sent]
        sent += len(piece)
        yield piece


def _file_chunks(path: Path, size: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            yield chunk


Rate = tuple[float, float]  # (MiB per wall-clock second, MiB per CPU second of this process)


def _median_rate(run: Callable[[], int], repeat: int) -> Rate:
    """Rates of `run` (which returns the bytes it processed), medians of `repeat` runs. On a
    shared machine the CPU-time rate is the steadier one: what the work costs, not what the
    neighbours left of the cores."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        done = run()
        wall.append(done / MIB / (time.perf_counter() - start))
        cpu.append(done / MIB / max(time.process_time() - start_cpu, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def stream_level(total: int, chunk: int, repeat: int, workdir: Path) -> dict[str, Rate]:
    key = os.urandom(32)
    block = os.urandom(chunk)
    plain_path, cipher_path = workdir / "plain", workdir / "cipher"
    with open(plain_path, "wb") as fh:
        for piece in _chunks(block, total):
            fh.write(piece)
    with open(cipher_path, "wb") as fh:
        for piece in stream.encrypt_chunks(key, _chunks(block, total)):
            fh.write(piece)

    def copy() -> int:
        return sum(len(bytes(memoryview(p))) for p in _chunks(block, total))

    def encrypt() -> int:
        enc = stream.StreamEncryptor(key)
        done = 0
        for piece in _chunks(block, total):
            enc.update(piece)
            done += len(piece)
        enc.finalize()
        return done

    def read_plain() -> int:
        return sum(len(bytes(memoryview(p))) for p in _file_chunks(plain_path, chunk))

    def decrypt() -> int:
        with open(cipher_path, "rb") as fh:
            fixed = fh.read(stream.FIXED_SIZE)
            head = fixed + fh.read(stream.header_length(fixed) - len(fixed))
        dec = stream.StreamDecryptor(key, head, cipher_path.stat().st_size)
        plan = dec.plan()
        chunks = _file_chunks(cipher_path, chunk)
        first = next(chunks)[len(head) :]
        return sum(len(p) for p in dec.decrypt(plan, _prepend(first, chunks)))

    aead = AESGCM(key)
    segment = block[: stream.DEFAULT_SEGMENT_SIZE]
    sealed = aead.encrypt(bytes(12), segment, b"")
    target = bytearray(len(segment))

    def ceiling() -> int:
        """AES-256-GCM alone on one segment over and over: what this CPU allows right now."""
        rounds = total // len(segment)
        for _ in range(rounds):
            aead.decrypt_into(bytes(12), sealed, b"", target)
        return rounds * len(segment)

    results = {
        "aes_ceiling": _median_rate(ceiling, repeat),
        "copy": _median_rate(copy, repeat),
        "encrypt": _median_rate(encrypt, repeat),
        "read_plain": _median_rate(read_plain, repeat),
        "decrypt": _median_rate(decrypt, repeat),
    }
    plain_path.unlink()
    cipher_path.unlink()
    return results


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


async def store_level(total: int, chunk: int, repeat: int, workdir: Path) -> dict[str, Rate]:
    url = f"sqlite:///{workdir / 'meta.db'}"
    await migrations.upgrade(url)
    db = Database(url)
    kms = KmsService(db, SecretBox(new_key()), "us-east-1")
    store = FilesystemStore(workdir / "storage")
    blobs = EncryptedBlobs(store, kms)
    key_id = (await kms.create_key(ACCOUNT))["KeyMetadata"]["KeyId"]
    block = os.urandom(chunk)
    hasher = hashlib.sha256()
    for piece in _chunks(block, total):
        hasher.update(piece)
    digest = "sha256:" + hasher.hexdigest()

    async def source() -> AsyncIterator[bytes]:
        for piece in _chunks(block, total):
            yield piece

    async def blocks() -> AsyncIterator[list[bytes]]:
        for piece in _chunks(block, total):
            yield [piece]

    async def timed(run: Callable[[], object]) -> Rate:
        wall, cpu = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            await run()  # type: ignore[misc]
            wall.append(total / MIB / (time.perf_counter() - start))
            cpu.append(total / MIB / max(time.process_time() - start_cpu, 1e-9))
        return statistics.median(wall), statistics.median(cpu)

    async def plain_upload() -> None:
        await store.delete(digest)
        await store.upload_create("bench")
        await store.upload_append("bench", 0, blocks())
        await store.upload_commit("bench", digest)

    async def encrypted_upload() -> None:
        await blobs.delete(digest, key_id)
        await blobs.write(ACCOUNT, key_id, digest, source(), verify=False)

    async def plain_download() -> None:
        async for _ in store.read(digest):
            pass

    async def encrypted_download() -> None:
        async for _ in blobs.read(digest, key_id):
            pass

    results = {
        "upload_plain": await timed(plain_upload),
        "upload_encrypted": await timed(encrypted_upload),
        "download_plain": await timed(plain_download),
        "download_encrypted": await timed(encrypted_download),
    }
    await store.delete(digest)
    await blobs.delete(digest, key_id)
    await db.dispose()
    return results


def _line(label: str, plain: Rate, encrypted: Rate) -> str:
    return (
        f"  {label:<9} plain {plain[0]:7.0f} / {plain[1]:7.0f}   encrypted "
        f"{encrypted[0]:7.0f} / {encrypted[1]:7.0f}   ratio {encrypted[0] / plain[0]:.2f}"
        f" / {encrypted[1] / plain[1]:.2f}   encrypted {encrypted[0] * MIB / 1e9:.2f} GB/s wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-store", action="store_true")
    args = parser.parse_args()
    malloc.tune()  # as every serving worker does (cargobay.worker)
    total, chunk = args.size_mib * MIB, args.chunk_kib * 1024
    with tempfile.TemporaryDirectory(prefix="cargobay-enc-bench-", dir="/var/tmp") as tmp:
        workdir = Path(tmp)
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("figures: MiB/s wall clock / MiB per CPU second; ratios encrypted / plain")
        s = stream_level(total, chunk, args.repeat, workdir)
        print(f"stream layer, {args.size_mib} MiB in {args.chunk_kib} KiB chunks:")
        ceiling = s["aes_ceiling"]
        print(f"  AES-256-GCM alone, 64 KiB segments: {ceiling[0]:7.0f} / {ceiling[1]:7.0f}")
        print(_line("encrypt", s["copy"], s["encrypt"]) + "  (plain: copy)")
        print(_line("decrypt", s["read_plain"], s["decrypt"]) + "  (plain: read file)")
        if not args.skip_store:
            r = asyncio.run(store_level(total, chunk, args.repeat, workdir))
            print("filesystem store layer (EncryptedBlobs vs FilesystemStore):")
            print(_line("upload", r["upload_plain"], r["upload_encrypted"]))
            print(_line("download", r["download_plain"], r["download_encrypted"]))
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
