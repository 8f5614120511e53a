"""The metadata suite's database: one migrated database per session on the run's backend
(a SQLite file, or the PostgreSQL test cluster under CARGOBAY_TEST_DATABASE=postgres), and a
fresh `Database` handle and registry id per test, so tests never see each other's rows."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import pgcluster
from cargobay.metadata.db import Database

_registries = itertools.count(100_000_000_000)


@dataclass
class Store:
    """Runs a scenario on a fresh handle on the session's database."""

    url: str
    backend: str

    def run(self, scenario: Callable[[Database, str], Awaitable[None]]) -> None:
        """`scenario(db, registry_id)` with a registry id no other test uses."""
        registry_id = str(next(_registries))

        async def main() -> None:
            db = Database(self.url)
            try:
                await scenario(db, registry_id)
            finally:
                await db.dispose()

        asyncio.run(main())


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    directory: Path = tmp_path_factory.mktemp("metadata")
    url = asyncio.run(pgcluster.migrated_database(directory))
    return Store(url, pgcluster.backend())
