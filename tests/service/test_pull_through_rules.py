"""The pull-through cache's rules and fill leases as services, on a migrated database (SQLite,
or PostgreSQL under CARGOBAY_TEST_DATABASE=postgres): ECR's prefix rules, the 50-rule quota,
credential secrets, longest-prefix matching, and one fetch holder per digest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cargobay import errors
from cargobay.iam.secrets import SecretBox, new_key
from cargobay.metadata.db import Database
from cargobay.metadata.leases import LeaseBusy, Leases
from cargobay.pullthrough.blobs import blob_lease_name
from cargobay.pullthrough.rules import RuleService, find_rule
from cargobay.secrets.service import SecretsService
from secretsmanager.conftest import database_url

ACCOUNT = "123456789012"
REGION = "us-east-1"
UPSTREAM = "http://127.0.0.1:5999"

Scenario = Callable[[RuleService, Database], Awaitable[Any]]


@pytest.fixture
def run(tmp_path: Path) -> Callable[[Scenario], Any]:
    def runner(scenario: Scenario) -> Any:
        async def main() -> Any:
            db = Database(await database_url(tmp_path))
            secrets = SecretsService(db, SecretBox(new_key()), region=REGION)
            try:
                return await scenario(RuleService(db, secrets), db)
            finally:
                await db.dispose()

        return asyncio.run(main())

    return runner


async def _secret(rules: RuleService, name: str, value: object) -> str:
    created = await rules.secrets.create_secret(ACCOUNT, name=name, secret_string=json.dumps(value))
    return created["ARN"]


def test_prefix_rules(run: Callable[[Scenario], Any]) -> None:
    async def scenario(rules: RuleService, db: Database) -> None:
        for bad in ("a", "x" * 31, "Upper", "-lead", "a//b", "a b"):
            with pytest.raises(errors.InvalidParameter):
                await rules.create(ACCOUNT, prefix=bad, upstream_url=UPSTREAM)
        rule = await rules.create(ACCOUNT, prefix="team/hub/", upstream_url=UPSTREAM)
        assert rule.prefix == "team/hub" and rule.upstream_registry == "oci"
        with pytest.raises(errors.PullThroughCacheRuleAlreadyExists):
            await rules.create(ACCOUNT, prefix="team/hub", upstream_url=UPSTREAM)
        with pytest.raises(errors.InvalidParameter):  # ROOT is for ecr upstreams only
            await rules.create(ACCOUNT, prefix="ROOT", upstream_url=UPSTREAM)
        with pytest.raises(errors.UnsupportedUpstreamRegistry):  # http off the local network
            await rules.create(ACCOUNT, prefix="pub", upstream_url="http://8.8.8.8:5000")
        with pytest.raises(errors.UnsupportedUpstreamRegistry):  # kind and host disagree
            await rules.create(
                ACCOUNT, prefix="pub", upstream_url="quay.io", upstream_registry="docker-hub"
            )
        with pytest.raises(errors.InvalidParameter):  # Docker Hub needs a credential
            await rules.create(ACCOUNT, prefix="hub", upstream_url="registry-1.docker.io")
        assert [r.prefix for r in await rules.list(ACCOUNT)] == ["team/hub"]

    run(scenario)


def test_longest_prefix_wins_and_upstream_names(run: Callable[[Scenario], Any]) -> None:
    async def scenario(rules: RuleService, db: Database) -> None:
        await rules.create(ACCOUNT, prefix="team", upstream_url=UPSTREAM)
        await rules.create(
            ACCOUNT, prefix="team/hub", upstream_url=UPSTREAM, upstream_prefix="mirror"
        )
        assert await find_rule(db, ACCOUNT, "teamx/app") is None
        assert await find_rule(db, ACCOUNT, "team") is None
        outer = await find_rule(db, ACCOUNT, "team/app")
        inner = await find_rule(db, ACCOUNT, "team/hub/library/alpine")
        assert outer is not None and outer.upstream_name("team/app") == "app"
        assert inner is not None and inner.prefix == "team/hub"
        assert inner.upstream_name("team/hub/library/alpine") == "mirror/library/alpine"
        assert await find_rule(db, "000000000000", "team/app") is None

    run(scenario)


def test_the_quota_is_50_rules(run: Callable[[Scenario], Any]) -> None:
    async def scenario(rules: RuleService, db: Database) -> None:
        for i in range(50):
            await rules.create(ACCOUNT, prefix=f"p{i:02d}", upstream_url=UPSTREAM)
        with pytest.raises(errors.LimitExceeded):
            await rules.create(ACCOUNT, prefix="one-more", upstream_url=UPSTREAM)
        await rules.delete(ACCOUNT, "p00")
        await rules.create(ACCOUNT, prefix="one-more", upstream_url=UPSTREAM)

    run(scenario)


def test_credential_secrets(run: Callable[[Scenario], Any]) -> None:
    async def scenario(rules: RuleService, db: Database) -> None:
        good = await _secret(
            rules, "ecr-pullthroughcache/hub", {"username": "u", "accessToken": "t"}
        )
        bad = await _secret(rules, "ecr-pullthroughcache/bad", {"user": "u"})
        other = await _secret(rules, "other/hub-credential-long-name", {"username": "u"})
        rule = await rules.create(
            ACCOUNT, prefix="hub", upstream_url="docker.io", upstream_registry="docker-hub",
            credential_arn=good,
        )  # fmt: skip
        assert rule.upstream_url == "https://registry-1.docker.io"
        credentials = await rules.credentials(rule)
        assert credentials is not None and credentials.username == "u"
        with pytest.raises(errors.UnableToAccessSecret):
            await rules.update(ACCOUNT, "hub", credential_arn=bad, custom_role_arn=None)
        with pytest.raises(errors.InvalidParameter):  # not under ecr-pullthroughcache/
            await rules.update(ACCOUNT, "hub", credential_arn=other, custom_role_arn=None)
        with pytest.raises(errors.SecretNotFound):
            await rules.update(
                ACCOUNT, "hub", credential_arn=good.replace("/hub-", "/gone-"),
                custom_role_arn=None,
            )  # fmt: skip
        assert (await rules.get(ACCOUNT, "hub")).credential_arn == good  # unchanged
        with pytest.raises(errors.PullThroughCacheRuleNotFound):
            await rules.update(ACCOUNT, "nope", credential_arn=good, custom_role_arn=None)

    run(scenario)


def test_one_fill_holder_per_digest(run: Callable[[Scenario], Any]) -> None:
    """A blob's fetch is a `metadata.leases` lease per (registry, digest): one of ten workers
    (each its own holder) takes it; another registry's fetch of the same digest is its own."""
    digest = "sha256:" + "a" * 64
    lease = blob_lease_name(ACCOUNT, digest)

    async def take(leases: Leases, name: str) -> str | None:
        try:
            return await leases.acquire(name)
        except LeaseBusy:
            return None

    async def scenario(rules: RuleService, db: Database) -> None:
        workers = [Leases(db, f"node/w{i}") for i in range(10)]
        tokens = await asyncio.gather(*(take(w, lease) for w in workers))
        taken = [t for t in tokens if t is not None]
        assert len(taken) == 1
        other = blob_lease_name("000000000000", digest)
        assert other != lease and await take(workers[0], other) is not None
        assert len(blob_lease_name(ACCOUNT, "sha512:" + "b" * 128)) <= 128  # the key's width
        winner = workers[tokens.index(taken[0])]
        await winner.release(lease, taken[0])
        assert await take(workers[-1] if winner is not workers[-1] else workers[0], lease)

    run(scenario)
