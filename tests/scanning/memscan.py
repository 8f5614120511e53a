"""Scan a synthetic image whose layers are generated while they are read, and report the
process's peak RSS growth (run as its own process by test_scan.py).

    python memscan.py WORKDIR LAYERS LAYER_BYTES
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tarfile
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from cargobay.metadata import migrations
from cargobay.metadata.db import Database
from cargobay.scanning.scan import scan_image
from cargobay.vulndb.store import VulnDB

FILE = 4 * 1024 * 1024
# Half random, half text: compresses about 2:1, like typical layer content.
BLOCK = (
    os.urandom(512 * 1024)
    + b"".join(
        f"line {i} of some configuration text = value {i * 7}\n".encode() for i in range(12000)
    )[: 512 * 1024]
)


def _member(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(tarfile.GNU_FORMAT)


def layer_tar(number: int, size: int, extra: dict[str, bytes]) -> Iterator[bytes]:
    """A tar stream: `extra` files, then 4 MiB files until `size` bytes."""
    for name, data in extra.items():
        yield _member(name, len(data)) + data + b"\0" * (-len(data) % 512)
    written = 0
    while written < size:
        yield _member(f"data/layer{number}/file{written // FILE}.bin", FILE)
        for _ in range(FILE // len(BLOCK)):
            yield BLOCK
        written += FILE
    yield b"\0" * 1024


def gzip_chunks(parts: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    for part in parts:
        out = compressor.compress(part)
        if out:
            yield out
    yield compressor.flush()


def main() -> None:
    workdir, layers, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    extras = {
        0: {"app/node_modules/lodash/package.json": b'{"name":"lodash","version":"4.17.20"}'},
        layers - 1: {
            "etc/os-release": b"ID=alpine\nVERSION_ID=3.18.4\n",
            "lib/apk/db/installed": b"P:musl\nV:1.2.4-r2\no:musl\n",
        },
    }
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "c"},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"l{i}"}
            for i in range(layers)
        ],
    }
    uncompressed = 0

    async def read(digest: str) -> AsyncIterator[bytes]:
        nonlocal uncompressed
        number = int(digest[1:])

        def counted() -> Iterator[bytes]:
            nonlocal uncompressed
            for part in layer_tar(number, size, extras.get(number, {})):
                uncompressed += len(part)
                yield part

        for chunk in gzip_chunks(counted()):
            yield chunk

    async def run() -> dict:
        url = f"sqlite:///{workdir / 'meta.db'}"
        await migrations.upgrade(url)
        db = Database(url)
        vulndb = VulnDB(db)
        advisory = {
            "id": "CVE-2099-1",
            "affected": [
                {
                    "package": {"ecosystem": "npm", "name": "lodash"},
                    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
                }
            ],
        }
        await vulndb.import_records([("t", advisory)], ["t"])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = await scan_image(read, manifest, config, vulndb)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        await db.dispose()
        return {
            "uncompressed_bytes": uncompressed,
            "packages": [f"{p.name} {p.version}" for p in result.inventory.packages],
            "findings": [f.name for f in result.findings],
            "peak_growth_mib": round((after - before) / 1024, 1),
            "peak_rss_mib": round(after / 1024, 1),
        }

    print(json.dumps(asyncio.run(run())))


if __name__ == "__main__":
    main()
