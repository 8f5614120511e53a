"""The ECR API's throughput beside ECR's rate quotas and beside moto's server (issue 19).

Run: `PYTHONPATH=src python3 -m benchmarks.ecr_api [--quick] [--out FILE.json]`.

Both servers get the same repository and image (cargobay through `/v2/`, moto through
PutImage, which does not check layers). Each read's request (and InitiateLayerUpload's) is
signed once with SigV4 by botocore and replayed by wrk (2 threads, 32 connections, a Lua script
that sets the body and headers). The other writes cannot be replayed: their requests are
distinct, prepared and signed beforehand (`benchmarks.ecr_writes`), and wrk sends each exactly
once on the same 2 threads and 32 connections (`benchmarks.ecr_replay`), so its figures cover
those requests and no others; every answer must be 2xx. Each write first sends a fifth more
requests untimed (the warm-up), as each read gets a second of wrk first. cargobay verifies
every signature and authorizes every call, moto's server checks neither. A signature stays
valid for AWS's 15 minutes, longer than a run.

Beside requests/s and p99, the server's CPU time per request is measured (user + system time
of its whole process tree, from /proc, over the timed run): on a shared machine that is the
figure that moves least with the load of others. Nothing here asserts a figure: it prints them
with the ratios to ECR's default quota and to moto.

The wrk runs above saturate the server, so their p99 is mostly queueing: 32 connections kept
busy wait on average 32 / (requests/s) whatever a request costs. The paced runs answer the other
question a user of a quota asks, the latency while the server is asked for exactly twice the
quota: each read (of those with a quota) is replayed again on 32 connections, each wrk thread
sending on a fixed schedule at its share of the rate (`_PACE`), and each write with a quota
sends fresh distinct requests on the same schedule, for as long (rate x seconds of them:
`replay.lua` paces them as `_PACE` does, cargobay only). The achieved rate is printed
beside the target: a server that cannot keep up falls behind the schedule, and the requests it
delays are then sent late rather than timed from their slot (wrk times a request from its send),
so a paced p99 only stands where the achieved rate met the schedule.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import client as cl
from benchmarks import ecr_replay, ecr_servers, ecr_writes
from benchmarks.registries import Cargobay, Registry
from benchmarks.scenarios import ScenarioError, run_wrk

REGION = ecr_writes.REGION
# ECR's default per-account, per-region rate quotas (requests per second).
QUOTAS = {
    "BatchGetImage": 2000,
    "GetDownloadUrlForLayer": 3000,
    "BatchCheckLayerAvailability": 1000,
    "GetAuthorizationToken": 500,
    "UploadLayerPart": 500,
    "InitiateLayerUpload": 100,
    "CompleteLayerUpload": 100,
    "PutImage": 10,
    "DescribeImages": None,  # no published quota of its own
}
REPO = ecr_servers.REPO
Moto = ecr_servers.Moto
cpu_seconds = ecr_servers.cpu_seconds
_seed = ecr_servers.seed  # also used by the benchmarks built on this one
_timed = ecr_servers.timed


def _bodies(tag: str, layer: str) -> dict[str, dict[str, Any]]:
    """The requests wrk replays (the same one again and again)."""
    return {
        "BatchGetImage": {"repositoryName": REPO, "imageIds": [{"imageTag": tag}]},
        "GetDownloadUrlForLayer": {"repositoryName": REPO, "layerDigest": layer},
        "BatchCheckLayerAvailability": {"repositoryName": REPO, "layerDigests": [layer]},
        "GetAuthorizationToken": {},
        "DescribeImages": {"repositoryName": REPO},
        "InitiateLayerUpload": {"repositoryName": REPO},
    }


def _lua(url: str, operation: str, body: dict[str, Any], creds: tuple[str, str]) -> str:
    """A wrk script that replays one SigV4-signed ECR request (`ecr_writes.sign`)."""
    data, headers = ecr_writes.sign(url, operation, body, creds)
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(data.decode())}"]
    for name, text in headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(text)}")
    return "\n".join(lines) + "\n"


# Appended to a replay script: LuaJIT's ffi reads CLOCK_MONOTONIC, and `delay()` (which wrk
# asks before every request of the thread's connections) returns the time to the thread's next
# slot; slots advance by the period exactly, so wrk's whole-millisecond timers even out.
_PACE = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } cargobay_timespec;
int clock_gettime(int clock, cargobay_timespec *tp);
]]
local now_ts = ffi.new("cargobay_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end
local period, slot = 0, nil
function init(args)
  period = tonumber(args[1])
end
function delay()
  local now = now_ms()
  slot = (slot or now) + period
  local wait = slot - now
  if wait < 0 then return 0 end
  return math.floor(wait + 0.5)
end
"""
PACED_THREADS = 2


def paced(url: str, script: Path, rate: float, seconds: int) -> dict[str, float]:
    """wrk on 32 connections asked for `rate` requests/s in all: its rate and p99."""
    paced_script = script.with_suffix(".paced.lua")
    paced_script.write_text(script.read_text() + _PACE)
    period_ms = PACED_THREADS * 1000 / rate
    args = [f"-t{PACED_THREADS}", "-c32", f"-d{seconds}s", "-s", str(paced_script), url + "/"]
    figures = run_wrk([*args, "--", f"{period_ms:.6f}"], seconds + 60)
    return {"rate": rate, "rps": figures["rps"], "p99_ms": figures["p99_ms"]}


def measure(
    registry: Registry,
    creds: tuple[str, str],
    seconds: int,
    workdir: Path,
    quick: bool = False,
    only: set[str] | None = None,
    pace: bool = True,
) -> dict[str, dict[str, Any]]:
    tag, _digest, layer, image = _seed(registry, creds)
    results = {}
    url = registry.url
    for operation, body in _bodies(tag, layer).items():
        if only and operation not in only:
            continue
        script = workdir / f"{registry.name}-{operation}.lua"
        script.write_text(_lua(url, operation, body, creds))
        try:
            # A short warm-up (not in a quick run, which only shows the benchmark works), then
            # the timed run.
            if not quick:
                run_wrk(["-t2", "-c32", "-d1s", "-s", str(script), url + "/"], 60)
            results[operation] = _timed(
                registry,
                lambda script=script: run_wrk(
                    ["-t2", "-c32", f"-d{seconds}s", "-s", str(script), url + "/"], seconds + 60
                ),
            )
        except ScenarioError as exc:  # reported, with the reason, not fatal
            print(f"{registry.name} {operation}: {exc}", file=sys.stderr)
            results[operation] = {"error": str(exc).splitlines()[0]}
            continue
        quota = QUOTAS.get(operation)
        if pace and quota and isinstance(registry, Cargobay):
            try:
                results[operation]["paced"] = paced(url, script, 2 * quota, seconds)
            except ScenarioError as exc:
                print(f"{registry.name} {operation} paced: {exc}", file=sys.stderr)
                results[operation]["paced"] = {"error": str(exc).splitlines()[0]}
    for operation, write in ecr_writes.PREPARE.items():
        if only and operation not in only:
            continue
        try:
            results[operation] = _writes(registry, creds, image, operation, workdir, quick)
        except ScenarioError as exc:  # moto: not implemented (HTTP 500)
            print(f"{registry.name} {operation}: {exc}", file=sys.stderr)
            results[operation] = {"error": str(exc).splitlines()[0]}
            continue
        quota = QUOTAS.get(operation)
        if pace and quota and isinstance(registry, Cargobay):
            try:
                # Fresh distinct requests, sent at twice the quota for the reads' duration.
                requests = _prepare(registry, creds, image, write, 2 * quota * seconds, "paced")
                prefix = workdir / f"{registry.name}-{operation}-paced"
                figures = ecr_replay.replay(url, requests, prefix, rate=2 * quota)
                results[operation]["paced"] = {
                    k: figures[k]
                    for k in ("rate", "rps", "p99_ms", "requests", "method", "wrk_peak_mib")
                }
            except ScenarioError as exc:
                print(f"{registry.name} {operation} paced: {exc}", file=sys.stderr)
                results[operation]["paced"] = {"error": str(exc).splitlines()[0]}
    return results


def _prepare(
    registry: Registry,
    creds: tuple[str, str],
    image: cl.SmallImage,
    write: ecr_writes.Write,
    count: int,
    label: str,
) -> list[ecr_writes.Signed]:
    """`count` distinct signed requests of `write`, in REPO or spread over fresh repositories
    (`<REPO>-<label><n>`, seeded with the benchmark's image) of `write.per_repository`."""
    if not write.per_repository:
        return write.prepare(registry.url, REPO, count, creds, image)
    requests: list[ecr_writes.Signed] = []
    for n, first in enumerate(range(0, count, write.per_repository)):
        repo = f"{REPO}-{label}{n}"
        _seed(registry, creds, repo, image)
        size = min(write.per_repository, count - first)
        requests += write.prepare(registry.url, repo, size, creds, image)
    return requests


def _writes(
    registry: Registry,
    creds: tuple[str, str],
    image: cl.SmallImage,
    operation: str,
    workdir: Path,
    quick: bool,
) -> dict[str, Any]:
    """A write's distinct requests sent once each by wrk (`ecr_replay`): its figures."""
    write = ecr_writes.PREPARE[operation]
    count = write.quick if quick else write.full
    # A warm-up (not in a quick run), as the reads' second of wrk: each worker's first calls
    # import and compile what the later ones reuse. Its requests come first, its own repositories.
    warm = 0 if quick else count // 5
    prefix = workdir / f"{registry.name}-{operation}"
    if warm:
        requests = _prepare(registry, creds, image, write, warm, "warm")
        ecr_replay.replay(registry.url, requests, prefix.with_name(prefix.name + "-warm"))
    requests = _prepare(registry, creds, image, write, count, "timed")
    return _timed(registry, lambda: ecr_replay.replay(registry.url, requests, prefix))


def report(cargobay: dict[str, Any], moto: dict[str, Any] | None) -> str:
    rows = [
        "| operation | cargobay req/s | p99 (ms) | CPU µs/req | ECR quota | x quota | moto req/s"
        " | moto p99 (ms) | moto CPU µs/req | x moto |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for operation, ours in cargobay.items():
        quota = QUOTAS.get(operation)
        theirs = (moto or {}).get(operation)
        if "error" in ours:
            rows.append(f"| {operation} | error: {ours['error']} | | | | | | | | |")
            continue
        if theirs and "error" in theirs:  # moto answers 500 for what it does not implement
            theirs = None
        rows.append(
            "| {op} | {rps:,.0f} | {p99:.1f} | {cpu:,.0f} | {q} | {xq} | {mrps} | {mp99} | {mcpu}"
            " | {xm} |".format(
                op=operation,
                rps=ours["rps"],
                p99=ours["p99_ms"],
                cpu=ours.get("cpu_us", 0),
                q=f"{quota:,}" if quota else "-",
                xq=f"{ours['rps'] / quota:.2f}x" if quota else "-",
                mrps=f"{theirs['rps']:,.0f}" if theirs else "-",
                mp99=f"{theirs['p99_ms']:.1f}" if theirs else "-",
                mcpu=f"{theirs.get('cpu_us', 0):,.0f}" if theirs else "-",
                xm=f"{ours['rps'] / theirs['rps']:.2f}x" if theirs else "-",
            )
        )
    paced_rows = [
        f"| {operation} | {p['rate']:,.0f} | {p['rps']:,.0f} | {p['p99_ms']:.1f} |"
        for operation, ours in cargobay.items()
        if "paced" in ours and "error" not in (p := ours["paced"])
    ]
    if paced_rows:
        rows += [
            "",
            "Paced at twice the quota (wrk -c32 on a fixed schedule; see the module's note):",
            "",
            "| operation | asked req/s | achieved req/s | p99 (ms) |",
            "|---|---|---|---|",
            *paced_rows,
        ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1-second runs, no warm-up, fewer writes (CI smoke)"
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--no-moto", action="store_true")
    parser.add_argument(
        "--no-paced", action="store_true", help="skip the runs paced at twice the quota"
    )
    parser.add_argument("--only", help="comma-separated operations (default: all)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--charts", type=Path, help="write ecr_api.png into this directory")
    parser.add_argument(
        "--backend",
        choices=("embedded", "postgres-s3"),
        default="embedded",
        help="cargobay's metadata and storage (postgres-s3: `benchmarks.backends.ScaleOut`)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    seconds = 1 if args.quick else args.seconds
    with tempfile.TemporaryDirectory(prefix="cargobay-ecr-api-") as tmp:
        workdir = Path(tmp)
        scaleout = None
        if args.backend == "postgres-s3":
            from benchmarks.backends import ScaleOut

            scaleout = ScaleOut(workdir).start()
        cargobay = Cargobay(workdir, 60)
        if scaleout is not None:
            cargobay.env = scaleout.cargobay_env()
        cargobay.start()
        moto: Registry | None = None
        try:
            assert cargobay.auth is not None
            only = set(args.only.split(",")) if args.only else None
            ours = measure(
                cargobay, cargobay.auth, seconds, workdir, args.quick, only, not args.no_paced
            )
            theirs = None
            if not args.no_moto:
                moto = Moto(workdir, 60).start()
                creds = ("testing", "testing")
                theirs = measure(moto, creds, seconds, workdir, args.quick, only)
        finally:
            cargobay.stop()
            if moto is not None:
                moto.stop()
            if scaleout is not None:
                scaleout.stop()
    print(report(ours, theirs))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.out:
        args.out.write_text(json.dumps({"cargobay": ours, "moto": theirs}, indent=2))
    if args.charts:
        from benchmarks import charts

        charts.ecr_api({"cargobay": ours, "moto": theirs}, args.charts, QUOTAS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
