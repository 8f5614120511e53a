"""Side-by-side benchmark of cargobay and CNCF Distribution.

    python3 -m benchmarks.run [--quick] [--out FILE.json] [--only KEY,...]

Starts both registries on free loopback ports with temp data dirs, runs every scenario against
both (repetitions interleaved), prints one table with the ratio cargobay/Distribution, and
writes the same numbers as JSON. Every process it started is stopped, even on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.config import FULL, QUICK, Knobs, MiB
from benchmarks.pulls import PULL_SCENARIOS
from benchmarks.registries import Cargobay, Distribution, MemorySampler, Registry, tree_memory
from benchmarks.scenarios import SCENARIOS, Context, Metric, Scenario, median

RSS_SCENARIOS = ("blob_download", "monolithic_upload", "chunked_upload")


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine_note() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "distribution": _version(["/usr/bin/docker-registry", "--version"]),
        "curl": _version(["curl", "--version"]),
        "wrk": _version(["wrk", "-v"]),
        "skopeo": _version(["skopeo", "--version"]),
    }


class Results:
    """Samples per scenario, metric and registry; errors per scenario and registry."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.samples: dict[str, dict[str, dict[str, list[float]]]] = {}
        self.errors: dict[str, dict[str, list[str]]] = {}
        self.extra: dict[str, dict[str, object]] = {}
        self.restarts: dict[str, int] = {}

    def add(self, scenario: str, registry: str, values: dict[str, float]) -> None:
        for metric, value in values.items():
            per = self.samples.setdefault(scenario, {}).setdefault(metric, {})
            per.setdefault(registry, []).append(value)

    def error(self, scenario: str, registry: str, message: str) -> None:
        self.errors.setdefault(scenario, {n: [] for n in self.names})[registry].append(message)
        print(f"  ! {scenario} on {registry}: {message.splitlines()[-1][:300]}", file=sys.stderr)

    def summary(self, metrics: dict[str, tuple[str, Metric]]) -> dict[str, object]:
        scenarios: dict[str, object] = {}
        for scenario, title_metrics in _group(metrics).items():
            title, metric_list = title_metrics
            entries = {}
            for metric in metric_list:
                per = self.samples.get(scenario, {}).get(metric.key, {})
                values = {n: (median(per[n]) if per.get(n) else None) for n in self.names}
                cb, dist = values.get("cargobay"), values.get("distribution")
                ratio = cb / dist if cb is not None and dist else None
                entries[metric.key] = {
                    "label": metric.label,
                    "unit": metric.unit,
                    "better": metric.better,
                    **values,
                    "ratio": ratio,
                    "advantage": advantage(ratio, metric.better),
                    "samples": per,
                }
            scenarios[scenario] = {
                "title": title,
                "metrics": entries,
                "errors": self.errors.get(scenario, {n: [] for n in self.names}),
                **self.extra.get(scenario, {}),
            }
        return scenarios


def _group(
    metrics: dict[str, tuple[str, Metric]],
) -> dict[str, tuple[str, list[Metric]]]:
    grouped: dict[str, tuple[str, list[Metric]]] = {}
    for full_key, (title, metric) in metrics.items():
        scenario = full_key.split(":")[0]
        grouped.setdefault(scenario, (title, []))[1].append(metric)
    return grouped


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


def _ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio >= 0.01 else f"{ratio:.5f}x"


def advantage(ratio: float | None, better: str) -> float | None:
    """How many times better cargobay does: the ratio, inverted where lower is better."""
    if not ratio:
        return None
    return ratio if better == "higher" else 1 / ratio


def _advantage(ratio: float | None, better: str) -> str:
    value = advantage(ratio, better)
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x"


def table(summary: dict[str, object], page_size: int) -> str:
    rows = [
        (
            "scenario",
            "metric",
            "cargobay",
            "Distribution",
            "cargobay/Distribution",
            "better",
            "cargobay advantage",
        )
    ]
    for data in summary.values():
        assert isinstance(data, dict)
        for metric in data["metrics"].values():
            label = metric["label"].replace("PAGE", str(page_size))
            ratio = metric["ratio"]
            rows.append(
                (
                    data["title"],
                    f"{label} ({metric['unit']})",
                    _fmt(metric["cargobay"]),
                    _fmt(metric["distribution"]),
                    "-" if ratio is None else _ratio(ratio),
                    metric["better"],
                    _advantage(ratio, metric["better"]),
                )
            )
        failed = {n: len(e) for n, e in data["errors"].items() if e}
        if failed:
            rows.append((data["title"], f"FAILED runs: {failed}", "", "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def run_scenario(
    scenario: Scenario, ctx: Context, registries: list[Registry], results: Results
) -> None:
    k = ctx.knobs
    print(f"== {scenario.title}", file=sys.stderr, flush=True)
    ready = []
    for registry in registries:
        try:
            _alive(registry, results)
            scenario.setup(ctx, registry)
            ready.append(registry)
        except Exception:
            results.error(scenario.key, registry.name, "setup: " + traceback.format_exc())
    for rep in range(k.repetitions):
        try:
            scenario.prepare_rep(ctx, rep)
        except Exception:
            for registry in ready:
                results.error(scenario.key, registry.name, "prepare: " + traceback.format_exc())
            continue
        # Alternate which registry goes first, so drift on the machine hits both alike.
        order = ready if rep % 2 == 0 else list(reversed(ready))
        for registry in order:
            settle(scenario, ctx, results)
            try:
                values = _run_once(scenario, ctx, registry, rep, results)
            except Exception:
                results.error(scenario.key, registry.name, traceback.format_exc())
                continue
            results.add(scenario.key, registry.name, values)
            shown = ", ".join(f"{m}={_fmt(v)}" for m, v in values.items())
            print(f"   {registry.name:<12} rep {rep + 1}: {shown}", file=sys.stderr, flush=True)


def settle(scenario: Scenario, ctx: Context, results: Results) -> None:
    """Bring the machine to the same state before every timed run.

    Always: no dirty pages, or the kernel writes back the previous run's files (or the
    harness's input files) during this one, and whichever registry runs next pays for it.
    Uploads: also an empty page cache (when run as root), with the client's input re-read
    into it. On the VM these figures come from, uploads slowed by 40-60 % for both registries
    once a run had written about 5 GiB, and stayed slow after the writes were flushed, the
    registries restarted and the machine idle for 90 s; dropping the page cache restored them.
    Every registry gets the same treatment; the JSON records whether it was possible.
    """
    os.sync()
    if not scenario.fresh_page_cache:
        return
    dropped = False
    with contextlib.suppress(OSError):
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1\n")
        dropped = True
    results.extra.setdefault(scenario.key, {})["page_cache_dropped"] = dropped
    for path in scenario.inputs(ctx):
        with open(path, "rb") as fh:
            while fh.read(8 * MiB):
                pass


def _alive(registry: Registry, results: Results) -> bool:
    """True if the registry runs; if something killed it, restart it on the same data and port
    (the repetition is then run again) and say so in the results."""
    if registry.proc is not None and registry.proc.poll() is None:
        return True
    code = None if registry.proc is None else registry.proc.returncode
    print(f"  ! {registry.name} exited ({code}); restarting it", file=sys.stderr, flush=True)
    results.restarts[registry.name] = results.restarts.get(registry.name, 0) + 1
    registry.proc = None
    registry.start()
    return False


def _run_once(
    scenario: Scenario, ctx: Context, registry: Registry, rep: int, results: Results
) -> dict[str, float]:
    _alive(registry, results)
    try:
        return scenario.run(ctx, registry, rep)
    except Exception:
        if _alive(registry, results):
            raise
    return scenario.run(ctx, registry, rep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--only", default="", help="comma-separated scenario keys to run")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    parser.add_argument("--charts", type=Path, help="write PNG charts into this directory")
    parser.add_argument(
        "--backend",
        choices=("embedded", "postgres-s3"),
        default="embedded",
        help="embedded: SQLite + files (Distribution on files); postgres-s3: a PostgreSQL "
        "cluster for cargobay and moto's S3 server for both registries",
    )
    args = parser.parse_args(argv)
    knobs: Knobs = QUICK if args.quick else FULL
    only = {s for s in args.only.split(",") if s}
    scenarios = [s for s in SCENARIOS + PULL_SCENARIOS if not only or s.key in only]

    # SIGTERM (a CI timeout, a kill) must still stop the registries: turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="cargobay-bench-"))
    load_before = os.getloadavg()
    registries: list[Registry] = []
    started = time.monotonic()
    scaleout = None
    try:
        if args.backend == "postgres-s3":
            from benchmarks.backends import ScaleOut

            scaleout = ScaleOut(workdir).start()
        for cls in (Cargobay, Distribution):
            regdir = workdir / cls.name
            regdir.mkdir()
            registry = cls(regdir, knobs.start_timeout)
            if scaleout is not None and isinstance(registry, Distribution):
                registry.storage_section = scaleout.distribution_storage()
            elif scaleout is not None:
                registry.env = scaleout.cargobay_env()
            registries.append(registry)
            registry.start()
            print(f"{registry.name} on {registry.url}", file=sys.stderr, flush=True)
        names = [r.name for r in registries]
        results = Results(names)
        idle = {r.name: tree_memory(r.pid) for r in registries}
        ctx = Context(knobs, workdir)
        sampler = MemorySampler(registries, knobs.rss_interval)
        with sampler:
            for scenario in scenarios:
                if scenario.key in RSS_SCENARIOS:
                    run_scenario(scenario, ctx, registries, results)
        for scenario in scenarios:
            if scenario.key not in RSS_SCENARIOS:
                run_scenario(scenario, ctx, registries, results)
        if "listing" in {s.key for s in scenarios}:
            results.extra["listing"] = {
                "seed_seconds": {n: ctx.shared.get(f"seed_s_{n}") for n in names}
            }
        for scenario in scenarios:  # per-run notes (load average, spread) of the pull scenarios
            report_of = getattr(scenario, "report", None)
            if report_of is not None:
                results.extra.setdefault(scenario.key, {}).update(report_of(ctx))
        metrics = {f"{s.key}:{m.key}": (s.title, m) for s in scenarios for m in s.metrics}
        summary = results.summary(metrics)
        if any(s.key in RSS_SCENARIOS for s in scenarios):
            mem_metrics = {
                "peak_rss_mib": ("peak RSS, sum of tree VmRSS", sampler.peak_rss),
                "peak_pss_mib": ("peak PSS, sum of tree Pss", sampler.peak_pss),
                "idle_rss_mib": ("idle RSS after start", {n: idle[n][0] for n in names}),
            }
            entries = {}
            for key, (label, values) in mem_metrics.items():
                cb, dist = values.get("cargobay", 0) / MiB, values.get("distribution", 0) / MiB
                ratio = cb / dist if dist else None
                entries[key] = {
                    "label": label,
                    "unit": "MiB",
                    "better": "lower",
                    "cargobay": cb,
                    "distribution": dist,
                    "ratio": ratio,
                    "advantage": advantage(ratio, "lower"),
                    "samples": {},
                }
            summary["memory"] = {
                "title": "9. Memory during scenarios 1-3",
                "metrics": entries,
                "errors": {n: [] for n in names},
                "samples_taken": sampler.samples,
            }
        report = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "backend": args.backend,
            "machine": {
                **machine_note(),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            },
            "knobs": knobs.as_dict(),
            "seconds": round(time.monotonic() - started, 1),
            "restarts": results.restarts,
            "scenarios": summary,
        }
        print(table(summary, knobs.page_size))
        print(
            f"\n(total {report['seconds']} s; medians of {knobs.repetitions} repetitions; "
            f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after)"
        )
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
            print(f"wrote {args.out}")
        if args.charts:
            from benchmarks import charts

            charts.ratios(report, args.charts)
            charts.latency_percentiles(None, report, args.charts)
        failed = any(any(e for e in s["errors"].values()) for s in summary.values())
        return 1 if failed else 0
    finally:
        for registry in registries:
            registry.stop()
        if scaleout is not None:
            scaleout.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
