"""`python3 -m benchmarks.pullthrough --quick` pulls cold, warm, normally and directly without
an error and reports every ratio. Speed is never asserted here: RESULTS.md records it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent


def test_quick_pull_through_benchmark_runs() -> None:
    for tool in ("docker-registry", "skopeo"):
        require_tool(tool)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.pullthrough", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for ratio in ("cold / direct", "warm / direct", "warm / normal"):
        assert re.search(rf"^{ratio}: \d+\.\d\dx", proc.stdout, re.MULTILINE), proc.stdout
