"""`python3 -m benchmarks.run --quick` runs every scenario against both registries without an
error. Speed is never asserted here: that is what benchmarks/RESULTS.md records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "blob_download",
    "monolithic_upload",
    "chunked_upload",
    "skopeo",
    "manifest_get",
    "small_blob_get",
    "manifest_put",
    "listing",
    "concurrency",
    "memory",
    "pull_after_push",
    "blob_get",
    "pull_storm",
    "gets_during_downloads",
}
# ECR's operations with a published rate quota (issue 19).
QUOTA_LISTED = (
    "BatchGetImage",
    "GetDownloadUrlForLayer",
    "BatchCheckLayerAvailability",
    "GetAuthorizationToken",
    "UploadLayerPart",
    "InitiateLayerUpload",
    "CompleteLayerUpload",
    "PutImage",
)


WRK_EACH_ONCE = "wrk -t2 -c32, each distinct request once"  # benchmarks.ecr_replay.METHOD


def _quick(module: str, out: Path, *extra: str, timeout: int = 280) -> tuple[str, dict]:
    """Run `python -m <module> --quick --out OUT`, assert it succeeded: its stdout and report."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout, json.loads(out.read_text())


def test_quick_benchmark_runs_every_scenario_on_both_registries(tmp_path: Path) -> None:
    for tool in ("docker-registry", "wrk", "curl", "skopeo"):
        require_tool(tool)
    out = tmp_path / "quick.json"
    charts = ["--charts", str(tmp_path / "charts")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out), *charts],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=280)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the benchmark stops both registries on its way out
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-5000:]
    report = json.loads(out.read_text())
    scenarios = report["scenarios"]
    assert set(scenarios) == SCENARIOS
    for key, scenario in scenarios.items():
        for registry, errors in scenario["errors"].items():
            assert errors == [], f"{key} on {registry}: {errors}"
        for metric, values in scenario["metrics"].items():
            for registry in ("cargobay", "distribution"):
                assert values[registry] is not None, f"{key}.{metric} missing for {registry}"
    assert scenarios["concurrency"]["metrics"]["errors"]["cargobay"] == 0
    assert scenarios["concurrency"]["metrics"]["errors"]["distribution"] == 0
    for registry in ("cargobay", "distribution"):
        assert scenarios["pull_storm"]["metrics"]["errors"][registry] == 0
        assert scenarios["pull_storm"]["metrics"]["mib_s"][registry] > 0
    # Manifest GETs were answered while whole downloads completed beside them.
    for registry in ("cargobay", "distribution"):
        assert scenarios["gets_during_downloads"]["metrics"]["rps"][registry] > 0
        assert scenarios["gets_during_downloads"]["metrics"]["download_mib_s"][registry] > 0
    # The pull scenarios record how they emptied the page cache, and each run's load average.
    for key in ("pull_after_push", "blob_get", "pull_storm"):
        assert "DONTNEED" in scenarios[key]["cold_method"]
        assert {run["registry"] for run in scenarios[key]["runs"]} == {"cargobay", "distribution"}
    # Warm blob GETs are timed only once fincore finds the blob cached (the VM pages files
    # out on its own); cold ones after the eviction left (almost) nothing cached.
    blob_mib = report["knobs"]["blob_bytes"] / 2**20
    for run in scenarios["blob_get"]["runs"]:
        if run["warm_resident_mib"][0] is not None:
            assert min(run["warm_resident_mib"]) >= blob_mib * 0.99 or run["warm_rewarms"] == 3
            assert max(run["cold_resident_mib"]) < blob_mib / 2
        assert len(run["warm_client_cpu_s"]) == len(run["warm_mib_s"])
    # Beside both registries, each repetition measures a bare server sending the same bytes
    # with sendfile and with copies: each registry's share of it, and what it implies.
    for key, share, labels in (
        ("pull_after_push", "warm_ceiling_share", {"warm", "cold"}),
        ("blob_get", "warm_ceiling_share", {"warm", "cold"}),
        ("pull_storm", "ceiling_share", {"storm"}),
    ):
        (ceiling,) = scenarios[key]["ceiling"]
        for mode in ("sendfile", "copy"):
            assert set(ceiling[mode]) == labels
            for label in labels:
                assert ceiling[mode][label]["mib_s"] > 0
                assert ceiling[mode][label]["client_cpu_s_per_gib"] > 0
        for label in labels:
            best = max(ceiling[mode][label]["mib_s"] for mode in ("sendfile", "copy"))
            assert scenarios[key]["ceiling_best_mib_s"][label] == best
            assert set(scenarios[key]["ceiling_over"][label]) == {"cargobay", "distribution"}
        for registry in ("cargobay", "distribution"):
            assert scenarios[key]["metrics"][share][registry] > 0
    for chart in ("ratios.png", "latency_percentiles.png"):
        assert (tmp_path / "charts" / chart).read_bytes().startswith(b"\x89PNG"), chart


def test_quick_ecr_api_benchmark_measures_every_operation_beside_moto(tmp_path: Path) -> None:
    require_tool("wrk")
    out = tmp_path / "ecr_api.json"
    stdout, report = _quick("benchmarks.ecr_api", out)
    # Every operation of ECR's quota list has a figure, the writes too.
    assert set(QUOTA_LISTED) <= set(report["cargobay"]), report["cargobay"].keys()
    for operation, figures in report["cargobay"].items():
        assert "error" not in figures, (operation, figures)
        assert figures["requests"] > 0 and figures["rps"] > 0, (operation, figures)
        assert figures["cpu_us"] > 0, (operation, figures)
    # moto implements these of the quota list (the others answer NotImplemented there).
    for operation in ("BatchGetImage", "GetAuthorizationToken", "PutImage"):
        assert report["moto"][operation]["requests"] > 0
    # The reads with a quota are run again, paced at twice it (the target rates).
    twice = {"BatchGetImage": 4000, "GetDownloadUrlForLayer": 6000, "GetAuthorizationToken": 1000}
    for operation, rate in twice.items():
        paced = report["cargobay"][operation]["paced"]
        assert paced["rate"] == rate and paced["rps"] > 0, (operation, paced)
    # The distinct writes were sent by wrk, each once (a quick run's counts, no warm-up), on
    # both servers, and again paced at twice the quota from fresh requests (1 s of them).
    quick_writes = {"UploadLayerPart": (300, 500), "CompleteLayerUpload": (150, 100)}
    quick_writes["PutImage"] = (60, 10)
    replayed = [("cargobay", op) for op in quick_writes] + [("moto", "PutImage")]
    for server, operation in replayed:
        figures = report[server][operation]
        assert figures["method"] == WRK_EACH_ONCE, (server, operation, figures)
        assert figures["requests"] == quick_writes[operation][0], (server, operation, figures)
    for operation, (_count, quota) in quick_writes.items():
        paced = report["cargobay"][operation]["paced"]
        assert paced["method"] == WRK_EACH_ONCE, (operation, paced)
        assert paced["rate"] == 2 * quota and paced["requests"] == 2 * quota, (operation, paced)
        assert paced["rps"] > 0, (operation, paced)
    assert "paced" not in report["moto"]["PutImage"]
    assert "Paced at twice the quota" in stdout
    assert "x quota" in stdout and "x moto" in stdout


def test_quick_sigv4_micro_benchmark_reports_every_part(tmp_path: Path) -> None:
    out = tmp_path / "sigv4.json"
    _, report = _quick("benchmarks.sigv4_micro", out)
    assert set(report) == {
        "verify_total_us",
        "key_derivation_us",
        "botocore_canonical_request_us",
        "body_sha256_us",
        "secret_lookup_us",
    }
    assert all(value > 0 for value in report.values()), report


def test_quick_ecr_door_benchmark_times_every_read(tmp_path: Path) -> None:
    out = tmp_path / "door.json"
    _, report = _quick("benchmarks.ecr_door", out)
    assert set(report) == {
        "GetDownloadUrlForLayer",
        "BatchGetImage",
        "BatchCheckLayerAvailability",
    }
    assert all(value > 0 for value in report.values()), report


def test_quick_flat_costs_benchmark_reports_every_size_request_and_gc_run(tmp_path: Path) -> None:
    out = tmp_path / "flat.json"
    charts = ["--charts", str(tmp_path / "charts")]
    stdout, report = _quick("benchmarks.flat_costs", out, *charts, timeout=600)
    assert "generated directly in the metadata database" in stdout
    assert list(report["sizes"]) == ["10", "100", "1000"]
    for size in report["sizes"].values():
        assert set(size["repositories"]) == {
            "push",
            "manifest_get",
            "tags_list",
            "catalog",
            "describe_images",
            "lifecycle_preview",
        }
        assert set(size["tags"]) == set(size["repositories"]) - {"catalog"}
        assert size["preview_status"] == "COMPLETE"
    assert all(r > 0 for axis in report["ratios"].values() for r in axis.values())
    for run in report["gc"]:
        assert run["blobs_deleted"] == run["garbage"], run
        assert run["peak_rss_mib"] > 0, run
    for chart in ("flat_costs.png", "latency_percentiles.png", "gc.png"):
        assert (tmp_path / "charts" / chart).read_bytes().startswith(b"\x89PNG"), chart
