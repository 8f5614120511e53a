"""Where an ECR API call's CPU goes, step by step, in one process (issue 19).

`python3 -m benchmarks.ecr_api_parts [--quick] [--out FILE.json]` seeds a data dir through a
real `cargobay serve` (one image, as `benchmarks.ecr_api` does), stops it, then builds the
same `Services` in this process and times each step a BatchGetImage or GetDownloadUrlForLayer
call makes, as the administrator the benchmark signs with: CPU microseconds per call (process
time, so the load of others on a shared machine moves it little), best of a few rounds. The
steps of the request path that are not timed here (aiohttp's parsing and writing, the
dispatcher's own lines) are the rest of `benchmarks.ecr_api`'s CPU per request. The audit
record is timed in all (every thread of the process: its inserts run in one of their own), on
the event loop's thread alone, and (not with --quick) on a table of 100,000 records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks import ecr_api
from benchmarks.registries import Cargobay

REGION = "us-east-1"
LARGE_AUDIT = 100_000  # records in the audit table for the large-table figure (full mode)


def _best_us(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n)
    return round(best * 1e6, 1)


async def _best_us_async(
    fn: Callable[[], Awaitable[object]],
    n: int,
    rounds: int = 5,
    clock: Callable[[], float] = time.process_time,
) -> float:
    """Process CPU per call (every thread's: the audit's inserts run in one of their own), or
    `clock`'s."""
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        for _ in range(n):
            await fn()
        best = min(best, (clock() - start) / n)
    return round(best * 1e6, 1)


def _seed(workdir: Path) -> tuple[Path, tuple[str, str], str]:
    """A data dir with the benchmark's repository and image; (dir, admin key, layer digest)."""
    server = Cargobay(workdir, 60).start()
    try:
        assert server.auth is not None
        _tag, _digest, layer, _image = ecr_api._seed(server, server.auth)
        return server.data_dir, server.auth, layer
    finally:
        server.stop()


async def _audit_rows(db: Any) -> int:
    from sqlalchemy import func, select

    from cargobay.metadata import schema

    async with db.read() as conn:
        return int((await conn.execute(select(func.max(schema.audit_records.c.id)))).scalar() or 0)


async def _measure(
    data_dir: Path, creds: tuple[str, str], layer: str, n: int, large: bool = False
) -> dict[str, Any]:
    from cargobay.audit import record as audit
    from cargobay.aws import shapes
    from cargobay.config import load_settings
    from cargobay.iam import authz
    from cargobay.registry import ecrreads
    from cargobay.registry.deletes import ImageRef
    from cargobay.registry.services import Services

    settings = load_settings(overrides={"data_dir": data_dir}, environ={})
    services = Services.build(settings)
    try:
        store = services.credentials
        record = await store.lookup(creds[0])
        assert record is not None
        principal = record.principal
        repo = await services.repositories.get(principal.account_id, ecr_api.REPO)
        resource = authz.Resource(principal.account_id, REGION, ecr_api.REPO)
        body = {"repositoryName": ecr_api.REPO, "imageIds": [{"imageTag": "v1"}]}
        raw = json.dumps(body).encode()
        found = await services.manifests.get_batch(repo, [ImageRef(tag="v1")], principal.arn)
        loaded = await ecrreads.read(services.db, resource, principal, tags=["v1"], digests=[])
        assert loaded is not None and loaded.images is not None
        images = loaded.images
        answer = {"images": [{"imageManifest": found[0].content.decode()}], "failures": []}

        async def key_row() -> object:  # what every call read before this round
            row = await store._key_row(creds[0])
            assert row is not None
            return store._open(row.sealed)

        async def audit_record() -> None:
            events = [
                audit.AuditEvent(
                    principal.account_id,
                    "ecr.amazonaws.com",
                    "BatchGetImage",
                    True,
                    REGION,
                    principal,
                    "127.0.0.1",
                    "bench",
                    dict(body),
                    request_id=str(i),
                    resources=[audit.Resource("AWS::ECR::Repository", ecr_api.REPO, "arn")],
                )
                for i in range(100)
            ]
            await audit.write(services.db, events)

        parts = {
            "access key: row read + secret (before)": await _best_us_async(key_row, n),
            "access key: remembered, generation read (after)": await _best_us_async(
                lambda: store.lookup(creds[0]), n
            ),
            "JSON body decode": _best_us(lambda: json.loads(raw), n),
            "input shape (botocore model)": _best_us(
                lambda: shapes.validate("ecr", "BatchGetImage", body), n
            ),
            "repository row": await _best_us_async(
                lambda: services.repositories.find(principal.account_id, ecr_api.REPO), n
            ),
            "authorization (ecr:BatchGetImage)": await _best_us_async(
                lambda: services.authorizer.require(principal, "ecr:BatchGetImage", resource), n
            ),
            "pull-through coverage": await _best_us_async(
                lambda: services.pullthrough.covers(principal.account_id, ecr_api.REPO), n
            ),
            "manifests (BatchGetImage)": await _best_us_async(
                lambda: services.manifests.get_batch(repo, [ImageRef(tag="v1")], principal.arn),
                n,
            ),
            "blob size (GetDownloadUrlForLayer)": await _best_us_async(
                lambda: services.blobs.stat(repo, layer), n
            ),
            "one statement, BatchGetImage (ecrreads: repository, policies, manifests)": (
                await _best_us_async(
                    lambda: ecrreads.read(
                        services.db, resource, principal, tags=["v1"], digests=[]
                    ),
                    n,
                )
            ),
            "one statement, GetDownloadUrlForLayer (ecrreads: ..., layer)": (
                await _best_us_async(
                    lambda: ecrreads.read(services.db, resource, principal, layer=layer), n
                )
            ),
            "authorization on what that statement read": await _best_us_async(
                lambda: services.authorizer.require(
                    principal, "ecr:BatchGetImage", resource, None, loaded.policies
                ),
                n,
            ),
            "manifests served from that statement (pull record, no statement)": (
                await _best_us_async(
                    lambda: services.manifests.serve_batch(
                        repo, [ImageRef(tag="v1")], *images, principal.arn
                    ),
                    n,
                )
            ),
            "JSON answer encode": _best_us(lambda: json.dumps(answer).encode(), n),
            "audit record, written in batches of 100 (per record)": round(
                await _best_us_async(audit_record, max(2, n // 100)) / 100, 1
            ),
            "audit record, of that on the event loop's thread (per record)": round(
                await _best_us_async(audit_record, max(2, n // 100), clock=time.thread_time) / 100,
                1,
            ),
        }
        if large:
            # The same on a table the size a busy registry keeps: where an index's entries go
            # (the end, or random pages) is what its size makes expensive.
            while await _audit_rows(services.db) < LARGE_AUDIT:
                await audit_record()
            parts[f"audit record, on a table of {LARGE_AUDIT:,} records (per record)"] = round(
                await _best_us_async(audit_record, max(2, n // 100)) / 100, 1
            )
        return parts
    finally:
        await services.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (seconds)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cargobay-ecr-parts-") as tmp:
        data_dir, creds, layer = _seed(Path(tmp))
        parts = asyncio.run(
            _measure(data_dir, creds, layer, 100 if args.quick else 2000, large=not args.quick)
        )
    width = max(map(len, parts))
    for name, us in parts.items():
        print(f"{name:<{width}}  {us:8.1f} us")
    if args.out:
        args.out.write_text(json.dumps(parts, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
