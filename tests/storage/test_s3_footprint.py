"""A process that serves blobs from S3 loads no AWS library when its credentials come from the
storage URL or the environment: the S3 calls are cargobay's own client (storage/s3/client.py),
and boto3's client cost each worker 23-25 MiB (benchmarks/RESULTS.md, "Memory, stop 23")."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from s3server import MotoServer

PROBE = """
import asyncio, hashlib, sys
from cargobay.storage import open_store

async def main(url):
    store = open_store(url)
    data = b"blob bytes " * 100_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    await store.ready()
    await store.upload_create("u1")
    async def blocks():
        yield [data]
    await store.upload_append("u1", 0, blocks())
    await store.upload_commit("u1", digest)
    back = b"".join([chunk async for chunk in store.read(digest)])
    assert back == data, "read back differs"
    assert (await store.download_url(digest, 60)).startswith("http")
    store.close()

asyncio.run(main(sys.argv[1]))
print(sorted(m for m in ("boto3", "botocore") if m in sys.modules))
"""


def _probe(url: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_s3_store_loads_no_aws_library(s3_server: MotoServer) -> None:
    s3_server.create_bucket("footprint")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    in_url = s3_server.storage_url("footprint", uuid.uuid4().hex, with_credentials=True)
    assert _probe(in_url, clean) == "[]"
    from_env = s3_server.storage_url("footprint", uuid.uuid4().hex)
    assert _probe(from_env, {**clean, **s3_server.env}) == "[]"
