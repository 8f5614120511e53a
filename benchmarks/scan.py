"""Scan speed against `gzip -dc` of the same layers (the floor: a scan must inflate them all).

    python3 -m benchmarks.scan [--size-mib 1024] [--layers 20] [--runs 3] [--random-percent 50]

Generates (once, cached in --workdir) a synthetic image of --layers gzip layers holding
--size-mib MiB of files in total: a mix of small and large files, --random-percent random and
the rest text (50%: about 2:1 compression, like real layers), with executables and this
machine's dpkg database among them.
Then, interleaving the two, times `gzip -dc LAYER > /dev/null` over every layer and
`scan_image` over the same files read in 1 MiB chunks (as the filesystem blob store reads),
and prints the medians and the ratio, in wall time and in CPU time (CPU time is the steadier
figure on a busy machine). Target: scan / gzip -dc <= 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

MiB = 1024 * 1024
TEXT = b"".join(
    f"option_{i} = value {i * 7} # configuration line for the benchmark image\n".encode()
    for i in range(20000)
)


def _content(rng: random.Random, size: int, random_percent: int) -> bytes:
    noise = size * random_percent // 100
    text_size = size - noise
    start = rng.randrange(0, len(TEXT) - text_size) if len(TEXT) > text_size else 0
    text = (TEXT[start:] + TEXT * (1 + text_size // len(TEXT)))[:text_size]
    return rng.randbytes(noise) + text


def _member(name: str, size: int, mode: int = 0o644) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    return info.tobuf(tarfile.GNU_FORMAT)


def write_layer(path: Path, number: int, size: int, level: int, random_percent: int) -> None:
    """One gzip layer of about `size` uncompressed bytes."""
    rng = random.Random(number)
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    with open(path, "wb") as out:

        def put(data: bytes) -> None:
            out.write(compressor.compress(data))

        if number == 0 and Path("/var/lib/dpkg/status").exists():
            status = Path("/var/lib/dpkg/status").read_bytes()
            put(_member("var/lib/dpkg/status", len(status)) + status + b"\0" * (-len(status) % 512))
        written = 0
        index = 0
        while written < size:
            # Mostly small files, some large ones; every 20th is an executable.
            file_size = rng.choice([2048, 8192, 65536, 262144, 1 * MiB, 4 * MiB])
            mode = 0o755 if index % 20 == 0 else 0o644
            data = _content(rng, file_size, random_percent)
            if mode == 0o755:
                data = b"\x7fELF\x02\x01\x01" + data[7:]
            name = f"usr/share/layer{number}/dir{index % 50}/file{index}"
            put(_member(name, len(data), mode) + data + b"\0" * (-len(data) % 512))
            written += len(data) + 512
            index += 1
        put(b"\0" * 1024)
        out.write(compressor.flush())


def prepare(
    workdir: Path, layers: int, size_mib: int, level: int, random_percent: int = 50
) -> list[Path]:
    per_layer = size_mib * MiB // layers
    tag = f"{size_mib}-{level}" + (f"-r{random_percent}" if random_percent != 50 else "")
    stamp = workdir / f"layers-{layers}-{tag}.json"
    paths = [workdir / f"layer{i}-{tag}.tar.gz" for i in range(layers)]
    if stamp.exists() and all(p.exists() for p in paths):
        return paths
    workdir.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        print(f"generating layer {i + 1}/{layers} ({per_layer // MiB} MiB)", flush=True)
        write_layer(path, i, per_layer, level, random_percent)
    stamp.write_text(json.dumps([p.name for p in paths]))
    return paths


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_gzip(paths: list[Path]) -> tuple[float, float]:
    cpu, wall = _cpu_children(), time.perf_counter()
    for path in paths:
        with open(os.devnull, "wb") as sink:
            subprocess.run(["gzip", "-dc", str(path)], stdout=sink, check=True)
    return time.perf_counter() - wall, _cpu_children() - cpu


def time_scan(paths: list[Path]) -> tuple[float, float, int]:
    from cargobay.scanning.scan import scan_image

    by_digest = {f"sha256:{hashlib.sha256(p.name.encode()).hexdigest()}": p for p in paths}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "c"},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d}
            for d in by_digest
        ],
    }

    async def read(digest: str) -> AsyncIterator[bytes]:
        with open(by_digest[digest], "rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, MiB):
                yield chunk

    cpu, wall = _cpu_self(), time.perf_counter()
    result = asyncio.run(scan_image(read, manifest, b'{"architecture":"amd64"}', None))
    return time.perf_counter() - wall, _cpu_self() - cpu, len(result.inventory.packages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--level", type=int, default=6, help="gzip level of the layers")
    parser.add_argument(
        "--random-percent", type=int, default=50, help="incompressible share of file content"
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cb-scan")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    paths = prepare(args.workdir, args.layers, args.size_mib, args.level, args.random_percent)
    compressed = sum(p.stat().st_size for p in paths)
    gzip_runs, scan_runs, packages = [], [], 0
    for run in range(args.runs):
        gzip_runs.append(time_gzip(paths))
        wall, cpu, packages = time_scan(paths)
        scan_runs.append((wall, cpu))
        print(
            f"run {run + 1}: gzip -dc {gzip_runs[-1][0]:.2f}s wall {gzip_runs[-1][1]:.2f}s cpu; "
            f"scan {wall:.2f}s wall {cpu:.2f}s cpu",
            flush=True,
        )
    gzip_wall = statistics.median(r[0] for r in gzip_runs)
    gzip_cpu = statistics.median(r[1] for r in gzip_runs)
    scan_wall = statistics.median(r[0] for r in scan_runs)
    scan_cpu = statistics.median(r[1] for r in scan_runs)
    report = {
        "layers": args.layers,
        "uncompressed_mib": args.size_mib,
        "compressed_mib": round(compressed / MiB, 1),
        "random_percent": args.random_percent,
        "packages_found": packages,
        "gzip_dc_wall_s": round(gzip_wall, 2),
        "scan_wall_s": round(scan_wall, 2),
        "ratio_wall": round(scan_wall / gzip_wall, 2),
        "gzip_dc_cpu_s": round(gzip_cpu, 2),
        "scan_cpu_s": round(scan_cpu, 2),
        "ratio_cpu": round(scan_cpu / gzip_cpu, 2),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
