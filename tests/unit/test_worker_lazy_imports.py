"""A serving worker loads rarely used subsystems on first use: the image scanner and the
vulnerability database (with `packaging`) load with the first scan, the pull-through cache and
its upstream client with the first pull of something this registry does not hold.

The worker is built as `worker._run_worker` builds it (services, application, periodic jobs,
task runner, webhook deliverer) in a fresh interpreter, on a registry prepared by another one
(the supervisor prepares before forking, so its modules are never in a worker's count)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LAZY = (
    "cargobay.scanning.scan",
    "cargobay.scanning.walk",
    "cargobay.scanning.sbom",
    "cargobay.vulndb.store",
    "cargobay.vulndb.matching",
    "packaging",
    "cargobay.pullthrough.cache",
    "cargobay.upstream.client",
    "cargobay.upstream.transport",
)

_PREPARE = """
import sys
from cargobay.config import load_settings
from cargobay.startup import prepare_sync
prepare_sync(load_settings(None, {"data_dir": sys.argv[1]}))
"""

_BUILD = """
import asyncio, json, sys
from cargobay.config import load_settings
from cargobay.events import jobs as event_jobs
from cargobay.registry.services import Services
from cargobay.schedule import periodic_jobs, task_runner
from cargobay.worker import build_app

settings = load_settings(None, {"data_dir": sys.argv[1]})

async def main():
    services = Services.build(settings)
    build_app(services)
    periodic_jobs(services)
    task_runner(services)
    event_jobs.deliverer(settings, services.db)
    exec(sys.argv[2])  # what the test adds before looking
    await services.close()

asyncio.run(main())
print(json.dumps(sorted(m for m in json.loads(sys.argv[3]) if m in sys.modules)))
"""


def _loaded(data_dir: Path, then: str = "pass") -> list[str]:
    run = [sys.executable, "-c"]
    subprocess.run([*run, _PREPARE, str(data_dir)], check=True, capture_output=True)
    result = subprocess.run(
        [*run, _BUILD, str(data_dir), then, json.dumps(LAZY)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def test_a_fresh_worker_has_not_loaded_the_scanner(tmp_path: Path) -> None:
    assert _loaded(tmp_path) == []


def test_the_check_sees_a_scanner_loaded_eagerly(tmp_path: Path) -> None:
    # What the first scan of a worker loads; the check above would fail if the build did.
    loaded = _loaded(
        tmp_path,
        "from cargobay.scanning import scan, sbom; import cargobay.vulndb.store; "
        "services.pullthrough",
    )
    assert loaded == sorted(LAZY)
