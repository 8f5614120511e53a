"""Helpers for the managed-signing tests: a boto3 `signer` client whose raw answers are
checked against botocore's model, and waiting for a signing status."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from e2e.ecrhelp import REGION, _check, unique

SIGNER_MODEL = botocore.session.get_session().get_service_model("signer")
PLATFORM = "Notation-OCI-SHA384-ECDSA"


def signer_client(server, key: str | None = None, secret: str | None = None):
    """A boto3 signer client for `server`: every 200 body must be the operation's output shape,
    every error body `{"__type", "message"}`."""
    if key is None:
        key, secret = server.credentials
    signer = boto3.client(
        "signer",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )

    def before_parse(operation_model, response_dict, **_: Any) -> None:
        body = json.loads(response_dict["body"] or b"{}")
        if response_dict["status_code"] == 200:
            output = operation_model.output_shape
            if output is None:
                assert body == {}, body
            else:
                _check(output, body, operation_model.name)
        else:
            assert set(body) == {"__type", "message"}, body
            code = body["__type"]
            status = SIGNER_MODEL.shape_for(code).metadata["error"]["httpStatusCode"]
            assert response_dict["status_code"] == status, (code, response_dict["status_code"])

    signer.meta.events.register("before-parse.signer.*", before_parse)
    return signer


def wait_signed(ecr, name: str, digest: str, timeout: float = 180.0) -> list[dict[str, Any]]:
    """The image's signing statuses once none is IN_PROGRESS (generous: the machine is busy)."""
    deadline = time.monotonic() + timeout
    while True:
        found = ecr.describe_image_signing_status(
            repositoryName=name, imageId={"imageDigest": digest}
        )
        statuses = found["signingStatuses"]
        if statuses and all(s["status"] != "IN_PROGRESS" for s in statuses):
            return statuses
        assert time.monotonic() < deadline, f"still signing: {statuses}"
        time.sleep(0.5)


def profile_name(prefix: str) -> str:
    """A unique signing profile name (profile names allow letters, digits and `_`)."""
    return unique(prefix).replace("-", "_")
