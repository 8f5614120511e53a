"""Pushes' latency while the ECR reads are audited (issue 19, stop 26): a small blob upload
(POST + PUT, write transactions that queue for the SQLite writer lock behind the audit's batch
inserts) again and again, while wrk replays BatchGetImage at c=32 (every call an audit record).

    PYTHONPATH=src python3 -m benchmarks.audit_pushes [--runs 2] [--seconds 8]
        [--variant NAME=/path/to/src ...]

Each variant is a `cargobay serve` started with that source tree first on PYTHONPATH (default:
this tree), the variants interleaved run by run. Printed per run: the pushes' p50/p90/p99/max,
the reads' rate and the load average (wall figures: on a shared machine, compare them only
beside the load). Nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import client as cl
from benchmarks import ecr_api
from benchmarks.registries import Cargobay

PUSH_REPO = "bench/pushes"


def run_once(name: str, src: str | None, seconds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cargobay-audit-pushes-") as tmp:
        server = Cargobay(Path(tmp), 60)
        if src:
            server.env = {"PYTHONPATH": src}
        server.start()
        try:
            assert server.auth is not None
            tag, _digest, layer, _image = ecr_api._seed(server, server.auth)
            body = ecr_api._bodies(tag, layer)["BatchGetImage"]
            script = Path(tmp) / "reads.lua"
            script.write_text(ecr_api._lua(server.url, "BatchGetImage", body, server.auth))
            wrk = subprocess.Popen(
                ["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(script), server.url + "/"],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1.0)  # the reads are under way
            client = cl.Client(server)
            latencies: list[float] = []
            end = time.monotonic() + seconds - 2
            while time.monotonic() < end:
                data = f"{name} {len(latencies)} {time.time()}".encode() * 8
                start = time.perf_counter()
                client.put_blob(PUSH_REPO, data)
                latencies.append(time.perf_counter() - start)
            out = wrk.communicate(timeout=seconds + 60)[0]
            reads = next(line for line in out.splitlines() if "Requests/sec" in line)
        finally:
            server.stop()
    latencies.sort()

    def at(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * share))] * 1e3

    return {
        "pushes": len(latencies),
        "p50_ms": at(0.5),
        "p90_ms": at(0.9),
        "p99_ms": at(0.99),
        "max_ms": latencies[-1] * 1e3,
        "reads_per_s": float(reads.split()[-1]),
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME=SRC: a tree's src directory"
    )
    args = parser.parse_args(argv)
    variants = dict(v.split("=", 1) for v in args.variant) or {"this": None}
    for _ in range(args.runs):
        for name, src in variants.items():
            f = run_once(name, src, args.seconds)
            print(
                f"{name:10} pushes {f['pushes']:4.0f}: p50 {f['p50_ms']:6.1f}"
                f" p90 {f['p90_ms']:6.1f} p99 {f['p99_ms']:6.1f} max {f['max_ms']:6.1f} ms;"
                f" reads {f['reads_per_s']:,.0f}/s; load {f['load']:.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
