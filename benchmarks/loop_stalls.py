"""How long a worker's event loop stalls while the audit recorder flushes, and how much CPU a
full garbage collection takes, with the worker's GC settings (`cargobay.gctune`) and without.

    python3 -m benchmarks.loop_stalls [--records 400] [--trials 5]

Audit: a task yields in a loop and notes its longest gap while an `AuditRecorder` flushes
`--records` buffered ECR read records into a fresh SQLite file. That is the stall every request
on the worker waits out. GC: the CPU time of a full collection once a worker's modules and
services are loaded, first with everything tracked, then after `gctune.tune()` froze them.
Nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path

from cargobay.audit.record import AuditEvent, AuditRecorder, Resource
from cargobay.iam.principal import Principal
from cargobay.metadata import migrations
from cargobay.metadata.db import Database

PRINCIPAL = Principal("123456789012", "root", "AKIAEXAMPLEEXAMPLE01", True)
REPO = "bench/api"
ARN = f"arn:aws:ecr:us-east-1:123456789012:repository/{REPO}"


def _event() -> AuditEvent:
    return AuditEvent(
        account_id=PRINCIPAL.account_id,
        event_source="ecr.amazonaws.com",
        event_name="BatchGetImage",
        read_only=True,
        region="us-east-1",
        principal=PRINCIPAL,
        source_ip="127.0.0.1",
        user_agent="Boto3/1.35 md/Botocore#1.35 ua/2.0 os/linux lang/python#3.11",
        request_parameters={"repositoryName": REPO, "imageIds": [{"imageTag": "v1"}]},
        request_id="bench",
        resources=[Resource("AWS::ECR::Repository", REPO, ARN)],
    )


async def audit_stall_ms(records: int, trials: int) -> list[float]:
    """The longest loop stall (ms) while `records` audit records are flushed, per trial."""
    with tempfile.TemporaryDirectory(prefix="cargobay-stalls-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'db.sqlite'}"
        await migrations.ensure(url, upgrade_schema=True)
        db = Database(url)
        stalls = []
        try:
            for _ in range(trials):
                recorder = AuditRecorder(db, flush_ms=50)
                worst = 0.0
                done = asyncio.Event()

                async def ticker(done: asyncio.Event = done) -> None:
                    nonlocal worst
                    last = time.perf_counter()
                    while not done.is_set():
                        await asyncio.sleep(0)
                        now = time.perf_counter()
                        worst, last = max(worst, now - last), now

                task = asyncio.create_task(ticker())
                await asyncio.sleep(0.01)
                worst = 0.0
                for _ in range(records):
                    await recorder.record(_event())
                # As in a worker: the recorder's own timers flush the buffer.
                while recorder._buffer or recorder._flushing:
                    await asyncio.sleep(0.01)
                done.set()
                await recorder.close()
                await task
                stalls.append(worst * 1000)
        finally:
            await db.dispose()
    return stalls


def full_collection_ms() -> tuple[float, float, int]:
    """CPU ms of a full collection with a worker's modules loaded: plain, then after the
    worker's tuning froze them; and how many objects the freeze holds."""
    from cargobay import app, gctune, worker  # noqa: F401  (a worker's modules)
    from cargobay.ecr import actions  # noqa: F401  (the ECR door, botocore's models)

    gc.collect()
    start = time.process_time()
    gc.collect()
    plain = (time.process_time() - start) * 1000
    threshold = gc.get_threshold()
    gctune.tune()
    try:
        start = time.process_time()
        gc.collect()
        tuned = (time.process_time() - start) * 1000
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    return plain, tuned, frozen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    stalls = asyncio.run(audit_stall_ms(args.records, args.trials))
    shown = " ".join(f"{s:.1f}" for s in stalls)
    print(f"audit flush of {args.records} records: longest loop stall (ms) {shown}; ", end="")
    print(f"median {statistics.median(stalls):.1f}")
    plain, tuned, frozen = full_collection_ms()
    print(
        f"full collection: {plain:.1f} ms CPU with everything tracked, {tuned:.1f} ms after "
        f"gctune.tune() froze {frozen:,} objects"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
