"""The command line loads its heavy modules only in the commands that use them: `cargobay serve`
runs its supervisor from the same settings loader, and every invocation pays for what the
top-level group imports."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "aiohttp", "alembic", "cryptography", "boto3", "botocore")


def _loaded_after(statement: str) -> list[str]:
    code = f"{statement}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_the_command_line_group_loads_no_heavy_module() -> None:
    assert _loaded_after("import cargobay.cli") == []


def test_the_supervisor_loads_no_heavy_module() -> None:
    assert _loaded_after("import cargobay.server") == []


def test_the_check_sees_a_heavy_import() -> None:
    assert _loaded_after("import cargobay.metadata.db") == ["sqlalchemy"]
