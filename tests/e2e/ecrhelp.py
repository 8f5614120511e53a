"""Helpers for the ECR API tests: boto3 clients that check every raw response against the
botocore service model, the AWS CLI as a subprocess, skopeo, and the admin CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import require_tool
from imagebuilder import Image

REGION = "us-east-1"
ACCOUNT = "000000000000"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- checking raw responses against the model -------------------------------------------------


class ShapeError(AssertionError):
    pass


def _check(shape, value: Any, path: str, cli: bool = False) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ShapeError(f"{path}: expected an object, got {value!r}")
        members = shape.members
        unknown = set(value) - set(members)
        if unknown:
            raise ShapeError(f"{path}: fields not in the model: {sorted(unknown)}")
        for name in shape.required_members:
            if name not in value:
                raise ShapeError(f"{path}: required field {name!r} is missing")
        for name, item in value.items():
            _check(members[name], item, f"{path}.{name}", cli)
    elif kind == "list":
        if not isinstance(value, list):
            raise ShapeError(f"{path}: expected a list, got {value!r}")
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", cli)
    elif kind == "map":
        if not isinstance(value, dict):
            raise ShapeError(f"{path}: expected a map, got {value!r}")
        for key, item in value.items():
            _check(shape.key, key, f"{path}<key>", cli)
            _check(shape.value, item, f"{path}[{key!r}]", cli)
    elif kind == "string":
        if not isinstance(value, str):
            raise ShapeError(f"{path}: expected a string, got {value!r}")
        enum = shape.enum
        if enum and value not in enum:
            raise ShapeError(f"{path}: {value!r} is not one of {enum}")
        meta = shape.metadata
        if "min" in meta and len(value) < meta["min"]:
            raise ShapeError(f"{path}: shorter than {meta['min']}: {value!r}")
        if "max" in meta and len(value) > meta["max"]:
            raise ShapeError(f"{path}: longer than {meta['max']}")
        pattern = meta.get("pattern")
        if pattern:
            try:
                regex = re.compile(pattern)
            except re.error:
                regex = None
            if regex is not None and not regex.fullmatch(value):
                raise ShapeError(f"{path}: {value!r} does not match {pattern}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ShapeError(f"{path}: expected an integer, got {value!r}")
        meta = shape.metadata
        if "min" in meta and value < meta["min"]:
            raise ShapeError(f"{path}: {value} is below the minimum {meta['min']}")
    elif kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ShapeError(f"{path}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ShapeError(f"{path}: expected a boolean, got {value!r}")
    elif kind == "timestamp" and cli and isinstance(value, str):
        # AWS CLI v1 prints what the service sent (cli_timestamp_format "none"), v2 ISO 8601.
        datetime.fromisoformat(value)
    elif kind == "timestamp":
        # The JSON protocol sends epoch seconds.
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ShapeError(f"{path}: expected epoch seconds, got {value!r}")
        # 0 is the epoch itself: ECR's lastEvaluatedAt before a policy's first evaluation.
        if value != 0 and not 1_000_000_000 < value < 10_000_000_000:
            raise ShapeError(f"{path}: {value!r} is not a plausible epoch time in seconds")
    elif kind == "blob":
        if not isinstance(value, str):
            raise ShapeError(f"{path}: expected base64 text, got {value!r}")
        base64.b64decode(value, validate=True)
    else:  # pragma: no cover
        raise ShapeError(f"{path}: unhandled model type {kind}")


MODEL = botocore.session.get_session().get_service_model("ecr")


def check_shape(operation: str, raw: dict[str, Any], *, cli: bool = False) -> None:
    """Raise ShapeError unless `raw` (the decoded JSON body, or with `cli` the AWS CLI's JSON
    output) is `operation`'s output shape."""
    output = MODEL.operation_model(operation).output_shape
    if output is None:
        assert raw in ({}, None), raw
        return
    _check(output, raw, operation, cli)


class RawLog:
    """The last raw JSON body each operation returned, after checking it against the model."""

    def __init__(self) -> None:
        self.bodies: dict[str, Any] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self.checked: set[str] = set()


def aws_client(server, service: str, creds: tuple[str, str] | None = None) -> Any:
    """A boto3 client of any AWS service for `server` (the administrator unless `creds` are
    given), trying each call once."""
    key, secret = creds or server.credentials
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def client(server, key: str | None = None, secret: str | None = None, **kwargs):
    """A boto3 ECR client for `server` (the administrator unless key/secret are given).

    Every response body is checked against the botocore model before boto3 parses it: a 200
    body must be exactly the operation's output shape (no unknown fields, required fields
    present, epoch-second timestamps, enum values), and an error body must be
    {"__type", "message"} plus only the exception shape's own fields.
    """
    if key is None:
        key, secret = server.credentials
    ecr = boto3.client(
        "ecr",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, **kwargs),
    )
    log = RawLog()
    ecr.raw = log  # type: ignore[attr-defined]
    model = ecr.meta.service_model

    def before_parse(operation_model, response_dict, **_: Any) -> None:
        name = operation_model.name
        body = json.loads(response_dict["body"] or b"{}")
        if response_dict["status_code"] == 200:
            check_shape(name, body)
            log.bodies[name] = body
            log.checked.add(name)
        else:
            assert set(body) >= {"__type", "message"}, body
            code = body["__type"].rsplit("#", 1)[-1]
            try:
                shape = model.shape_for(code)
            except Exception:  # generic AWS errors are not in the model
                shape = None
            if shape is not None:
                extra = set(body) - {"__type", "message"}
                assert extra <= set(shape.members), (code, extra)
            log.errors[name] = body

    ecr.meta.events.register("before-parse.ecr.*", before_parse)
    return ecr


def signed_post(
    server,
    operation: str,
    payload: dict[str, Any] | bytes,
    creds: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """POST one ECR API call signed with SigV4 by botocore, outside boto3's client (a bytes
    payload is sent as it is, for bodies json.dumps cannot make)."""
    key, secret = creds or server.credentials
    request = AWSRequest(
        method="POST",
        url=server.url + "/",
        data=payload if isinstance(payload, bytes) else json.dumps(payload).encode(),
        headers={
            "X-Amz-Target": f"AmazonEC2ContainerRegistry_V20150921.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
            **(headers or {}),
        },
    )
    SigV4Auth(Credentials(key, secret), "ecr", REGION).add_auth(request)
    return requests.post(
        request.url, data=request.body, headers=dict(request.headers.items()), timeout=30
    )


@contextmanager
def raises(code: str) -> Iterator[pytest.ExceptionInfo[ClientError]]:
    """Expect a ClientError whose code is exactly `code`."""
    with pytest.raises(ClientError) as info:
        yield info
    assert info.value.response["Error"]["Code"] == code, info.value.response


# -- the AWS CLI ------------------------------------------------------------------------------


def aws(
    server,
    *args: str,
    creds: tuple[str, str] | None = None,
    input: str | None = None,
    check: bool = True,
    output_json: bool = True,
    region: str = REGION,
) -> subprocess.CompletedProcess[str]:
    """Run `aws <args> --endpoint-url <server>`; stdout is parsed JSON in `.json` when asked."""
    key, secret = creds or server.credentials
    env = {
        key_: value
        for key_, value in os.environ.items()
        if not key_.startswith("AWS_") or key_ in ("AWS_CA_BUNDLE",)
    }
    env.update(
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=region,
        AWS_MAX_ATTEMPTS="1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    cmd = [require_tool("aws"), *args, "--endpoint-url", server.url]
    if output_json:
        cmd += ["--output", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, input=input, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"aws {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    parsed = json.loads(proc.stdout) if output_json and proc.stdout.strip() else None
    proc.json = parsed  # type: ignore[attr-defined]
    # An `aws ecr <command>` that is an API operation prints that operation's output shape.
    operation = "".join(word.capitalize() for word in args[1].split("-")) if len(args) > 1 else ""
    if proc.returncode == 0 and args[0] == "ecr" and operation in MODEL.operation_names:
        check_shape(operation, parsed or {}, cli=True)
    return proc


def cli_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error code the AWS CLI reports: `An error occurred (<Code>) when calling ...`."""
    assert proc.returncode != 0, proc.stdout
    match = re.search(r"An error occurred \(([A-Za-z]+)\)", proc.stderr)
    assert match, proc.stderr
    return match.group(1)


# -- skopeo -------------------------------------------------------------------------------------


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [require_tool("skopeo"), *args], capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        pytest.fail(f"skopeo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def push(server, image: Image, ref: str, creds: str | None = None, check: bool = True):
    """skopeo copy the image's `latest` to `<server>/<ref>`."""
    return skopeo(
        "copy",
        "--dest-creds",
        creds or server.creds_arg,
        "--dest-tls-verify=false",
        f"oci:{image.layout}:latest",
        f"docker://{server.host}/{ref}",
        check=check,
    )


def pull(server, ref: str, dest: Path, creds: str | None = None, check: bool = True):
    """skopeo copy `<server>/<ref>` into a `dir:` directory, which keeps the manifest exactly as
    served (an `oci:` layout would convert a Docker manifest to OCI)."""
    return skopeo(
        "copy",
        "--src-creds",
        creds or server.creds_arg,
        "--src-tls-verify=false",
        f"docker://{server.host}/{ref}",
        f"dir:{dest}",
        check=check,
    )


def pulled_blob(directory: Path, digest: str) -> bytes:
    """A blob of a `dir:` pull."""
    return (directory / digest.split(":")[1]).read_bytes()


def pulled_manifest(directory: Path) -> tuple[str, bytes]:
    """The digest and exact bytes of the manifest a `dir:` pull holds."""
    content = (directory / "manifest.json").read_bytes()
    return "sha256:" + hashlib.sha256(content).hexdigest(), content


# -- the admin CLI --------------------------------------------------------------------------------


def admin(server, *args: str, account: str | None = None) -> Any:
    """`python -m cargobay admin --data-dir <server's> [--account-id A] <args>`; parsed JSON."""
    cmd = [sys.executable, "-m", "cargobay", "admin", "--data-dir", str(server.data_dir)]
    if account:
        cmd += ["--account-id", account]
    proc = subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=60, env=server.process_env
    )
    if proc.returncode != 0:
        pytest.fail(f"cargobay admin {' '.join(args)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def make_user(
    server,
    name: str,
    policy: dict[str, Any] | None = None,
    *,
    account: str | None = None,
    is_admin: bool = False,
    tmp: Path | None = None,
) -> tuple[str, str]:
    """Create an IAM user with an access key (and an inline policy); its (key id, secret)."""
    admin(server, "create-user", name, *(["--admin"] if is_admin else []), account=account)
    if policy is not None:
        assert tmp is not None
        path = tmp / f"{name}-policy.json"
        path.write_text(json.dumps(policy))
        admin(server, "put-user-policy", name, "inline", str(path), account=account)
    key = admin(server, "create-access-key", name, account=account)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


# -- IAM users through the IAM API ----------------------------------------------------------------


@dataclass(frozen=True)
class ApiUser:
    """An IAM user made through the IAM API, with one access key."""

    name: str
    key: str
    secret: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/{self.name}"

    @property
    def creds(self) -> tuple[str, str]:
        return self.key, self.secret

    def ecr(self, server) -> Any:
        """Its model-checked ECR client on `server` (`client`)."""
        return client(server, self.key, self.secret)


def api_user(
    server, prefix: str, policy: dict[str, Any] | None = None, *, iam: Any = None
) -> ApiUser:
    """A new IAM user named `prefix-<unique>` (with `policy` inline) and an access key, made
    with `iam` (default: the administrator's IAM client on `server`)."""
    iam = iam or aws_client(server, "iam")
    name = unique(prefix)
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return ApiUser(name, key["AccessKeyId"], key["SecretAccessKey"])


def allow(*actions: str, resource: str = "*") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}],
    }
