"""What every fuzz module uses: the target server with signed raw calls to the ECR and IAM
APIs (so any body can be sent, valid or not), bounded Hypothesis settings, and the assertions
each generated request must pass: no 5xx, and the protocol's error shape on a 4xx."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, settings

from e2e.ecrhelp import REGION
from e2e.ocihttp import Client
from server import Server

# Bounded so the whole suite stays under a minute; derandomised so CI is reproducible, and no
# example database written into the checkout.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921."
IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"
REPO = "fuzz/app"
OCI_ERROR_KEYS = {"code", "message", "detail"}


@dataclass
class FuzzTarget:
    server: Server
    oci: Client
    manifest_digest: str
    blob_digests: list[str]
    user: tuple[str, str]  # a low-privilege user's access key (ecr:* on its account)

    @property
    def url(self) -> str:
        return self.server.url

    def healthy(self) -> None:
        response = requests.get(f"{self.url}/healthz", timeout=30)
        assert response.status_code == 200, response.text

    def ecr(
        self, operation: str, body: bytes | dict[str, Any], creds: tuple[str, str] | None = None
    ) -> requests.Response:
        """A SigV4-signed ECR call with any body."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = AWSRequest(
            method="POST",
            url=self.url + "/",
            data=data,
            headers={
                "X-Amz-Target": ECR_TARGET + operation,
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        key, secret = creds or self.server.credentials
        SigV4Auth(Credentials(key, secret), "ecr", REGION).add_auth(request)
        return requests.post(
            request.url, data=request.body, headers=dict(request.headers.items()), timeout=60
        )

    def iam(self, form: str, creds: tuple[str, str] | None = None) -> requests.Response:
        """A SigV4-signed IAM Query call with any form body."""
        request = AWSRequest(
            method="POST",
            url=self.url + "/",
            data=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        key, secret = creds or self.server.credentials
        SigV4Auth(Credentials(key, secret), "iam", REGION).add_auth(request)
        return requests.post(
            request.url, data=request.body, headers=dict(request.headers.items()), timeout=60
        )


def assert_not_5xx(response: requests.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:1000])


def assert_oci_answer(response: requests.Response) -> None:
    """No 5xx; a 4xx with a body carries `{"errors": [{"code", "message"[, "detail"]}]}`."""
    assert_not_5xx(response)
    if response.status_code < 400 or response.request.method == "HEAD":
        return
    if response.status_code == 416 and not response.content:
        return  # an unsatisfiable Range: Content-Range says it all
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        response.status_code,
        response.headers,
        response.text[:300],
    )
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"errors"}, body
    assert isinstance(body["errors"], list) and body["errors"], body
    for entry in body["errors"]:
        assert set(entry) <= OCI_ERROR_KEYS, entry
        assert isinstance(entry["code"], str) and entry["code"].isupper(), entry
        assert isinstance(entry["message"], str) and entry["message"], entry


def assert_aws_json_answer(response: requests.Response) -> None:
    """No 5xx; a 4xx is AWS JSON 1.1: `{"__type", "message"}` and `x-amzn-ErrorType`."""
    assert_not_5xx(response)
    if response.status_code < 400:
        return
    body = response.json()
    assert isinstance(body.get("__type"), str) and body["__type"], body
    assert isinstance(body.get("message"), str), body
    assert response.headers.get("x-amzn-ErrorType") == body["__type"], response.headers


def assert_iam_answer(response: requests.Response) -> None:
    """No 5xx; a 4xx is IAM's `<ErrorResponse><Error><Type/><Code/><Message/></Error>`."""
    assert_not_5xx(response)
    if response.status_code < 400:
        return
    root = ET.fromstring(response.content)
    assert root.tag == f"{IAM_NS}ErrorResponse", response.text[:300]
    error = root.find(f"{IAM_NS}Error")
    assert error is not None
    assert error.findtext(f"{IAM_NS}Type") == "Sender"
    assert error.findtext(f"{IAM_NS}Code"), response.text[:300]
    assert error.findtext(f"{IAM_NS}Message") is not None
    assert root.findtext(f"{IAM_NS}RequestId")
