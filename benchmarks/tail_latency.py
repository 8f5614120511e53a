"""Where the ECR API's p99 comes from (issue 19's "p99 under 20 ms"): the same wrk replay as
`benchmarks.ecr_api` (2 threads, 32 connections, SigV4 on), with the figures that explain a tail:

- p50/p90/p99 and requests/s, per run, several runs interleaved when variants are compared;
- how wrk's 32 connections split across the workers (counted from /proc during the run);
- the CPU seconds of wrk and of each worker over the run (who holds the 2 cores);
- floors: a trivial aiohttp app (one JSON answer, same worker count, SO_REUSEPORT) under the
  same wrk load, answering at once (`--floor`) or after burning cargobay's CPU per request
  (`--floor-cpu-us`): the tail that the CPU cost and the scheduling alone give on this machine,
  with no stall and nothing else in the worker;
- with `--probe`, each worker's event-loop turns by CPU time and the tasks whose turns held
  the loop 2 ms or more (`benchmarks.loop_probe`).

    PYTHONPATH=src python3 -m benchmarks.tail_latency [--runs 3] [--seconds 10]
        [--floor] [--floor-cpu-us N] [--probe]
        [--variant NAME=ENV=VALUE,...]

Nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import ecr_api, loop_probe
from benchmarks.registries import Cargobay, Registry, process_tree
from benchmarks.scenarios import _ms

OPERATIONS = ("BatchGetImage", "GetDownloadUrlForLayer")
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(target[8:-1])
    except OSError:
        pass
    return found


def _sockets(port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets in `state` (hex, as /proc shows it: "01" established, "0A"
    listening) whose local port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == state and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def _established(port: int) -> set[str]:
    """Inodes of established TCP sockets whose local port is `port`."""
    return _sockets(port, "01")


def _listens(pid: int, port: int) -> bool:
    return bool(_socket_inodes(pid) & _sockets(port, "0A"))


def connection_split(root: int, port: int) -> dict[int, int]:
    """Established connections on `port` held by each process under `root`."""
    established = _established(port)
    return {pid: len(_socket_inodes(pid) & established) for pid in process_tree(root)}


def wrk(script: Path, url: str, seconds: int, root: int, port: int) -> dict[str, Any]:
    """One wrk run with its percentiles, plus the connection split and CPU split."""
    # The processes that serve: those holding the port's listening socket (every one, when
    # they fork from one another; not cargobay's supervisor).
    workers = [pid for pid in process_tree(root) if _listens(pid, port)] or [root]
    before = {pid: _cpu(pid) for pid in workers}
    command = ["wrk", "--latency", "--timeout", "30s", "-t2", "-c32", f"-d{seconds}s"]
    proc = subprocess.Popen(
        [*command, "-s", str(script), url + "/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    split: dict[int, int] = {}
    wrk_cpu = [0.0]

    def sample() -> None:
        time.sleep(min(2.0, seconds / 2))
        split.update(connection_split(root, port))
        while proc.poll() is None:
            wrk_cpu[0] = _cpu(proc.pid)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    load = os.getloadavg()[0]
    out, _ = proc.communicate(timeout=seconds + 60)
    sampler.join()
    figures: dict[str, Any] = {"load": load}
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.MULTILINE)
        figures[f"p{pct}"] = _ms(match.group(1)) if match else float("nan")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    figures["rps"] = float(rps.group(1)) if rps else 0.0
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["errors"] = int(bad.group(1)) if bad else 0
    if len(workers) > 1 and root in workers and not split.get(root):
        workers.remove(root)  # cargobay's supervisor: it holds the socket its workers accept from
    figures["split"] = sorted((split.get(pid, 0) for pid in workers), reverse=True)
    figures["cpu_workers"] = [round(_cpu(pid) - before[pid], 2) for pid in workers]
    figures["cpu_wrk"] = round(wrk_cpu[0], 2)
    served = figures["rps"] * seconds
    figures["cpu_us"] = sum(figures["cpu_workers"]) * 1e6 / served if served else 0.0
    return figures


def _line(label: str, op: str, f: dict[str, Any]) -> str:
    return (
        f"{label:<12} {op:<24} {f['rps']:>7,.0f}/s p50 {f['p50']:5.1f} p90 {f['p90']:5.1f} "
        f"p99 {f['p99']:5.1f} ms  conns {f['split']}  cpu workers {f['cpu_workers']} "
        f"wrk {f['cpu_wrk']}  {f['cpu_us']:,.0f} µs/req  load {f['load']:.1f}  errors {f['errors']}"
    )


_FLOOR_APP = textwrap.dedent(
    """
    import asyncio, os, socket, sys, time
    from aiohttp import web

    BODY = b'{"images": [], "failures": []}' * 20

    BURN = int(sys.argv[3]) / 1e6  # CPU seconds a request costs (cargobay's, measured)

    async def answer(request):
        await request.read()
        until = time.thread_time() + BURN
        while time.thread_time() < until:
            pass
        return web.Response(body=BODY, content_type="application/x-amz-json-1.1")

    async def main(port):
        app = web.Application()
        app.router.add_post("/", answer)
        app.router.add_get("/v2/", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024).start()
        await asyncio.Event().wait()

    port, count = int(sys.argv[1]), int(sys.argv[2])
    for _ in range(count - 1):
        if os.fork() == 0:
            break
    asyncio.run(main(port))
    """
)


class Floor(Registry):
    """A trivial aiohttp app with cargobay's worker count and port sharing, each request
    costing `cpu_us` of CPU (0: nothing but aiohttp's own)."""

    name = "floor"

    def __init__(self, workdir: Path, start_timeout: float, cpu_us: int = 0) -> None:
        super().__init__(workdir, start_timeout)
        self.cpu_us = cpu_us

    def command(self) -> list[str]:
        return [sys.executable, "-c", _FLOOR_APP, str(self.port), "2", str(self.cpu_us)]

    def _v2_status(self) -> int:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            response = conn.getresponse()
            response.read()
            return 200
        finally:
            conn.close()


def _probed(env: dict[str, str], sub: Path) -> dict[str, str]:
    """`env` with benchmarks/loop_probe.py installed as the served processes' sitecustomize."""
    probe = sub / "probe"
    probe.mkdir()
    shutil.copy(Path(__file__).with_name("loop_probe.py"), probe / "sitecustomize.py")
    path = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    return {
        **env,
        "PYTHONPATH": f"{probe}:{path}",
        "CARGOBAY_LOOP_PROBE_DIR": str(probe),
    }


def _probe_report(name: str, server: Registry, sub: Path) -> None:
    """Ask each worker for its callback figures (SIGUSR2) and print them."""
    workers = [pid for pid in process_tree(server.pid) if pid != server.pid]
    for pid in workers:
        os.kill(pid, signal.SIGUSR2)
    time.sleep(1.0)
    for pid in workers:
        try:
            figures = json.loads((sub / "probe" / f"{pid}.json").read_text())
        except (OSError, ValueError):
            print(f"{name} worker {pid}: no probe figures", flush=True)
            continue
        order = [f"<{b:g}" for b in loop_probe.BUCKETS_MS] + ["10+"]
        histogram = ", ".join(f"{b} ms: {figures['histogram'].get(b, 0):,}" for b in order)
        print(f"{name} worker {pid} loop turns by CPU: {histogram}", flush=True)
        stalls = sorted(figures["stalls"].items(), key=lambda kv: -kv[1])
        print(f"  turns >= {loop_probe.STALL_MS:g} ms by task: {stalls}", flush=True)
        print(f"  longest (ms, task): {figures['longest']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--ops", default=",".join(OPERATIONS))
    parser.add_argument("--floor", action="store_true", help="also the trivial aiohttp app")
    parser.add_argument(
        "--floor-cpu-us",
        type=int,
        default=0,
        help="also the trivial app with each request burning this much CPU (cargobay's)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=ENV=VALUE[;ENV=VALUE]: a cargobay started with this environment",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="time every event-loop callback's CPU in cargobay's workers (benchmarks.loop_probe)",
    )
    args = parser.parse_args(argv)
    variants: dict[str, dict[str, str]] = {}
    for spec in args.variant or ["default="]:
        name, _, env = spec.partition("=")
        variants[name] = dict(e.split("=", 1) for e in env.split(";") if e)
    ops = args.ops.split(",")
    with tempfile.TemporaryDirectory(prefix="cargobay-tail-") as tmp:
        workdir = Path(tmp)
        servers: dict[str, tuple[Registry, dict[str, Path]]] = {}
        try:
            for name, env in variants.items():
                sub = workdir / name
                sub.mkdir()
                server = Cargobay(sub, 60)
                server.env = _probed(env, sub) if args.probe else env
                server.start()
                assert server.auth is not None
                tag, _digest, layer, _image = ecr_api._seed(server, server.auth)
                bodies = ecr_api._bodies(tag, layer)
                scripts = {}
                for op in ops:
                    scripts[op] = sub / f"{op}.lua"
                    scripts[op].write_text(ecr_api._lua(server.url, op, bodies[op], server.auth))
                servers[name] = (server, scripts)
            floors = {"floor": 0} if args.floor else {}
            if args.floor_cpu_us:
                floors[f"floor{args.floor_cpu_us}us"] = args.floor_cpu_us
            for name, cpu_us in floors.items():
                sub = workdir / name
                sub.mkdir()
                floor = Floor(sub, 30, cpu_us).start()
                script = sub / "floor.lua"
                script.write_text(
                    'wrk.method = "POST"\nwrk.body = "{}"\n'
                    'wrk.headers["Content-Type"] = "application/x-amz-json-1.1"\n'
                )
                servers[name] = (floor, dict.fromkeys(ops, script))
            for server, scripts in servers.values():  # warm-up
                for op in ops:
                    wrk(scripts[op], server.url, 1, server.pid, server.port)
            for _ in range(args.runs):
                for op in ops:
                    for name, (server, scripts) in servers.items():
                        found = wrk(scripts[op], server.url, args.seconds, server.pid, server.port)
                        print(_line(name, op, found), flush=True)
            if args.probe:
                for name in variants:
                    _probe_report(name, servers[name][0], workdir / name)
        finally:
            for server, _ in servers.values():
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
