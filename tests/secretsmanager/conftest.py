"""A migrated metadata database (SQLite, or PostgreSQL under CARGOBAY_TEST_DATABASE=postgres)
and a SecretsService on it with a controllable clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import pgcluster
from cargobay.iam.secrets import SecretBox, new_key
from cargobay.metadata import migrations
from cargobay.metadata.db import Database
from cargobay.secrets.service import SecretsService

ACCOUNT = "123456789012"
REGION = "eu-west-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def database_url(tmp_path: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    await migrations.upgrade(url)
    return url


Scenario = Callable[[SecretsService, Clock], Awaitable[Any]]


@pytest.fixture
def run(tmp_path: Path) -> Callable[[Scenario], Any]:
    """`run(scenario)`: awaits `scenario(service, clock)` on a fresh migrated database."""

    def runner(scenario: Scenario, box: SecretBox | None = None) -> Any:
        async def main() -> Any:
            db = Database(await database_url(tmp_path))
            clock = Clock()
            service = SecretsService(db, box or SecretBox(new_key()), region=REGION, clock=clock)
            try:
                return await scenario(service, clock)
            finally:
                await db.dispose()

        return asyncio.run(main())

    return runner
