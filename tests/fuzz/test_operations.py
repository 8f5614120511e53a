"""Every operation the AWS-style doors implement (ECR, IAM, KMS, Secrets Manager), called with
inputs generated from its botocore input shape: a minimal valid input, then one member (any
member the shape has, required or not) replaced by a hostile value — a wrong type, a huge or
negative number, an empty, over-long or surrogate-laden string, a deep or wide structure.
Each call is signed and sent to the real server; the answer is a success or the API's own
error shape, never a 5xx, and the server stays healthy (the session fixture checks its log for
tracebacks at the end)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from cargobay.aws import shapes
from e2e.ecrhelp import REGION
from fuzz.target import FUZZ, FuzzTarget, assert_aws_json_answer, assert_iam_answer
from shapecases import Generator, query_fields

# Operations whose success would take the fuzz suite's own fixtures away (its repository, its
# user, the administrator's key) are called on other names only: the generated inputs never
# name those (the fixtures' names do not match what the generator samples).
JSON_SERVICES = {
    "ecr": "AmazonEC2ContainerRegistry_V20150921.",
    "kms": "TrentService.",
    "secretsmanager": "secretsmanager.",
}


def _implemented(service: str) -> list[str]:
    if service == "ecr":
        from cargobay.ecr import actions  # noqa: F401  (registers the actions)
        from cargobay.ecr.api import ACTIONS

        return sorted(ACTIONS)
    if service == "iam":
        from cargobay.iamapi import actions as _iam_actions  # noqa: F401  (registers them)
        from cargobay.iamapi.context import ACTIONS as IAM_ACTIONS

        return sorted(IAM_ACTIONS)
    if service == "kms":
        from cargobay.kms.door import SERVICE

        return sorted(SERVICE.operations)
    from cargobay.iam.permissions import SECRETS_OPERATIONS

    return sorted(SECRETS_OPERATIONS)


HOSTILE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", " ", "\ud800", "a" * 5000, "../../etc/passwd", "%00", "*" * 64])
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=12,
)


@st.composite
def calls(draw: st.DrawFn, service: str) -> tuple[str, dict[str, Any]]:
    """(operation, input): a minimal valid input with one member made hostile."""
    model = shapes.load(service)
    operation = draw(st.sampled_from(_implemented(service)))
    root = model.input_shape(operation)
    if root is None:
        return operation, {}
    payload = Generator(model).minimal(root)
    members = sorted(model.shapes[root].get("members", {}))
    if members and draw(st.booleans()):
        payload[draw(st.sampled_from(members))] = draw(HOSTILE)
    return operation, payload


def _signed_json(fuzz: FuzzTarget, service: str, operation: str, body: bytes):
    request = AWSRequest(
        method="POST",
        url=fuzz.url + "/",
        data=body,
        headers={
            "X-Amz-Target": JSON_SERVICES[service] + operation,
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    key, secret = fuzz.server.credentials
    SigV4Auth(Credentials(key, secret), service, REGION).add_auth(request)
    return requests.post(
        request.url, data=request.body, headers=dict(request.headers.items()), timeout=60
    )


@settings(FUZZ, max_examples=160)
@given(call=calls("ecr"))
def test_ecr_operations(fuzz: FuzzTarget, call: tuple[str, dict[str, Any]]) -> None:
    operation, payload = call
    assert_aws_json_answer(_signed_json(fuzz, "ecr", operation, json.dumps(payload).encode()))


@settings(FUZZ, max_examples=80)
@given(call=calls("kms"))
def test_kms_operations(fuzz: FuzzTarget, call: tuple[str, dict[str, Any]]) -> None:
    operation, payload = call
    assert_aws_json_answer(_signed_json(fuzz, "kms", operation, json.dumps(payload).encode()))


@settings(FUZZ, max_examples=60)
@given(call=calls("secretsmanager"))
def test_secrets_manager_operations(fuzz: FuzzTarget, call: tuple[str, dict[str, Any]]) -> None:
    operation, payload = call
    body = json.dumps(payload).encode()
    assert_aws_json_answer(_signed_json(fuzz, "secretsmanager", operation, body))


@settings(FUZZ, max_examples=80)
@given(call=calls("iam"))
def test_iam_operations(fuzz: FuzzTarget, call: tuple[str, dict[str, Any]]) -> None:
    operation, payload = call
    model = shapes.load("iam")
    root = model.input_shape(operation)
    try:
        fields = query_fields(model, root, payload) if root else {}
    except (KeyError, TypeError, AttributeError):
        # A hostile value where the Query protocol has no encoding for it: send it as text.
        fields = {key: str(value) for key, value in payload.items()}
    form = urlencode({"Action": operation, "Version": "2010-05-08", **fields})
    assert_iam_answer(fuzz.iam(form))
    fuzz.healthy()
