"""Pulling through the cache, cold and warm, against pulling from the upstream directly.

    python3 -m benchmarks.pullthrough [--quick] [--size-mib 1024] [--layers 8] [--reps 2]

Starts Debian's CNCF Distribution as the upstream and `cargobay serve` (embedded defaults) with
a pull-through cache rule `up` for it, pushes an image of `--size-mib` random bytes in
`--layers` layers to the upstream with skopeo, and times `skopeo copy` into a `dir:` layout:
- direct: from the upstream itself (before and after the cache pulls; the median is reported);
- cold: the first pull through the cache, which fetches every blob from the upstream while
  streaming it to skopeo and storing it (one per run: a second would find the blobs stored);
- warm: the same pull again, served from cargobay's store;
- normal: an image of the same layer sizes (its own blobs) pushed to cargobay as an ordinary
  repository and pulled from there. Warm and normal both read blobs the store wrote with
  direct I/O, so the first repetition of each reads them from disk, the next from the cache.
Prints the ratios (targets: cold <= 1.2x direct; warm at the speed of a normal pull), and the
CPU seconds per GiB each pull cost the cargobay server (every worker: utime + stime from
`/proc/<pid>/stat`) and Distribution, which a shared machine disturbs far less than wall time.
`--quick` is a 16 MiB image in 2 layers, one repetition: it only shows the benchmark runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from benchmarks.registries import Cargobay, Distribution

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from imagebuilder import build_image


def _skopeo(*args: str) -> float:
    started = time.monotonic()
    subprocess.run(["skopeo", *args], check=True, capture_output=True)
    return time.monotonic() - started


def _tree_cpu(session: int) -> float:
    """User + system CPU seconds of every live process in a session (a server and its
    workers; `Registry.start` puts each in a session of its own)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # the session id
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Puller:
    """Times `skopeo copy <ref> dir:<fresh directory>`, removing the copy afterwards so every
    pull writes the same bytes to a directory of its own."""

    def __init__(self, work: Path, servers: dict[str, int]) -> None:
        self.work = work
        self.count = 0
        self.servers = servers
        self.cpu: dict[str, dict[str, list[float]]] = {}

    def __call__(self, kind: str, ref: str, creds: str | None = None) -> float:
        """Time one pull, noting each server's CPU seconds for it under `kind`."""
        self.count += 1
        dest = self.work / f"pulled-{self.count}"
        auth = ["--src-creds", creds] if creds else []
        before = {name: _tree_cpu(pid) for name, pid in self.servers.items()}
        try:
            return _skopeo(
                "copy", "--src-tls-verify=false", *auth, f"docker://{ref}", f"dir:{dest}"
            )
        finally:
            for name, pid in self.servers.items():
                spent = _tree_cpu(pid) - before[name]
                self.cpu.setdefault(kind, {}).setdefault(name, []).append(spent)
            shutil.rmtree(dest, ignore_errors=True)


def run(size_mib: int, layers: int, reps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cargobay-ptc-bench-") as tmp:
        work = Path(tmp)
        (work / "upstream").mkdir()
        (work / "cargobay").mkdir()
        upstream = Distribution(work / "upstream", 60.0).start()
        cargobay = Cargobay(work / "cargobay", 60.0).start()
        try:
            assert cargobay.auth is not None
            key, secret = cargobay.auth
            creds = f"{key}:{secret}"
            ecr = boto3.client(
                "ecr", endpoint_url=cargobay.url, region_name="us-east-1",
                aws_access_key_id=key, aws_secret_access_key=secret,
            )  # fmt: skip
            ecr.create_pull_through_cache_rule(
                ecrRepositoryPrefix="up", upstreamRegistryUrl=upstream.url
            )
            layer = size_mib * 1024 * 1024 // layers
            image = build_image(work / "img", [layer] * layers)
            # The normal pull's image has blobs of its own (the same sizes): the store is
            # content-addressed, and shared blobs would let the cache fill find them stored
            # and only link them, or let one pull read from disk what the other left cached.
            plain = build_image(work / "plain", [layer] * layers)
            total = sum(len(blob) for blob in image.blobs.values())
            source = f"oci:{image.layout}:latest"
            _skopeo(
                "copy", "--dest-tls-verify=false", source, f"docker://{upstream.host}/bench/app:1"
            )
            _skopeo(
                "copy", "--dest-tls-verify=false", "--dest-creds", creds,
                f"oci:{plain.layout}:latest", f"docker://{cargobay.host}/plain/app:1",
            )  # fmt: skip
            pull = Puller(work, {"cargobay": cargobay.pid, "distribution": upstream.pid})
            direct = [pull("direct", f"{upstream.host}/bench/app:1")]
            cold = pull("cold", f"{cargobay.host}/up/bench/app:1", creds)
            warm, normal = [], []
            for _ in range(reps):
                warm.append(pull("warm", f"{cargobay.host}/up/bench/app:1", creds))
                normal.append(pull("normal", f"{cargobay.host}/plain/app:1", creds))
                direct.append(pull("direct", f"{upstream.host}/bench/app:1"))
        finally:
            cargobay.stop()
            upstream.stop()
    return {
        "mib": total / 2**20,
        "direct": statistics.median(direct),
        "cold": cold,
        "warm": statistics.median(warm),
        "normal": statistics.median(normal),
        # CPU seconds per GiB pulled, per pull kind and server (medians).
        "cpu": {
            kind: {name: statistics.median(v) * 2**30 / total for name, v in servers.items()}
            for kind, servers in pull.cpu.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 MiB, 2 layers, 1 repetition")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.layers, args.reps = 16, 2, 1
    load = os.getloadavg()[0]
    r = run(args.size_mib, args.layers, args.reps)
    print(f"image: {r['mib']:.0f} MiB in {args.layers} layers; {args.reps} repetition(s)")
    print(f"direct pull from the upstream:       {r['direct']:.2f} s")
    print(f"cold pull through the cache:         {r['cold']:.2f} s")
    print(f"warm pull through the cache:         {r['warm']:.2f} s")
    print(f"normal pull of a pushed repository:  {r['normal']:.2f} s")
    print(f"cold / direct: {r['cold'] / r['direct']:.2f}x (target <= 1.2x)")
    print(f"warm / direct: {r['warm'] / r['direct']:.2f}x")
    print(f"warm / normal: {r['warm'] / r['normal']:.2f}x (target: about 1x)")
    print("server CPU seconds per GiB pulled (cargobay: every worker; distribution):")
    for kind, servers in r["cpu"].items():
        print(f"  {kind:<7} cargobay {servers['cargobay']:.2f}  "
              f"distribution {servers['distribution']:.2f}")  # fmt: skip
    print(f"load average: {load:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
