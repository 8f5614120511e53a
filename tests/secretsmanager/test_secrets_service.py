"""The Secrets Manager service's rules on a real database: names and ARNs, versions and their
staging labels, sealing at rest, deletion with a recovery window, listing, tags, policies.
Every result is checked against botocore's output shape."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from cargobay.iam.secrets import SecretBox, new_key
from cargobay.metadata.schema import secret_versions
from cargobay.secrets import errors
from cargobay.secrets.service import SecretsService
from secretsmanager.conftest import ACCOUNT, REGION, Clock
from secretsmanager.shapes import assert_output_shape, error_names

pytestmark = pytest.mark.backend

ARN_RE = re.compile(
    rf"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:(?P<name>.+)-[A-Za-z0-9]{{6}}"
)


def raises(exc: type[errors.SecretsError], operation: str):
    """pytest.raises, also checking the error is one botocore's model lists for `operation`."""
    assert exc.code == exc.__name__
    assert exc.code in error_names(operation), (exc.code, operation)
    return pytest.raises(exc)


def test_create_and_get_by_name_full_arn_and_partial_arn(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        created = await svc.create_secret(
            ACCOUNT, name="ecr-pullthroughcache/hub", secret_string='{"a":1}',
            description="hub", tags=[{"Key": "team", "Value": "infra"}],
        )  # fmt: skip
        assert_output_shape("CreateSecret", created)
        assert ARN_RE.fullmatch(created["ARN"]).group("name") == "ecr-pullthroughcache/hub"
        assert re.fullmatch(r"[0-9a-f-]{36}", created["VersionId"])
        partial = created["ARN"][:-7]
        for secret_id in ("ecr-pullthroughcache/hub", created["ARN"], partial):
            got = await svc.get_secret_value(ACCOUNT, secret_id=secret_id)
            assert_output_shape("GetSecretValue", got)
            assert got["SecretString"] == '{"a":1}'
            assert got["VersionStages"] == ["AWSCURRENT"]
            assert (got["ARN"], got["VersionId"]) == (created["ARN"], created["VersionId"])
            assert got["CreatedDate"] == clock.now
        other_account = created["ARN"].replace(ACCOUNT, "999999999999")
        # The ARN with its random suffix's last character changed (never to itself).
        wrong_suffix = created["ARN"][:-1] + ("Y" if created["ARN"].endswith("Z") else "Z")
        for missing in ("nope", other_account, wrong_suffix, partial[:-1]):
            with raises(errors.ResourceNotFoundException, "GetSecretValue"):
                await svc.get_secret_value(ACCOUNT, secret_id=missing)
        with raises(errors.ResourceNotFoundException, "GetSecretValue"):
            await svc.get_secret_value("999999999999", secret_id="ecr-pullthroughcache/hub")

    run(scenario)


@pytest.mark.parametrize("name", ["", "a" * 513, "has space", "bang!", "ü", None, 5])
def test_invalid_names(run, name: object) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        with raises(errors.InvalidParameterException, "CreateSecret"):
            await svc.create_secret(ACCOUNT, name=name, secret_string="x")

    run(scenario)


def test_names_and_values_at_their_limits(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        name = "A/z_0+=.@-" + "x" * 502
        await svc.create_secret(ACCOUNT, name=name, secret_string="v" * 65536)
        assert len((await svc.get_secret_value(ACCOUNT, secret_id=name))["SecretString"]) == 65536
        with raises(errors.ResourceExistsException, "CreateSecret"):
            await svc.create_secret(ACCOUNT, name=name, secret_string="again")
        with raises(errors.InvalidParameterException, "CreateSecret"):
            await svc.create_secret(ACCOUNT, name="big", secret_string="v" * 65537)
        with raises(errors.InvalidParameterException, "CreateSecret"):
            await svc.create_secret(ACCOUNT, name="both", secret_string="s", secret_binary=b"b")
        # Another account or the same name in another region are other secrets.
        await svc.create_secret("999999999999", name=name, secret_string="theirs")
        mine = await svc.get_secret_value(ACCOUNT, secret_id=name)
        assert mine["SecretString"] == "v" * 65536

    run(scenario)


def test_binary_secrets_and_secrets_without_a_value(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        await svc.create_secret(ACCOUNT, name="bin", secret_binary=b"\x00\xffraw")
        got = await svc.get_secret_value(ACCOUNT, secret_id="bin")
        assert_output_shape("GetSecretValue", got)
        assert got["SecretBinary"] == b"\x00\xffraw" and "SecretString" not in got
        empty = await svc.create_secret(ACCOUNT, name="empty")
        assert "VersionId" not in empty
        with raises(errors.ResourceNotFoundException, "GetSecretValue"):
            await svc.get_secret_value(ACCOUNT, secret_id="empty")
        described = await svc.describe_secret(ACCOUNT, secret_id="empty")
        assert "VersionIdsToStages" not in described

    run(scenario)


def test_new_versions_move_the_current_and_previous_labels(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        v1 = (await svc.create_secret(ACCOUNT, name="s", secret_string="one"))["VersionId"]
        clock.now += 10
        put = await svc.put_secret_value(ACCOUNT, secret_id="s", secret_string="two")
        assert_output_shape("PutSecretValue", put)
        v2 = put["VersionId"]
        assert put["VersionStages"] == ["AWSCURRENT"]
        v3 = (await svc.put_secret_value(ACCOUNT, secret_id="s", secret_string="three"))[
            "VersionId"
        ]
        stages = (await svc.describe_secret(ACCOUNT, secret_id="s"))["VersionIdsToStages"]
        assert stages == {v3: ["AWSCURRENT"], v2: ["AWSPREVIOUS"]}  # v1: no label left
        get = svc.get_secret_value
        assert (await get(ACCOUNT, secret_id="s"))["SecretString"] == "three"
        previous = await get(ACCOUNT, secret_id="s", version_stage="AWSPREVIOUS")
        assert (previous["SecretString"], previous["VersionId"]) == ("two", v2)
        first = await get(ACCOUNT, secret_id="s", version_id=v1)
        assert (first["SecretString"], first["VersionStages"]) == ("one", [])
        both = await get(ACCOUNT, secret_id="s", version_id=v3, version_stage="AWSCURRENT")
        assert both["SecretString"] == "three"
        with raises(errors.ResourceNotFoundException, "GetSecretValue"):
            await get(ACCOUNT, secret_id="s", version_id=v1, version_stage="AWSCURRENT")
        with raises(errors.ResourceNotFoundException, "GetSecretValue"):
            await get(ACCOUNT, secret_id="s", version_id="0" * 32)
        with raises(errors.InvalidParameterException, "GetSecretValue"):
            await get(ACCOUNT, secret_id="s", version_id="short")
        # A pending version does not become current.
        pending = await svc.put_secret_value(
            ACCOUNT, secret_id="s", secret_string="four", version_stages=["AWSPENDING"]
        )
        assert pending["VersionStages"] == ["AWSPENDING"]
        assert (await get(ACCOUNT, secret_id="s"))["SecretString"] == "three"
        with raises(errors.InvalidRequestException, "PutSecretValue"):
            await svc.put_secret_value(ACCOUNT, secret_id="s")

    run(scenario)


def test_a_repeated_client_request_token_is_idempotent(run) -> None:
    token = "a" * 32

    async def scenario(svc: SecretsService, clock: Clock) -> None:
        await svc.create_secret(ACCOUNT, name="s", secret_string="one")
        put = svc.put_secret_value
        first = await put(ACCOUNT, secret_id="s", secret_string="two", client_request_token=token)
        again = await put(ACCOUNT, secret_id="s", secret_string="two", client_request_token=token)
        assert first == again and first["VersionId"] == token
        with raises(errors.ResourceExistsException, "PutSecretValue"):
            await put(ACCOUNT, secret_id="s", secret_string="other", client_request_token=token)
        stages = (await svc.describe_secret(ACCOUNT, secret_id="s"))["VersionIdsToStages"]
        assert stages[token] == ["AWSCURRENT"] and len(stages) == 2

    run(scenario)


def test_values_are_sealed_at_rest(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> list[str]:
        await svc.create_secret(ACCOUNT, name="s", secret_string="plain-text-value")
        async with svc.db.read() as conn:
            stored = (await conn.execute(select(secret_versions.c.sealed_value))).scalars().all()
        stranger = SecretsService(svc.db, SecretBox(new_key()), region=REGION, clock=clock)
        with raises(errors.DecryptionFailure, "GetSecretValue"):
            await stranger.get_secret_value(ACCOUNT, secret_id="s")
        return list(stored)

    stored = run(scenario)
    assert len(stored) == 1 and "plain-text-value" not in stored[0]


def test_update_secret(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        await svc.create_secret(ACCOUNT, name="s", secret_string="one", description="old")
        clock.now += 5
        only_description = await svc.update_secret(ACCOUNT, secret_id="s", description="new")
        assert_output_shape("UpdateSecret", only_description)
        assert "VersionId" not in only_description
        updated = await svc.update_secret(ACCOUNT, secret_id="s", secret_string="two",
                                          kms_key_id="alias/mine")  # fmt: skip
        described = await svc.describe_secret(ACCOUNT, secret_id="s")
        assert_output_shape("DescribeSecret", described)
        assert described["Description"] == "new" and described["KmsKeyId"] == "alias/mine"
        assert described["VersionIdsToStages"][updated["VersionId"]] == ["AWSCURRENT"]
        assert described["LastChangedDate"] == clock.now
        assert described["CreatedDate"] == clock.now - 5
        with raises(errors.InvalidParameterException, "UpdateSecret"):
            await svc.update_secret(ACCOUNT, secret_id="s", description="d" * 2049)

    run(scenario)


def test_delete_with_a_recovery_window_then_restore(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        await svc.create_secret(ACCOUNT, name="s", secret_string="v")
        for bad in (
            {"recovery_window_in_days": 6},
            {"recovery_window_in_days": 31},
            {"recovery_window_in_days": 7, "force_delete_without_recovery": True},
        ):
            with raises(errors.InvalidParameterException, "DeleteSecret"):
                await svc.delete_secret(ACCOUNT, secret_id="s", **bad)  # fmt: skip
        deleted = await svc.delete_secret(ACCOUNT, secret_id="s", recovery_window_in_days=7)
        assert_output_shape("DeleteSecret", deleted)
        assert deleted["DeletionDate"] == clock.now + 7 * 86400
        with raises(errors.InvalidRequestException, "GetSecretValue"):
            await svc.get_secret_value(ACCOUNT, secret_id="s")
        with raises(errors.InvalidRequestException, "PutSecretValue"):
            await svc.put_secret_value(ACCOUNT, secret_id="s", secret_string="x")
        with raises(errors.InvalidRequestException, "CreateSecret"):
            await svc.create_secret(ACCOUNT, name="s", secret_string="x")
        with raises(errors.InvalidRequestException, "DeleteSecret"):
            await svc.delete_secret(ACCOUNT, secret_id="s")
        described = await svc.describe_secret(ACCOUNT, secret_id="s")
        assert described["DeletedDate"] == clock.now
        restored = await svc.restore_secret(ACCOUNT, secret_id="s")
        assert_output_shape("RestoreSecret", restored)
        assert (await svc.get_secret_value(ACCOUNT, secret_id="s"))["SecretString"] == "v"
        assert "DeletedDate" not in await svc.describe_secret(ACCOUNT, secret_id="s")

    run(scenario)


def test_deletion_takes_effect_after_the_window_or_at_once_when_forced(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        await svc.create_secret(ACCOUNT, name="later", secret_string="v")
        await svc.create_secret(ACCOUNT, name="now", secret_string="v")
        await svc.delete_secret(ACCOUNT, secret_id="later")  # 30 days by default
        forced = await svc.delete_secret(ACCOUNT, secret_id="now",
                                         force_delete_without_recovery=True)  # fmt: skip
        assert forced["DeletionDate"] == clock.now
        with raises(errors.ResourceNotFoundException, "GetSecretValue"):
            await svc.get_secret_value(ACCOUNT, secret_id="now")
        await svc.create_secret(ACCOUNT, name="now", secret_string="new")  # name free again
        clock.now += 30 * 86400 + 1
        with raises(errors.ResourceNotFoundException, "DescribeSecret"):
            await svc.describe_secret(ACCOUNT, secret_id="later")
        with raises(errors.ResourceNotFoundException, "RestoreSecret"):
            await svc.restore_secret(ACCOUNT, secret_id="later")
        await svc.create_secret(ACCOUNT, name="later", secret_string="again")
        assert (await svc.get_secret_value(ACCOUNT, secret_id="later"))["SecretString"] == "again"
        await svc.delete_secret(ACCOUNT, secret_id="now", recovery_window_in_days=7)
        clock.now += 8 * 86400
        assert await svc.purge_expired() == 1

    run(scenario)


def test_tags(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        await svc.create_secret(ACCOUNT, name="s", tags=[{"Key": "a", "Value": "1"}])
        result = await svc.tag_resource(
            ACCOUNT, secret_id="s", tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "9"}]
        )
        assert result == {}
        described = await svc.describe_secret(ACCOUNT, secret_id="s")
        assert described["Tags"] == [{"Key": "a", "Value": "9"}, {"Key": "b", "Value": "2"}]
        await svc.untag_resource(ACCOUNT, secret_id="s", tag_keys=["a", "missing"])
        described = await svc.describe_secret(ACCOUNT, secret_id="s")
        assert described["Tags"] == [{"Key": "b", "Value": "2"}]
        with raises(errors.InvalidParameterException, "TagResource"):
            await svc.tag_resource(ACCOUNT, secret_id="s", tags=[{"Key": "aws:x", "Value": ""}])
        many = [{"Key": f"k{i}", "Value": ""} for i in range(50)]
        with raises(errors.InvalidParameterException, "TagResource"):
            await svc.tag_resource(ACCOUNT, secret_id="s", tags=many)
        with raises(errors.LimitExceededException, "CreateSecret"):
            await svc.create_secret(ACCOUNT, name="t", tags=[*many, {"Key": "x", "Value": ""}])
        with raises(errors.ResourceNotFoundException, "UntagResource"):
            await svc.untag_resource(ACCOUNT, secret_id="nope", tag_keys=["b"])

    run(scenario)


def test_resource_policies_are_stored_as_text(run) -> None:
    policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},' \
        '"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}'  # fmt: skip

    async def scenario(svc: SecretsService, clock: Clock) -> None:
        await svc.create_secret(ACCOUNT, name="s", secret_string="v")
        empty = await svc.get_resource_policy(ACCOUNT, secret_id="s")
        assert_output_shape("GetResourcePolicy", empty)
        assert "ResourcePolicy" not in empty
        put = await svc.put_resource_policy(ACCOUNT, secret_id="s", resource_policy=policy)
        assert_output_shape("PutResourcePolicy", put)
        got = await svc.get_resource_policy(ACCOUNT, secret_id="s")
        assert got["ResourcePolicy"] == policy
        for bad in ("not json", "[]", "{}", ""):
            with raises(errors.MalformedPolicyDocumentException, "PutResourcePolicy"):
                await svc.put_resource_policy(ACCOUNT, secret_id="s", resource_policy=bad)
        deleted = await svc.delete_resource_policy(ACCOUNT, secret_id="s")
        assert_output_shape("DeleteResourcePolicy", deleted)
        assert "ResourcePolicy" not in await svc.get_resource_policy(ACCOUNT, secret_id="s")

    run(scenario)
