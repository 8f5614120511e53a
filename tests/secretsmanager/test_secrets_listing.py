"""ListSecrets: filters as AWS documents them, pagination, sorting, planned deletions; and the
pull-through cache credential helper."""

from __future__ import annotations

import pytest

from cargobay.secrets import errors
from cargobay.secrets.pullthrough import (
    CredentialSecretInvalid,
    credentials_from_value,
    pull_through_credentials,
)
from cargobay.secrets.service import SecretsService
from cargobay.upstream.auth import Credentials
from secretsmanager.conftest import ACCOUNT, Clock
from secretsmanager.shapes import assert_output_shape

pytestmark = pytest.mark.backend


async def populate(svc: SecretsService, clock: Clock) -> None:
    specs = [
        ("prod/db", "Database password", {"env": "prod", "team": "data"}),
        ("prod/api", "API key", {"env": "prod"}),
        ("dev/db", "database for dev", {"env": "dev", "team": "data"}),
        ("ecr-pullthroughcache/hub", "Docker Hub", {}),
        ("other", None, {"Owner": "Alice"}),
    ]
    for name, description, tags in specs:
        clock.now += 1
        await svc.create_secret(
            ACCOUNT, name=name, secret_string="v", description=description,
            tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )  # fmt: skip


async def names(svc: SecretsService, **kw: object) -> list[str]:
    result = await svc.list_secrets(ACCOUNT, **kw)
    assert_output_shape("ListSecrets", result)
    return [entry["Name"] for entry in result["SecretList"]]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"Key": "name", "Values": ["prod/"]}], ["prod/db", "prod/api"]),
        ([{"Key": "name", "Values": ["Prod/"]}], []),  # case-sensitive
        ([{"Key": "name", "Values": ["prod/", "dev/"]}], ["prod/db", "prod/api", "dev/db"]),
        ([{"Key": "name", "Values": ["!prod/"]}],
         ["dev/db", "ecr-pullthroughcache/hub", "other"]),
        ([{"Key": "description", "Values": ["database"]}], ["prod/db", "dev/db"]),  # any case
        ([{"Key": "tag-key", "Values": ["team"]}], ["prod/db", "dev/db"]),
        ([{"Key": "tag-value", "Values": ["prod"]}], ["prod/db", "prod/api"]),
        ([{"Key": "tag-key", "Values": ["env"]}, {"Key": "tag-value", "Values": ["dev"]}],
         ["dev/db"]),
        ([{"Key": "all", "Values": ["alice"]}], ["other"]),
        ([{"Key": "all", "Values": ["docker hub"]}], ["ecr-pullthroughcache/hub"]),
        ([{"Key": "primary-region", "Values": ["eu-west-1"]}],
         ["prod/db", "prod/api", "dev/db", "ecr-pullthroughcache/hub", "other"]),
    ],
)  # fmt: skip
def test_filters(run, filters: list, expected: list[str]) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> list[str]:
        await populate(svc, clock)
        return await names(svc, filters=filters)

    assert run(scenario) == expected


def test_pagination_sorting_and_planned_deletions(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        await populate(svc, clock)
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            page = await svc.list_secrets(ACCOUNT, max_results=2, next_token=token)
            seen += [e["Name"] for e in page["SecretList"]]
            pages += 1
            token = page.get("NextToken")
            if token is None:
                break
        assert pages == 3
        assert seen == ["prod/db", "prod/api", "dev/db", "ecr-pullthroughcache/hub", "other"]
        assert await names(svc, sort_order="desc") == seen[::-1]
        assert await names(svc, sort_by="name") == sorted(seen)
        entry = (await svc.list_secrets(ACCOUNT, filters=[{"Key": "name", "Values": ["other"]}]))[
            "SecretList"
        ][0]
        assert entry["Tags"] == [{"Key": "Owner", "Value": "Alice"}]
        assert list(entry["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]
        await svc.delete_secret(ACCOUNT, secret_id="other")
        assert "other" not in await names(svc)
        assert "other" in await names(svc, include_planned_deletion=True)
        for bad in ({"next_token": "garbage"}, {"next_token": "eyJvZmZzZXQiOiAtMX0="}):
            with pytest.raises(errors.InvalidNextTokenException):
                await svc.list_secrets(ACCOUNT, **bad)
        for bad in (
            {"max_results": 0},
            {"max_results": 101},
            {"sort_order": "up"},
            {"filters": [{"Key": "colour", "Values": ["x"]}]},
            {"filters": [{"Key": "name", "Values": []}]},
        ):
            with pytest.raises(errors.InvalidParameterException):
                await svc.list_secrets(ACCOUNT, **bad)  # fmt: skip

    run(scenario)


def test_pull_through_cache_credentials(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> Credentials:
        good = await svc.create_secret(
            ACCOUNT, name="ecr-pullthroughcache/hub",
            secret_string='{"username":"me","accessToken":"dckr_pat_x"}',
        )  # fmt: skip
        wrong_prefix = await svc.create_secret(
            ACCOUNT, name="hub", secret_string='{"username":"me","accessToken":"t"}'
        )
        malformed = await svc.create_secret(
            ACCOUNT, name="ecr-pullthroughcache/bad", secret_string='{"username":"me"}'
        )
        with pytest.raises(errors.InvalidParameterException):
            await pull_through_credentials(svc, ACCOUNT, wrong_prefix["ARN"])
        with pytest.raises(errors.InvalidParameterException):
            await pull_through_credentials(svc, ACCOUNT, "ecr-pullthroughcache/hub")  # not an ARN
        with pytest.raises(CredentialSecretInvalid):
            await pull_through_credentials(svc, ACCOUNT, malformed["ARN"])
        credentials = await pull_through_credentials(svc, ACCOUNT, good["ARN"])
        await svc.delete_secret(ACCOUNT, secret_id=good["ARN"])
        with pytest.raises(errors.InvalidRequestException):
            await pull_through_credentials(svc, ACCOUNT, good["ARN"])
        return credentials

    assert run(scenario) == Credentials("me", "dckr_pat_x")


@pytest.mark.parametrize("value", ["", "[]", "null", '{"username":"","accessToken":"t"}',
                                   '{"username":"u","accessToken":5}'])  # fmt: skip
def test_malformed_credential_values(value: str) -> None:
    with pytest.raises(CredentialSecretInvalid) as info:
        credentials_from_value(value)
    assert "accessToken" in info.value.message  # says what is expected, never the value
