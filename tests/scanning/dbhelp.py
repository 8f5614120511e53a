"""The metadata database of a test: SQLite, or PostgreSQL when CARGOBAY_TEST_DATABASE says so."""

from __future__ import annotations

from pathlib import Path

import pgcluster
from cargobay.metadata import migrations


async def database_url(tmp_path: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    await migrations.upgrade(url)
    return url
