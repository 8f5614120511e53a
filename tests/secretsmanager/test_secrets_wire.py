"""The operations by AWS name, at the wire: request bodies made by botocore's own serializer
(so its parameter validation and idempotency-token filling apply), answers read back by
botocore's JSON parser, as a door that only translates would pass them through."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator

from cargobay.secrets import errors
from cargobay.secrets.operations import dispatch
from cargobay.secrets.service import SecretsService
from secretsmanager.conftest import ACCOUNT, Clock
from secretsmanager.shapes import MODEL

pytestmark = pytest.mark.backend


async def call(svc: SecretsService, operation: str, **params: Any) -> dict[str, Any]:
    """One operation as botocore sends and reads it."""
    op = MODEL.operation_model(operation)
    for name, member in op.input_shape.members.items():  # what botocore's client fills in
        if member.metadata.get("idempotencyToken") and name not in params:
            params[name] = str(uuid.uuid4())
    report = ParamValidator().validate(params, op.input_shape)
    assert not report.has_errors(), report.generate_report()
    request = create_serializer("json").serialize_to_request(params, op)
    answer = await dispatch(svc, ACCOUNT, operation, json.loads(request["body"] or b"{}"))
    body = json.dumps(answer).encode()
    parsed = create_parser("json").parse(
        {"status_code": 200, "headers": {}, "body": body}, op.output_shape
    )
    parsed.pop("ResponseMetadata", None)
    return parsed


def test_a_secret_life_through_the_wire(run) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        created = await call(svc, "CreateSecret", Name="ecr-pullthroughcache/hub",
                             SecretString='{"username":"u","accessToken":"t"}',
                             Tags=[{"Key": "k", "Value": "v"}])  # fmt: skip
        arn = created["ARN"]
        got = await call(svc, "GetSecretValue", SecretId=arn)
        assert got["SecretString"] == '{"username":"u","accessToken":"t"}'
        assert got["VersionId"] == created["VersionId"]
        assert got["CreatedDate"].timestamp() == clock.now  # a timestamp to botocore
        put = await call(svc, "PutSecretValue", SecretId=arn, SecretBinary=b"\x00\x01")
        binary = await call(svc, "GetSecretValue", SecretId=arn)
        assert binary["SecretBinary"] == b"\x00\x01" and binary["VersionId"] == put["VersionId"]
        described = await call(svc, "DescribeSecret", SecretId=arn)
        assert described["VersionIdsToStages"][put["VersionId"]] == ["AWSCURRENT"]
        listed = await call(svc, "ListSecrets", Filters=[{"Key": "name", "Values": ["ecr-"]}])
        assert [s["ARN"] for s in listed["SecretList"]] == [arn]
        await call(svc, "UpdateSecret", SecretId=arn, Description="hub")
        await call(svc, "TagResource", SecretId=arn, Tags=[{"Key": "x", "Value": "y"}])
        await call(svc, "UntagResource", SecretId=arn, TagKeys=["k"])
        policy = '{"Version":"2012-10-17","Statement":[]}'
        await call(svc, "PutResourcePolicy", SecretId=arn, ResourcePolicy=policy,
                   BlockPublicPolicy=True)  # fmt: skip
        assert (await call(svc, "GetResourcePolicy", SecretId=arn))["ResourcePolicy"] == policy
        await call(svc, "DeleteResourcePolicy", SecretId=arn)
        deleted = await call(svc, "DeleteSecret", SecretId=arn, RecoveryWindowInDays=7)
        assert deleted["DeletionDate"].timestamp() == clock.now + 7 * 86400
        assert (await call(svc, "RestoreSecret", SecretId=arn))["Name"] == created["Name"]
        assert (await call(svc, "DescribeSecret", SecretId=arn))["Tags"] == [
            {"Key": "x", "Value": "y"}
        ]

    run(scenario)


@pytest.mark.parametrize(
    ("operation", "params", "error"),
    [
        ("CreateSecret", {}, errors.InvalidParameterException),
        ("CreateSecret", {"Name": "n", "AddReplicaRegions": [{"Region": "us-east-2"}]},
         errors.InvalidRequestException),
        ("CreateSecret", {"Name": "n", "Colour": "blue"}, errors.InvalidParameterException),
        ("CreateSecret", {"Name": "n", "SecretBinary": "not base64!"},
         errors.InvalidParameterException),
        ("GetSecretValue", {"SecretId": "nope"}, errors.ResourceNotFoundException),
        ("RotateSecret", {"SecretId": "nope"}, errors.InvalidRequestException),
        ("ListSecrets", [], errors.InvalidParameterException),
    ],
)  # fmt: skip
def test_bad_requests_are_domain_errors(run, operation: str, params: Any, error: type) -> None:
    async def scenario(svc: SecretsService, clock: Clock) -> None:
        with pytest.raises(error):
            await dispatch(svc, ACCOUNT, operation, params)

    run(scenario)
