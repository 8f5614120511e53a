"""How the same request's latency grows with the size of the registry (issue 19).

Run: `PYTHONPATH=src python3 -m benchmarks.flat_costs [--quick] [--out FILE.json] [--no-gc]`.

For each size N (100, 10,000, 100,000; `--quick`: 10, 100, 1,000) a registry is generated with
N repositories and, in one repository (`bench/tags`), N tags, each on an image of its own. One
small image is pushed for real; the rest is inserted **directly into the metadata database**
(benchmarks/flat_seed.py says how), because pushing it would take hours. `cargobay serve` then
runs on it (embedded defaults, auth on) and one keep-alive client repeats each request:

- repositories axis, on a repository in the middle of the catalog: push (PUT of a new manifest
  under a new tag), manifest GET by tag, tags/list page (n=100), `_catalog` page (n=100 from the
  middle), DescribeImages page (maxResults=100, SigV4-signed), lifecycle preview page
  (StartLifecyclePolicyPreview, which evaluates in the request, of a rule expiring what was
  pushed over a week ago, a constant number of images; then GetLifecyclePolicyPreview with
  maxResults=100);
- tags axis, on `bench/tags`: the same, minus `_catalog`, with tags/list from the middle tag.

The figure per size is the median latency (p99 beside it); the ratio is largest size's median
over the smallest's (issue 19's target: at most 1.5x). Apart: a preview of a rule expiring all
but the 50 newest images of `bench/tags`, linear in its output, as microseconds per image
expired. GC: `cargobay gc` (from its queue) on a registry of 1,000,000 blob rows (`--quick`:
5,000) with none, then more and more of them garbage, and on a registry a tenth of the size
with the third amount, and `cargobay gc --full` (the sweep) on the largest with that amount:
its time (and per garbage blob, over the run without garbage), and its peak RSS (VmHWM,
sampled every 50 ms).
Charts and a Markdown table go to benchmarks/charts/ with `--charts`. No figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from benchmarks import client as cl
from benchmarks import flat_seed as seed
from benchmarks.registries import Cargobay

REGION = "us-east-1"
TARGET = "AmazonEC2ContainerRegistry_V20150921."
# The timed lifecycle request: a preview of a rule that selects the images pushed over a week
# ago (a constant number, flat_seed.OLD_IMAGES, at every size), then its first page.
POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "expire what is older than a week",
                "selection": {
                    "tagStatus": "any",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 7,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)
# Reported apart, linear in its output: a rule that expires all but the 50 newest images.
POLICY_MOST = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the 50 newest",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 50,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)
PAGE = 100
FULL = {"sizes": (100, 10_000, 100_000), "repeats": 200, "previews": 5}
QUICK = {"sizes": (10, 100, 1_000), "repeats": 15, "previews": 2}
GC_FULL = {"total": 1_000_000, "garbage": (0, 1_000, 10_000, 100_000)}
GC_QUICK = {"total": 5_000, "garbage": (0, 50, 200, 500)}


class Session:
    """A keep-alive client that times one request at a time, and signs ECR calls."""

    def __init__(self, registry: Cargobay) -> None:
        self.registry = registry
        self.client = cl.Client(registry, timeout=600)
        assert registry.auth is not None
        self.creds = Credentials(*registry.auth)

    def ecr(self, operation: str, body: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        """Headers and body of a signed ECR JSON call (signed before any timing starts)."""
        data = json.dumps(body).encode()
        request = AWSRequest(
            method="POST",
            url=self.registry.url + "/",
            data=data,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": TARGET + operation,
            },
        )
        SigV4Auth(self.creds, "ecr", REGION).add_auth(request)
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        headers["Authorization"] = request.headers["Authorization"]
        return headers, data

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        headers, data = self.ecr(operation, body)
        return json.loads(self._post(headers, data))

    def _post(self, headers: dict[str, str], data: bytes) -> bytes:
        conn = self.client.conn
        conn.request("POST", "/", body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise cl.HTTPError(f"ECR call -> {response.status} {payload[:300]!r}")
        return payload

    def time(self, prepare: Callable[[int], Callable[[], object]], repeats: int) -> list[float]:
        """Milliseconds per call of `prepare(i)()`; `prepare` runs untimed (signing, bodies)."""
        warmup = max(3, repeats // 10)
        out = []
        for i in range(warmup + repeats):
            call = prepare(i)
            start = time.perf_counter()
            call()
            if i >= warmup:
                out.append((time.perf_counter() - start) * 1000)
        return out


def _figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": round(statistics.median(ordered), 3), "p99_ms": round(p99, 3)}


def _scenarios(
    s: Session, image: cl.SmallImage, repo: str, tag: str, last: str | None, size: int
) -> dict[str, Callable[[int], Callable[[], object]]]:
    accept = {"Accept": cl.OCI_MANIFEST}
    after = f"&last={last}" if last else ""

    def push(i: int) -> Callable[[], object]:
        body = cl.manifest_for(image.config, image.layers, {"push": f"{size}-{i}-{time.time()}"})
        return lambda: s.client.put_manifest(repo, f"push-{size}-{i}", body)

    def describe(_i: int) -> Callable[[], object]:
        headers, data = s.ecr("DescribeImages", {"repositoryName": repo, "maxResults": 100})
        return lambda: s._post(headers, data)

    def preview(_i: int) -> Callable[[], object]:
        body = {"repositoryName": repo, "lifecyclePolicyText": POLICY}
        start = s.ecr("StartLifecyclePolicyPreview", body)
        page = s.ecr("GetLifecyclePolicyPreview", {"repositoryName": repo, "maxResults": PAGE})
        return lambda: (s._post(*start), s._post(*page))

    return {
        "push": push,
        "manifest_get": lambda _i: (
            lambda: s.client.request("GET", f"/v2/{repo}/manifests/{tag}", headers=accept)
        ),
        "tags_list": lambda _i: (
            lambda: s.client.request("GET", f"/v2/{repo}/tags/list?n=100{after}")
        ),
        "catalog": lambda _i: (
            lambda: s.client.request("GET", f"/v2/_catalog?n=100&last={seed.repo_name(size // 2)}")
        ),
        "describe_images": describe,
        "lifecycle_preview": preview,
    }


def push_base(workdir: Path) -> tuple[Path, cl.SmallImage]:
    """A data dir holding only the one real push (`flat_seed.push_base`), which every size's
    registry starts as a copy of: one server start for the push, not one per size."""
    registry = Cargobay(workdir, 120).start()
    try:
        with cl.Client(registry) as c:
            image = seed.push_base(c)
    finally:
        registry.stop()
    return registry.data_dir, image


def measure_size(
    workdir: Path, size: int, knobs: dict[str, Any], base: tuple[Path, cl.SmallImage]
) -> dict[str, Any]:
    """Generate the registry of this size from `base`, serve it, time every request on both
    axes."""
    base_dir, image = base
    registry = Cargobay(workdir, 120)
    shutil.copytree(base_dir, registry.data_dir)
    started = time.monotonic()
    seed.add_repositories(registry.data_dir, max(0, size - 2))
    seed.add_tags(registry.data_dir, image, size)
    generated = time.monotonic() - started
    registry = Cargobay(workdir, 120).start()
    result: dict[str, Any] = {"generate_seconds": round(generated, 1)}
    try:
        s = Session(registry)
        mid_repo = seed.repo_name(max(0, size - 2) // 2)
        axes = {
            "repositories": _scenarios(s, image, mid_repo, "v1", None, size),
            "tags": _scenarios(
                s, image, seed.TAGS_REPO, seed.tag_name(size // 2), seed.tag_name(size // 2), size
            ),
        }
        del axes["tags"]["catalog"]  # the catalog does not depend on one repository's tags
        for axis, scenarios in axes.items():
            for name, prepare in scenarios.items():
                repeats = knobs["previews"] if name == "lifecycle_preview" else knobs["repeats"]
                samples = s.time(prepare, repeats)
                result.setdefault(axis, {})[name] = _figures(samples)
        done = s.call("GetLifecyclePolicyPreview", {"repositoryName": seed.TAGS_REPO})
        result["preview_status"] = done["status"]
        result["preview_selected"] = done["summary"]["expiringImageTotalCount"]
        result["expire_most"] = _expire_most(s, knobs["previews"])
        s.client.close()
    finally:
        registry.stop()
    return result


def _expire_most(s: Session, repeats: int) -> dict[str, Any]:
    """StartLifecyclePolicyPreview of a rule expiring all but 50 of `bench/tags`' images: linear
    in its output by nature; reported as microseconds per image it expires."""
    body = {"repositoryName": seed.TAGS_REPO, "lifecyclePolicyText": POLICY_MOST}

    def start(_i: int) -> Callable[[], object]:
        headers, data = s.ecr("StartLifecyclePolicyPreview", body)
        return lambda: s._post(headers, data)

    figures = _figures(s.time(start, repeats))
    page = s.call("GetLifecyclePolicyPreview", {"repositoryName": seed.TAGS_REPO, "maxResults": 1})
    expired = page["summary"]["expiringImageTotalCount"]
    per = round(figures["p50_ms"] * 1000 / expired, 2) if expired else None
    return {**figures, "expired": expired, "us_per_expired_image": per}


def _high_water_kib(pid: int) -> int:
    """The process's peak RSS so far (VmHWM). Sampled from /proc rather than taken from
    wait4's ru_maxrss, which also counts the parent's pages the child held between fork and
    exec (this benchmark's own lists of a million digests)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def measure_gc(workdir: Path, total: int, garbage: int, full: bool = False) -> dict[str, Any]:
    """`cargobay gc` (`--full`: a sweep of every table) on a registry of `total` blob rows,
    `garbage` of them unreferenced and queued."""
    data_dir = workdir / f"gc-{total}-{garbage}-{'full' if full else 'queue'}"
    base = [sys.executable, "-m", "cargobay"]
    empty = workdir / "gc-empty"  # upgraded once, copied for every run
    if not empty.exists():
        subprocess.run(
            [*base, "db", "upgrade", "--data-dir", str(empty)],
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
    shutil.copytree(empty, data_dir)
    started = time.monotonic()
    seed.gc_registry(data_dir, total, garbage)
    generated = time.monotonic() - started
    started = time.monotonic()
    proc = subprocess.Popen(
        [*base, "gc", "--json", "--data-dir", str(data_dir), *(["--full"] if full else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak_kib = 0
    while proc.poll() is None:
        peak_kib = max(peak_kib, _high_water_kib(proc.pid))
        time.sleep(0.05)
    seconds = time.monotonic() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"cargobay gc failed: {err[-2000:]!r}")
    report = json.loads(out)
    return {
        "mode": "full" if full else "queue",
        "blob_rows": total,
        "garbage": garbage,
        "blobs_deleted": report["blobs_deleted"],
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "generate_seconds": round(generated, 1),
    }


def _per_garbage(runs: list[dict[str, Any]]) -> None:
    """Milliseconds per garbage blob over the run without garbage on the same registry (which
    is process start-up plus finding nothing to do)."""
    baseline = {r["blob_rows"]: r["seconds"] for r in runs if r["garbage"] == 0}
    for r in runs:
        if r["mode"] == "full":
            r["ms_per_garbage_blob"] = None
            continue
        base = baseline.get(r["blob_rows"], baseline.get(max(baseline), 0.0) if baseline else 0)
        r["ms_per_garbage_blob"] = (
            round((r["seconds"] - base) * 1000 / r["garbage"], 3) if r["garbage"] else None
        )


def ratios(sizes: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Largest size's median over the smallest's, per axis and request."""
    keys = sorted(sizes, key=int)
    small, large = sizes[keys[0]], sizes[keys[-1]]
    return {
        axis: {
            name: round(large[axis][name]["p50_ms"] / small[axis][name]["p50_ms"], 2)
            for name in small[axis]
        }
        for axis in ("repositories", "tags")
    }


def table(report: dict[str, Any]) -> str:
    keys = sorted(report["sizes"], key=int)
    head = " | ".join(f"p50 (p99) ms @ {int(k):,}" for k in keys)
    rows = [f"| axis | request | {head} | largest/smallest |", "|---" * (len(keys) + 3) + "|"]
    for axis, names in report["ratios"].items():
        for name, ratio in names.items():
            cells = " | ".join(
                "{p50_ms:.2f} ({p99_ms:.2f})".format(**report["sizes"][k][axis][name]) for k in keys
            )
            mark = "" if ratio <= 1.5 else " (over 1.5x)"
            rows.append(f"| {axis} | {name} | {cells} | {ratio:.2f}x{mark} |")
    rows += [
        "",
        "| size | preview expiring all but 50: p50 (p99) ms | images expired | µs per image |",
        "|---|---|---|---|",
    ]
    for k in keys:
        most = report["sizes"][k].get("expire_most")
        if most:
            rows.append(
                f"| {int(k):,} | {most['p50_ms']:.2f} ({most['p99_ms']:.2f}) | "
                f"{most['expired']:,} | {most['us_per_expired_image']} |"
            )
    if report.get("gc"):
        rows += [
            "",
            "| mode | blob rows | garbage | deleted | seconds | ms per garbage blob "
            "| peak RSS (MiB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for g in report["gc"]:
            per = g["ms_per_garbage_blob"]
            rows.append(
                f"| {g['mode']} | {g['blob_rows']:,} | {g['garbage']:,} | {g['blobs_deleted']:,} | "
                f"{g['seconds']} | {'-' if per is None else per} | {g['peak_rss_mib']} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke, seconds)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-gc", action="store_true")
    parser.add_argument("--gc-only", action="store_true", help="only the GC runs")
    parser.add_argument("--charts", type=Path, help="write PNG charts into this directory")
    args = parser.parse_args(argv)
    knobs, gc_knobs = (QUICK, GC_QUICK) if args.quick else (FULL, GC_FULL)
    report: dict[str, Any] = {
        "note": "registries generated directly in the metadata database (benchmarks/flat_seed.py)",
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "sizes": {},
        "gc": [],
    }
    with tempfile.TemporaryDirectory(prefix="cargobay-flat-") as tmp:
        if not args.gc_only:
            (Path(tmp) / "base").mkdir()
            base = push_base(Path(tmp) / "base")
        for size in () if args.gc_only else knobs["sizes"]:
            workdir = Path(tmp) / f"size-{size}"
            workdir.mkdir()
            report["sizes"][str(size)] = measure_size(workdir, size, knobs, base)
            print(f"size {size:,}: done", file=sys.stderr)
        if not args.no_gc:
            total = gc_knobs["total"]
            runs = [(total, g, False) for g in gc_knobs["garbage"]]
            runs.append((total // 10, gc_knobs["garbage"][2], False))
            runs.append((total, gc_knobs["garbage"][2], True))  # the sweep, for comparison
            for rows, garbage, full in runs:
                report["gc"].append(measure_gc(Path(tmp), rows, garbage, full))
                print(f"gc {rows:,}/{garbage:,}{' --full' if full else ''}: done", file=sys.stderr)
            _per_garbage(report["gc"])
    report["ratios"] = ratios(report["sizes"]) if report["sizes"] else {}
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["client_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    print("Registries generated directly in the metadata database (see benchmarks/flat_seed.py).")
    print(table(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.charts:
        from benchmarks import charts

        charts.flat_costs(report, args.charts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
