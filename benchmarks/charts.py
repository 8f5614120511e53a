"""PNG charts of the benchmarks' JSON, for benchmarks/RESULTS.md (matplotlib, `bench` extra).

    python3 -m benchmarks.charts [--run RUN.json] [--flat FLAT.json] [--ecr ECR.json]
                                 [--out benchmarks/charts]

- `ratios.png` (from benchmarks/run.py's JSON): how many times better cargobay does than
  Distribution per scenario and metric (inverted where lower is better), on a log scale;
- `ecr_api.png` (benchmarks/ecr_api.py): requests/s per operation against ECR's quota and moto;
- `latency_percentiles.png`: p50 and p99 per request at every registry size (flat_costs.py),
  and the p99 latencies of run.py's wrk scenarios beside Distribution's;
- `flat_costs.png`: median latency over registry size, per request, both axes;
- `gc.png`: GC time and peak RSS over the garbage count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

DPI = 110


def _save(fig: Any, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def ratios(run: dict[str, Any], out: Path) -> Path:
    """cargobay's advantage over Distribution per scenario metric (run.py's JSON)."""
    labels, values = [], []
    for data in run["scenarios"].values():
        for metric in data["metrics"].values():
            if metric.get("advantage"):
                labels.append(f"{data['title'][:32]}: {metric['label'][:24]}")
                values.append(metric["advantage"])
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(labels) + 1.2))
    colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlabel("cargobay advantage over Distribution (x, log scale; >1 is better)")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.2f}x", va="center", fontsize=7)
    ax.set_title("Side by side: cargobay vs CNCF Distribution")
    return _save(fig, out, "ratios.png")


def ecr_api(report: dict[str, Any], out: Path, quotas: dict[str, int | None]) -> Path:
    """Requests/s per ECR operation, cargobay beside moto, with ECR's default quota."""
    ops = [op for op, f in report["cargobay"].items() if "rps" in f]
    moto = report.get("moto") or {}
    fig, ax = plt.subplots(figsize=(9, 4))
    x = range(len(ops))
    ours = [report["cargobay"][op]["rps"] for op in ops]
    theirs = [(moto.get(op) or {}).get("rps", 0) for op in ops]
    ax.bar([i - 0.2 for i in x], ours, 0.4, label="cargobay")
    ax.bar([i + 0.2 for i in x], theirs, 0.4, label="moto server")
    for i, op in enumerate(ops):
        quota = quotas.get(op)
        if quota:
            ax.hlines(quota, i - 0.45, i + 0.45, colors="black", linestyles="dashed")
            ax.hlines(2 * quota, i - 0.45, i + 0.45, colors="tab:red", linestyles="dotted")
    ax.set_xticks(list(x), ops, rotation=15, fontsize=8)
    ax.set_yscale("log")  # PutImage's quota is 10/s, GetDownloadUrlForLayer's 3,000/s
    ax.set_ylabel("requests/s (c=32, SigV4; log scale)")
    ax.set_title("ECR API: dashed = ECR's default quota, dotted = twice it")
    ax.legend()
    return _save(fig, out, "ecr_api.png")


def latency_percentiles(flat: dict[str, Any] | None, run: dict[str, Any] | None, out: Path) -> Path:
    """p50/p99 per request and size (flat_costs), and run.py's p99 figures side by side."""
    panels = [p for p in (flat, run) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    col = 0
    if flat:
        ax = axes[0][col]
        col += 1
        sizes = sorted(flat["sizes"], key=int)
        names = [(a, n) for a, ns in flat["ratios"].items() for n in ns]
        width = 0.8 / len(sizes)
        for j, size in enumerate(sizes):
            p50 = [flat["sizes"][size][a][n]["p50_ms"] for a, n in names]
            p99 = [flat["sizes"][size][a][n]["p99_ms"] for a, n in names]
            xs = [i + j * width for i in range(len(names))]
            ax.bar(xs, p99, width, alpha=0.35, color=f"C{j}")
            ax.bar(xs, p50, width, color=f"C{j}", label=f"{int(size):,} (p50 solid, p99 light)")
        ax.set_xticks(
            [i + 0.4 - width / 2 for i in range(len(names))],
            [f"{a[:4]}: {n}" for a, n in names],
            rotation=60,
            ha="right",
            fontsize=7,
        )
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms, log)")
        ax.set_title("Latency percentiles per registry size")
        ax.legend(fontsize=7)
    if run:
        ax = axes[0][col]
        rows = [
            (f"{d['title'][:30]}", m)
            for d in run["scenarios"].values()
            for m in d["metrics"].values()
            if "p99" in m["label"] and m.get("cargobay") is not None
        ]
        xs = range(len(rows))
        ax.bar([i - 0.2 for i in xs], [m["cargobay"] for _, m in rows], 0.4, label="cargobay")
        ax.bar(
            [i + 0.2 for i in xs], [m["distribution"] for _, m in rows], 0.4, label="Distribution"
        )
        ax.set_xticks(list(xs), [t for t, _ in rows], rotation=20, ha="right", fontsize=7)
        ax.set_ylabel("p99 latency (ms)")
        ax.set_title("p99 under load (wrk)")
        ax.legend(fontsize=7)
    return _save(fig, out, "latency_percentiles.png")


def flat_curves(flat: dict[str, Any], out: Path) -> Path:
    """Median latency over registry size, per request, one panel per axis."""
    sizes = sorted(flat["sizes"], key=int)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, axis in zip(axes, ("repositories", "tags"), strict=True):
        for name, ratio in flat["ratios"][axis].items():
            ys = [flat["sizes"][s][axis][name]["p50_ms"] for s in sizes]
            ax.plot([int(s) for s in sizes], ys, marker="o", label=f"{name} ({ratio:.2f}x)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{axis} in the registry (generated, log)")
        ax.set_title(f"Median latency over {axis}")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("median latency (ms, log)")
    return _save(fig, out, "flat_costs.png")


def gc(flat: dict[str, Any], out: Path) -> Path:
    runs = flat["gc"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for rows, mode in sorted({(r["blob_rows"], r.get("mode", "queue")) for r in runs}):
        sel = [r for r in runs if r["blob_rows"] == rows and r.get("mode", "queue") == mode]
        label = f"{rows:,} blob rows" + (" (--full sweep)" if mode == "full" else "")
        left.plot([r["garbage"] for r in sel], [r["seconds"] for r in sel], "o-", label=label)
        right.plot([r["garbage"] for r in sel], [r["peak_rss_mib"] for r in sel], "o-", label=label)
    left.set_xlabel("garbage blobs")
    left.set_ylabel("cargobay gc (s)")
    left.set_title("GC time over garbage")
    right.set_xlabel("garbage blobs")
    right.set_ylabel("peak RSS (MiB)")
    right.set_ylim(bottom=0)
    right.set_title("GC peak memory")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return _save(fig, out, "gc.png")


def flat_costs(report: dict[str, Any], out: Path) -> list[Path]:
    paths = [flat_curves(report, out), latency_percentiles(report, None, out)]
    if report.get("gc"):
        paths.append(gc(report, out))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="benchmarks/run.py's JSON")
    parser.add_argument("--flat", type=Path, help="benchmarks/flat_costs.py's JSON")
    parser.add_argument("--ecr", type=Path, help="benchmarks/ecr_api.py's JSON")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "charts")
    args = parser.parse_args(argv)
    run = json.loads(args.run.read_text()) if args.run else None
    flat = json.loads(args.flat.read_text()) if args.flat else None
    written = []
    if run:
        written.append(ratios(run, args.out))
    if flat:
        written += [flat_curves(flat, args.out)]
        if flat.get("gc"):
            written.append(gc(flat, args.out))
    if run or flat:
        written.append(latency_percentiles(flat, run, args.out))
    if args.ecr:
        from benchmarks.ecr_api import QUOTAS

        written.append(ecr_api(json.loads(args.ecr.read_text()), args.out, QUOTAS))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
