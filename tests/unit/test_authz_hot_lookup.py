"""The resource-policies lookup of every authorization decision runs as a `metadata.hot`
statement (the driver connection on a SQLite file, one autocommit round trip on PostgreSQL):
a policy written through another node applies to the very next decision, and a removed one
stops applying as soon. In-process, on the test run's metadata backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import pgcluster
from cargobay.config import Settings
from cargobay.iam.authz import Authorizer, Resource
from cargobay.iam.principal import Principal
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.registry.repositories import RepositoryService

pytestmark = pytest.mark.backend

ACCOUNT = "123456789012"
ADMIN = Principal(ACCOUNT, "admin", "AKIAADMINADMINADMIN1", True)
DENY_PULLS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "d", "Effect": "Deny", "Principal": "*", "Action": "ecr:BatchGetImage"}
        ],
    }
)


async def _set_policy(db: Database, name: str, text: str | None) -> None:
    r = schema.repositories
    async with db.write() as conn:
        await conn.execute(r.update().where(r.c.name == name).values(policy_text=text))


def test_a_policy_written_elsewhere_decides_the_next_call(tmp_path: Path) -> None:
    async def scenario() -> None:
        url = await pgcluster.migrated_database(tmp_path)
        deciding, writing = Database(url), Database(url)
        try:
            authorizer = Authorizer(deciding)
            await RepositoryService(writing, Settings(), Authorizer(writing)).create(
                ACCOUNT, "authz/hot"
            )
            resource = Resource(ACCOUNT, "us-east-1", "authz/hot")
            decide = authorizer.decide
            assert await decide(ADMIN, "ecr:BatchGetImage", resource) == "Allow"
            await _set_policy(writing, "authz/hot", DENY_PULLS)
            assert await decide(ADMIN, "ecr:BatchGetImage", resource) == "Deny"
            assert await decide(ADMIN, "ecr:PutImage", resource) == "Allow"
            await _set_policy(writing, "authz/hot", None)
            assert await decide(ADMIN, "ecr:BatchGetImage", resource) == "Allow"
            # Another account's repository: no policy grants it, so not even an admin.
            elsewhere = Resource("210987654321", "us-east-1", "authz/hot")
            assert await decide(ADMIN, "ecr:BatchGetImage", elsewhere) == "ImplicitDeny"
        finally:
            await deciding.dispose()
            await writing.dispose()

    asyncio.run(scenario())
