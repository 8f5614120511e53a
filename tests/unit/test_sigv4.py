"""SigV4 verification against requests signed by botocore, boto3 and the AWS CLI themselves."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from cargobay.iam import sigv4
from cargobay.iam.sigv4 import SignedIdentity, SigV4Error, verify
from conftest import require_tool

KEY_ID = "AKIAEXAMPLEKEY000001"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
T0 = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
BODY = b'{"registryIds": ["000000000000"]}'
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


async def secret_for(key_id: str) -> str | None:
    return SECRET if key_id == KEY_ID else None


class Wire:
    """A request as a server receives it: raw path, raw query, headers (with Host), body."""

    def __init__(self, method: str, url: str, headers: dict, body: bytes) -> None:
        parts = urlsplit(url)
        self.method = method
        self.path = parts.path or "/"
        self.query = parts.query
        # botocore keeps some prepared header values as bytes; on the wire they are latin-1.
        text = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in headers.items()}
        self.headers = {"Host": parts.netloc, **text}
        self.body = body

    def run(self, **kwargs) -> SignedIdentity:
        kwargs.setdefault("now", T0)
        return asyncio.run(
            verify(
                self.method, self.path, self.query, self.headers, self.body, secret_for, **kwargs
            )
        )

    def error(self, **kwargs) -> SigV4Error:
        with pytest.raises(SigV4Error) as info:
            self.run(**kwargs)
        return info.value


def signed(
    *,
    url: str = "http://registry.test:5000/",
    method: str = "POST",
    body: bytes = BODY,
    headers: dict[str, str] | None = None,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    token: str | None = None,
    region: str = "us-east-1",
    service: str = "ecr",
    when: datetime = T0,
) -> Wire:
    """Sign with botocore's own SigV4Auth at time `when`."""
    base = {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}
    request = AWSRequest(method=method, url=url, data=body, headers={**base, **(headers or {})})
    naive = when.astimezone(UTC).replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=naive):
        SigV4Auth(Credentials(key_id, secret, token), service, region).add_auth(request)
    prepared = request.prepare()
    return Wire(prepared.method, prepared.url, dict(prepared.headers), prepared.body or b"")


# -- requests that verify ---------------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "ap-southeast-2", "local"])
def test_botocore_signed_request_verifies_in_any_region(region: str) -> None:
    assert signed(region=region).run() == SignedIdentity(KEY_ID, region, "ecr")


def test_path_query_and_odd_headers_verify() -> None:
    wire = signed(
        url="https://registry.test/some%20path/x?b=2&a=1&a=0&empty=&plus=a%2Bb",
        headers={"X-Custom": "  spaced    out value ", "X-Other": "v"},
    )
    assert wire.run().access_key_id == KEY_ID


def test_security_token_is_accepted() -> None:
    wire = signed(token="FQoGZXIvYXdzEXAMPLE//session+token=")
    assert "x-amz-security-token" in wire.headers["Authorization"]
    assert wire.run().access_key_id == KEY_ID


def test_date_header_instead_of_x_amz_date() -> None:
    wire = signed(headers={"Date": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert "X-Amz-Date" not in wire.headers
    assert wire.run().access_key_id == KEY_ID


def test_signed_content_sha256_header() -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    assert signed(headers={"X-Amz-Content-SHA256": digest}).run().access_key_id == KEY_ID


def test_unsigned_or_wrong_payload_hash_is_refused() -> None:
    for claimed in ("UNSIGNED-PAYLOAD", hashlib.sha256(b"other").hexdigest()):
        err = signed(headers={"X-Amz-Content-SHA256": claimed}).error()
        assert err.code == "InvalidSignatureException"
        assert "x-amz-content-sha256" in err.message


def test_skew_within_the_window_verifies() -> None:
    wire = signed()
    for delta in (timedelta(minutes=14), -timedelta(minutes=14)):
        assert wire.run(now=T0 + delta).access_key_id == KEY_ID


# -- a real boto3 client and the real AWS CLI -------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs) -> Iterator[bytes]:
        yield self._data


def test_real_boto3_client_request_verifies() -> None:
    """Capture what boto3 would send (after signing, before the wire) and verify it."""
    client = boto3.client(
        "ecr",
        region_name="eu-central-1",
        endpoint_url="http://registry.test:5000",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        aws_session_token="session-token",
    )
    captured = []

    def before_send(request, **_kwargs) -> AWSResponse:
        captured.append(request)
        answer = json.dumps({"authorizationData": []}).encode()
        return AWSResponse(request.url, 200, {}, _Body(answer))

    client.meta.events.register("before-send.ecr.GetAuthorizationToken", before_send)
    client.get_authorization_token()
    (request,) = captured
    wire = Wire(request.method, request.url, dict(request.headers), request.body)
    assert wire.headers["X-Amz-Target"] == TARGET
    assert "x-amz-security-token" in wire.headers["Authorization"]
    identity = wire.run(now=datetime.now(UTC))
    assert identity == SignedIdentity(KEY_ID, "eu-central-1", "ecr")
    # The same request, replayed with one byte of the body changed, does not verify.
    wire.body = wire.body.replace(b"{", b"{ ", 1)
    assert wire.error(now=datetime.now(UTC)).message == MISMATCH


class _Handler(BaseHTTPRequestHandler):
    skew = timedelta(0)  # the server's clock minus the real one

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path, _, query = self.path.partition("?")
        try:
            identity = asyncio.run(
                verify(
                    "POST",
                    path,
                    query,
                    self.headers,
                    body,
                    secret_for,
                    now=datetime.now(UTC) + self.skew,
                )
            )
        except SigV4Error as err:
            self._send(err.status, {"__type": err.code, "message": err.message})
            return
        token = f"AWS:token-for-{identity.access_key_id}-{identity.region}"
        data = {
            "authorizationToken": base64.b64encode(token.encode()).decode(),
            "expiresAt": 1767268800,
            "proxyEndpoint": f"http://{self.headers['Host']}",
        }
        self._send(200, {"authorizationData": [data]})

    def _send(self, status: int, document: dict) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    _Handler.skew = timedelta(0)


def _boto3(endpoint: str, key_id: str = KEY_ID, secret: str = SECRET):
    return boto3.client(
        "ecr",
        region_name="ap-northeast-1",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_boto3_over_the_wire(endpoint: str) -> None:
    answer = _boto3(endpoint).get_authorization_token()
    token = answer["authorizationData"][0]["authorizationToken"]
    assert base64.b64decode(token).decode().endswith(f"{KEY_ID}-ap-northeast-1")


@pytest.mark.parametrize(
    ("key_id", "secret", "code", "status", "message"),
    [
        (KEY_ID, "wrong-secret", "InvalidSignatureException", 400, MISMATCH),
        (
            "AKIAUNKNOWN000000000",
            SECRET,
            "UnrecognizedClientException",
            400,
            "The security token included in the request is invalid.",
        ),
    ],
)
def test_boto3_parses_our_errors(endpoint, key_id, secret, code, status, message) -> None:
    with pytest.raises(ClientError) as info:
        _boto3(endpoint, key_id, secret).get_authorization_token()
    error = info.value.response
    assert error["Error"] == {"Code": code, "Message": message}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize(
    ("skew", "prefix"),
    [(timedelta(minutes=20), "Signature expired: "), (-timedelta(minutes=20), "Signature not")],
)
def test_boto3_sees_clock_skew_errors(endpoint: str, skew: timedelta, prefix: str) -> None:
    _Handler.skew = skew
    with pytest.raises(ClientError) as info:
        _boto3(endpoint).get_authorization_token()
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"].startswith(prefix)


def _aws_cli(endpoint: str, key_id: str, secret: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "sa-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return subprocess.run(
        [require_tool("aws"), "ecr", "get-authorization-token", "--endpoint-url", endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_aws_cli_over_the_wire(endpoint: str) -> None:
    done = _aws_cli(endpoint, KEY_ID, SECRET)
    assert done.returncode == 0, done.stderr
    token = json.loads(done.stdout)["authorizationData"][0]["authorizationToken"]
    assert base64.b64decode(token).decode().endswith(f"{KEY_ID}-sa-east-1")

    done = _aws_cli(endpoint, KEY_ID, "not-the-secret")
    assert done.returncode != 0
    assert "(InvalidSignatureException)" in done.stderr
    assert MISMATCH in done.stderr


# -- requests that do not verify --------------------------------------------------------------


def _assert_mismatch(wire: Wire) -> None:
    err = wire.error()
    assert (err.code, err.status, err.message) == ("InvalidSignatureException", 400, MISMATCH)


def test_tampered_body() -> None:
    wire = signed()
    wire.body = BODY.replace(b"000000000000", b"111111111111")
    _assert_mismatch(wire)


def test_tampered_signed_header() -> None:
    wire = signed()
    wire.headers["X-Amz-Target"] = "AmazonEC2ContainerRegistry_V20150921.DeleteRepository"
    _assert_mismatch(wire)


def test_tampered_host() -> None:
    wire = signed()
    wire.headers["Host"] = "evil.test:5000"
    _assert_mismatch(wire)


def test_tampered_method_path_and_query() -> None:
    for change in ({"method": "PUT"}, {"path": "/other"}, {"query": "a=1"}):
        wire = signed()
        for name, value in change.items():
            setattr(wire, name, value)
        _assert_mismatch(wire)


def test_wrong_secret() -> None:
    _assert_mismatch(signed(secret="not-the-secret"))


def test_tampered_date_within_the_window() -> None:
    wire = signed()
    wire.headers["X-Amz-Date"] = "20260101T000001Z"
    _assert_mismatch(wire)


def test_tampered_signature() -> None:
    wire = signed()
    auth = wire.headers["Authorization"]
    last = auth[-1]
    wire.headers["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")
    _assert_mismatch(wire)
    wire.headers["Authorization"] = auth[: auth.index("Signature=") + 10] + "not-hex"
    _assert_mismatch(wire)


def test_tampered_region_in_scope() -> None:
    wire = signed(region="us-east-1")
    wire.headers["Authorization"] = wire.headers["Authorization"].replace(
        "/us-east-1/", "/us-west-2/"
    )
    _assert_mismatch(wire)


def test_header_removed_from_signed_headers() -> None:
    wire = signed()
    assert "x-amz-date;x-amz-target," in wire.headers["Authorization"]
    wire.headers["Authorization"] = wire.headers["Authorization"].replace(";x-amz-target", "")
    _assert_mismatch(wire)


def test_unknown_access_key() -> None:
    err = signed(key_id="AKIANOBODY0000000000").error()
    assert err.code == "UnrecognizedClientException"
    assert err.status == 400
    assert err.message == "The security token included in the request is invalid."


def test_signature_expired() -> None:
    err = signed().error(now=T0 + timedelta(minutes=15, seconds=1))
    assert err.code == "InvalidSignatureException"
    assert err.status == 400
    assert err.message == (
        "Signature expired: 20260101T000000Z is now earlier than 20260101T000001Z "
        "(20260101T001501Z - 15 min.)"
    )


def test_signature_not_yet_current() -> None:
    err = signed().error(now=T0 - timedelta(minutes=16))
    assert err.code == "InvalidSignatureException"
    assert err.message == (
        "Signature not yet current: 20260101T000000Z is still later than 20251231T235900Z "
        "(20251231T234400Z + 15 min.)"
    )


def test_custom_skew_window() -> None:
    wire = signed()
    assert wire.run(now=T0 + timedelta(minutes=20), max_skew=timedelta(minutes=30))
    err = wire.error(now=T0 + timedelta(minutes=6), max_skew=timedelta(minutes=5))
    assert err.message.endswith("- 5 min.)")


def test_missing_authorization() -> None:
    wire = signed()
    del wire.headers["Authorization"]
    err = wire.error()
    assert (err.code, err.status, err.message) == (
        "MissingAuthenticationTokenException",
        403,
        "Missing Authentication Token",
    )


def test_wrong_service_in_scope() -> None:
    err = signed(service="s3").error()
    assert err.code == "InvalidSignatureException"
    assert err.message == "Credential should be scoped to correct service: 'ecr'. "
    assert signed(service="sts").run(expected_service="sts").service == "sts"


@pytest.mark.parametrize(
    ("authorization", "fragment"),
    [
        ("Basic QUtJQTpzZWNyZXQ=", "Unsupported AWS 'algorithm'"),
        ("AWS4-HMAC-SHA256", "Authorization header requires 'Credential' parameter."),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ecr/aws4_request",
            "Authorization header requires 'Signature' parameter. Authorization header requires "
            "'SignedHeaders' parameter.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID /20260101/us-east-1/ecr/aws4_request, "
            "SignedHeaders=host, Signature=00",
            "not a valid key=value pair (missing equal-sign) in Authorization header",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/ecr/aws4_request, SignedHeaders=host, "
            "Signature=00",
            "Credential must have exactly 5 slash-delimited elements",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ecr/aws4_request, "
            "SignedHeaders=x-amz-date, Signature=00",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
    ],
)
def test_malformed_authorization(authorization: str, fragment: str) -> None:
    wire = signed()
    wire.headers["Authorization"] = authorization
    err = wire.error()
    assert (err.code, err.status) == ("IncompleteSignatureException", 400)
    assert fragment in err.message


def test_missing_date() -> None:
    wire = signed()
    del wire.headers["X-Amz-Date"]
    err = wire.error()
    assert err.code == "IncompleteSignatureException"
    assert "requires existence of either a 'X-Amz-Date' or a 'Date' header" in err.message


def test_malformed_date() -> None:
    wire = signed()
    wire.headers["X-Amz-Date"] = "2026-01-01T00:00:00Z"
    err = wire.error()
    assert err.code == "IncompleteSignatureException"
    assert "ISO-8601 'basic format'" in err.message


def test_scope_date_must_match_request_date() -> None:
    wire = signed()
    wire.headers["X-Amz-Date"] = "20260102T000000Z"
    err = wire.error(now=datetime(2026, 1, 2, tzinfo=UTC))
    assert err.code == "InvalidSignatureException"
    assert err.message.startswith("Date in Credential scope does not match")


def test_bad_terminator() -> None:
    wire = signed()
    wire.headers["Authorization"] = wire.headers["Authorization"].replace(
        "aws4_request", "aws5_request"
    )
    assert wire.error().message.startswith("Credential should be scoped with a valid terminator")


def test_error_shape_as_aws_json() -> None:
    err = SigV4Error(sigv4.INVALID_SIGNATURE, MISMATCH)
    assert (err.code, err.message, err.status) == ("InvalidSignatureException", MISMATCH, 400)
    assert SigV4Error(sigv4.MISSING_TOKEN, "x").status == 403


# -- presigned (query-string) authentication --------------------------------------------------


def presigned(
    *, url: str = "https://registry.test/?Action=GetAuthorizationToken&Version=2015-09-21"
) -> Wire:
    request = AWSRequest(method="GET", url=url)
    naive = T0.replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=naive):
        SigV4QueryAuth(Credentials(KEY_ID, SECRET), "ecr", "us-east-1", expires=300).add_auth(
            request
        )
    prepared = request.prepare()
    return Wire("GET", prepared.url, dict(prepared.headers), b"")


def test_presigned_url_verifies() -> None:
    wire = presigned()
    assert "X-Amz-Signature=" in wire.query
    assert wire.run(now=T0 + timedelta(seconds=299)) == SignedIdentity(KEY_ID, "us-east-1", "ecr")


def test_presigned_url_tampered() -> None:
    wire = presigned()
    wire.query = wire.query.replace("Action=GetAuthorizationToken", "Action=DeleteRepository")
    _assert_mismatch(wire)


def test_presigned_url_expired() -> None:
    err = presigned().error(now=T0 + timedelta(seconds=301))
    assert err.code == "InvalidSignatureException"
    assert err.message.startswith("Signature expired: 20260101T000000Z is now earlier than")


def test_presigned_url_not_yet_current() -> None:
    err = presigned().error(now=T0 - timedelta(minutes=16))
    assert err.message.startswith("Signature not yet current")


def test_presigned_and_header_together_is_refused() -> None:
    wire = presigned()
    wire.headers["Authorization"] = signed().headers["Authorization"]
    assert wire.error().code == "IncompleteSignatureException"


def test_presigned_missing_parameters() -> None:
    wire = presigned()
    wire.query = "&".join(p for p in wire.query.split("&") if not p.startswith("X-Amz-Credential"))
    err = wire.error()
    assert err.code == "IncompleteSignatureException"
    assert "X-Amz-Credential" in err.message


def test_the_two_steps_decide_as_verify_does() -> None:
    """`signed_request` then `check` (the ECR door's path with a remembered key) is `verify`:
    the same identity for the right secret, the same refusals for a wrong or missing one."""
    from cargobay.iam.sigv4 import check, signed_request

    wire = signed(region="eu-west-3")
    prepared = signed_request(wire.method, wire.path, wire.query, wire.headers, wire.body, now=T0)
    assert prepared.access_key_id == KEY_ID
    assert check(prepared, SECRET) == wire.run() == SignedIdentity(KEY_ID, "eu-west-3", "ecr")
    with pytest.raises(SigV4Error) as wrong:
        check(prepared, SECRET[:-1] + "x")
    assert (wrong.value.code, wrong.value.message) == ("InvalidSignatureException", MISMATCH)
    with pytest.raises(SigV4Error) as missing:
        check(prepared, None)
    assert missing.value.code == "UnrecognizedClientException"
    # Refusals before the secret is needed come from the first step, as from `verify`.
    with pytest.raises(SigV4Error) as skewed:
        signed_request(
            wire.method, wire.path, wire.query, wire.headers, wire.body, now=T0 + timedelta(hours=1)
        )
    assert skewed.value.code == wire.error(now=T0 + timedelta(hours=1)).code
