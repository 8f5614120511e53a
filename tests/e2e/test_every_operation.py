"""Every operation each AWS door claims (ECR, IAM, KMS, Secrets Manager,
CloudTrail, Signer), found by
walking botocore's models, called through boto3 against a real `cargobay serve` with a minimal
valid input generated from its input shape (tests/shapecases.py). Each answers as the model
says: a 200 that botocore's parser reads and whose required output members are all there (and,
on the JSON doors, no member the output shape lacks), or one of the operation's modeled errors
(a 4xx) when the minimal input names nothing that exists. Never a 5xx, never an unknown
operation. ECR's model operations that are not implemented answer UnknownOperationException;
they must be exactly EXPECTED_MISSING, so an operation that lands (or goes) shows here."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.model import OperationModel, Shape

from cargobay.aws import shapes
from e2e.ecrhelp import aws_client
from server import Server
from shapecases import Generator

# ECR operations of botocore's model that cargobay does not implement yet (issue 18); the lead
# empties this list as they land.
# Every operation of botocore's ECR model is implemented (the nine of issue 18 landed last).
EXPECTED_MISSING: set[str] = set()

# What any operation of a door may answer besides its modeled errors: the protocol's own input
# faults and a denial.
COMMON_ERRORS = {
    "ValidationException",
    "SerializationException",
    "ValidationError",
    "AccessDeniedException",
}

SESSION = botocore.session.get_session()

# Operations run creators first and destroyers last, so the resources the minimal inputs name
# (the generator's samples: repository `a.a/a.a`, user `a`, secret `a`) exist in between.
FIRST = ("Create", "Put", "Register", "Tag")
LAST = ("Delete", "Deregister", "Untag", "Stop", "Cancel", "Schedule", "Disable")
# Identifiers the generator cannot guess, learnt from an earlier answer: (service, operation)
# -> {input member: path in that operation's output}.
LEARN: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("ecr", "CreateRepository"): {"resourceArn": ("repository", "repositoryArn")},
    ("iam", "CreateAccessKey"): {"AccessKeyId": ("AccessKey", "AccessKeyId")},
    ("kms", "CreateKey"): {
        name: ("KeyMetadata", "KeyId") for name in ("KeyId", "TargetKeyId", "DestinationKeyId")
    },
}
FIXED = {"kms": {"AliasName": "alias/every-operation"}}
# The calls whose minimal input must succeed (the rest may name nothing that exists).
MUST_SUCCEED = {
    "ecr": ["CreateRepository", "DescribeRepositories", "GetAuthorizationToken"],
    "iam": ["CreateUser", "CreateAccessKey", "ListUsers"],
    "kms": ["CreateKey", "CreateAlias", "Encrypt", "DescribeKey", "ListKeys"],
    "secretsmanager": ["CreateSecret", "DescribeSecret", "ListSecrets"],
    "cloudtrail": ["LookupEvents"],
    "signer": ["ListSigningProfiles"],
}


def claimed(service: str) -> set[str]:
    """The operations the service's door dispatches."""
    if service == "ecr":
        from cargobay.ecr import actions  # noqa: F401  (registers the actions)
        from cargobay.ecr.api import ACTIONS

        return set(ACTIONS)
    if service == "iam":
        from cargobay.iamapi import actions as _iam_actions  # noqa: F401  (registers them)
        from cargobay.iamapi.context import ACTIONS as IAM_ACTIONS

        return set(IAM_ACTIONS)
    if service == "signer":
        from cargobay.iam.permissions import SIGNER_OPERATIONS

        return set(SIGNER_OPERATIONS)
    from cargobay.awsjson import door

    for prefix in door.SERVICES:
        table = door.find(prefix)
        if table is not None and table.signing_name == service:
            return set(table.operations)
    raise AssertionError(f"no door claims {service}")


def to_params(shape: Shape | None, value: Any) -> Any:
    """A wire value (JSON: blobs in base64, timestamps in epoch seconds) as boto3 takes it."""
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        return {name: to_params(shape.members[name], v) for name, v in value.items()}
    if kind == "list":
        return [to_params(shape.member, v) for v in value]
    if kind == "map":
        return {k: to_params(shape.value, v) for k, v in value.items()}
    if kind == "blob":
        return base64.b64decode(value)
    if kind == "timestamp":
        return datetime.fromtimestamp(value, UTC)
    return value


def minimal_input(service: str, operation: OperationModel) -> dict[str, Any]:
    model = shapes.load(service)
    root = model.input_shape(operation.name)
    if root is None:
        return {}
    return to_params(operation.input_shape, Generator(model).minimal(root))


def members_off(shape: Shape | None, value: Any, raw: bool, path: str = "") -> list[str]:
    """What of an answer does not fit the output shape, at any depth: the required members
    absent from a parsed answer, and with `raw` (a JSON body) also the members the shape
    does not have."""
    if shape is None:
        return [path or "(body)"] if raw and value not in ({}, None) else []
    found: list[str] = []
    if shape.type_name == "structure" and isinstance(value, dict):
        found += [f"missing {path}{n}" for n in shape.required_members if n not in value]
        for name, item in value.items():
            if name in shape.members:
                found += members_off(shape.members[name], item, raw, f"{path}{name}.")
            elif raw:
                found.append(f"not in the model: {path}{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            found += members_off(shape.member, item, raw, f"{path}{i}.")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            found += members_off(shape.value, item, raw, f"{path}{key}.")
    return found


def modeled_errors(operation: OperationModel) -> set[str]:
    return {
        shape.metadata.get("error", {}).get("code", shape.name) for shape in operation.error_shapes
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    deployment = Server(tmp_path_factory.mktemp("every-operation") / "data").start()
    yield deployment
    deployment.discard()


def _client(server: Server, service: str, raw: dict[str, Any]) -> Any:
    """A boto3 client that keeps each operation's raw answer in `raw`."""
    client = aws_client(server, service)

    def keep(operation_model: OperationModel, response_dict: dict[str, Any], **_: Any) -> None:
        raw[operation_model.name] = response_dict

    service_id = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-parse.{service_id}.*", keep)
    return client


def _order(name: str) -> tuple[int, str]:
    if name in ("CreateKey", "CreateRepository", "CreateUser", "CreateSecret"):
        return 0, name
    return (1 if name.startswith(FIRST) else 3 if name.startswith(LAST) else 2), name


def _call(
    client: Any, raw: dict[str, Any], known: dict[str, Any], operation: OperationModel
) -> str | None:
    """Call `operation` with its minimal input (members named in `known` given their learnt
    values): "OK" for a 200 that fits the output shape, None for a modeled error, else what is
    wrong with the answer. UnknownOperationException is returned as itself."""
    service = client.meta.service_model.service_name
    method = getattr(client, botocore.xform_name(operation.name))
    params = minimal_input(service, operation)
    params.update({k: v for k, v in known.items() if k in operation.input_shape.members})
    try:
        parsed = method(**params)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        if code == "UnknownOperationException":
            return code
        if status >= 500 or code not in modeled_errors(operation) | COMMON_ERRORS:
            return f"{status} {code}: {exc.response['Error'].get('Message')} ({params})"
        return None
    parsed.pop("ResponseMetadata", None)
    problems = members_off(operation.output_shape, parsed, raw=False)
    if operation.metadata["protocol"] == "json":
        body = json.loads(raw[operation.name]["body"] or b"{}")
        problems += members_off(operation.output_shape, body, raw=True)
    for member, path in LEARN.get((service, operation.name), {}).items():
        value = parsed
        for step in path:
            value = value[step]
        known[member] = value
    return "; ".join(problems) or "OK"


@pytest.mark.parametrize("service", ["ecr", "iam", "kms", "secretsmanager", "cloudtrail", "signer"])
def test_every_claimed_operation_answers_its_model(server: Server, service: str) -> None:
    model = SESSION.get_service_model(service)
    ours = claimed(service)
    assert ours <= set(model.operation_names), ours - set(model.operation_names)
    # ECR: every operation of the model is called, to find the ones not implemented.
    names = sorted(model.operation_names if service == "ecr" else ours, key=_order)
    raw: dict[str, Any] = {}
    known: dict[str, Any] = dict(FIXED.get(service, {}))
    client = _client(server, service, raw)
    wrong: dict[str, str] = {}
    unknown: set[str] = set()
    succeeded: set[str] = set()
    for name in names:
        outcome = _call(client, raw, known, model.operation_model(name))
        if outcome == "UnknownOperationException":
            unknown.add(name)
        elif outcome == "OK":
            succeeded.add(name)
        elif outcome is not None:
            wrong[name] = outcome
    assert wrong == {}
    assert set(MUST_SUCCEED[service]) <= succeeded
    if service == "ecr":
        assert unknown == EXPECTED_MISSING
        assert unknown.isdisjoint(ours)
    else:
        assert unknown == set()
    log = Path(server.log_path).read_text(errors="replace") if server.log_path else ""
    assert "Traceback" not in log
