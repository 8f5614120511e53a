"""An embedded (SQLite) serving process must not load what only other set-ups need: every
module counts in each worker's memory (see benchmarks/RESULTS.md, scenario 9)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Loaded only for PostgreSQL / in-memory SQLite, for migrations, or for SigV4.
HEAVY = (
    "sqlalchemy.orm",
    "sqlalchemy.ext.asyncio",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy.dialects.postgresql",
    "alembic",
    "botocore",
    "cryptography",
)

# Migrations load Alembic and SQLAlchemy's asyncio layer; serving processes never run them,
# so the schema is made in a process of its own.
MIGRATE = """
import asyncio, sys
from cargobay.metadata import migrations
asyncio.run(migrations.ensure("sqlite:///" + sys.argv[1], upgrade_schema=True))
"""

PROBE = """
import asyncio, json, sys
import cargobay.worker
from sqlalchemy import select
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert

url = "sqlite:///" + sys.argv[1]

async def main():
    db = Database(url)
    async with db.write() as conn:
        await upsert(conn, schema.server_keys, ["name"], name="probe", value="1", created_at=0.0)
    async with db.read() as conn:
        rows = (await conn.execute(select(schema.server_keys.c.name))).all()
    async with db.read_now() as conn:
        again = (await conn.execute(select(schema.server_keys.c.value))).all()
    await db.dispose()
    return len(rows), len(again)

counts = asyncio.run(main())
print(json.dumps({"counts": counts, "loaded": sorted(sys.modules)}))
"""


def _python(code: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, check=True
    ).stdout


def test_sqlite_worker_loads_no_heavy_modules(tmp_path: Path) -> None:
    path = str(tmp_path / "meta.db")
    _python(MIGRATE, path)
    result = json.loads(_python(PROBE, path).strip().splitlines()[-1])
    assert result["counts"][0] >= 1 and result["counts"][1] >= 1
    heavy = sorted(m for m in result["loaded"] if m.startswith(HEAVY))
    assert heavy == [], f"an embedded worker loads {heavy}"
