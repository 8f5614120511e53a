"""The S3 storage client's own pieces: SigV4 as botocore signs S3 (moto does not check
signatures, so this is where a signing mistake would show), addressing, credentials, XML
errors and retries (against a small local HTTP server that fails on purpose)."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.httpchecksum import Crc32Checksum

from cargobay.storage.s3 import parse_url
from cargobay.storage.s3 import transport as transport_module
from cargobay.storage.s3.client import S3Client
from cargobay.storage.s3.credentials import Credentials, credential_source, region_of
from cargobay.storage.s3.transport import (
    SIGN_BODY_BELOW,
    Signer,
    Transport,
    crc32_headers,
    encode_query,
    parse_error,
)
from s3server import MotoServer

WHEN = datetime(2026, 11, 30, 9, 30, 15, tzinfo=UTC)
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token/+=")
BOTO_CREDS = BotoCredentials(CREDS.access_key_id, CREDS.secret_access_key, CREDS.session_token)


def _botocore_headers(method: str, url: str, headers: dict[str, str], payload: str) -> str:
    request = AWSRequest(
        method=method, url=url, headers={**headers, "X-Amz-Content-SHA256": payload}
    )
    request.context["payload_signing_enabled"] = False
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        auth = S3SigV4Auth(BOTO_CREDS, "s3", "eu-west-1")
        auth.payload = lambda _request: payload  # type: ignore[method-assign]
        auth.add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize(
    ("method", "key", "query", "headers"),
    [
        ("PUT", "p/_uploads/abc/state.json", [], {"content-type": "application/octet-stream"}),
        ("GET", "a key/with+odd~chars&é", [], {"range": "bytes=0-9"}),
        ("GET", None, [("list-type", "2"), ("prefix", "p/x y"), ("encoding-type", "url")], {}),
        (
            "POST",
            "p/blobs/sha256/ab/abcd",
            [("uploads", "")],
            {"x-amz-server-side-encryption": "AES256"},
        ),
    ],
)
def test_header_signature_matches_botocore(
    method: str, key: str | None, query: list[tuple[str, str]], headers: dict[str, str]
) -> None:
    transport = Transport("bkt", "http://127.0.0.1:9000", "eu-west-1", True, lambda: CREDS, 1)
    path = transport.path(key)
    sent = {**headers, "host": transport.host}
    payload = "UNSIGNED-PAYLOAD"
    transport.signer.sign(method, path, query, sent, payload, when=WHEN)
    query_string = encode_query(query)
    url = f"{transport.origin}{path}" + (f"?{query_string}" if query else "")
    boto_headers = {
        k: v for k, v in sent.items() if k not in ("authorization", "x-amz-content-sha256")
    }
    assert sent["authorization"] == _botocore_headers(method, url, boto_headers, payload)


def test_presigned_get_matches_botocore() -> None:
    signer = Signer(lambda: CREDS, "eu-west-1")
    query = signer.presign("bkt.s3.eu-west-1.amazonaws.com", "/blobs/sha256/ab/abcd", 600, WHEN)
    request = AWSRequest(
        method="GET", url="https://bkt.s3.eu-west-1.amazonaws.com/blobs/sha256/ab/abcd"
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        S3SigV4QueryAuth(BOTO_CREDS, "s3", "eu-west-1", expires=600).add_auth(request)
    expected = dict(parse_qsl(urlsplit(request.url).query))
    assert dict(query) == expected


def test_addressing() -> None:
    def transport(bucket: str, endpoint: str | None, path_style: bool | None) -> Transport:
        return Transport(bucket, endpoint, "eu-west-1", path_style, lambda: CREDS, 1)

    moto = transport("bkt", "http://127.0.0.1:9000", None)  # an endpoint: path-style
    assert (moto.host, moto.path("k/x y")) == ("127.0.0.1:9000", "/bkt/k/x%20y")
    aws = transport("bkt", None, None)  # AWS: virtual-hosted
    assert (aws.origin, aws.path("k")) == ("https://bkt.s3.eu-west-1.amazonaws.com", "/k")
    virtual = transport("bkt", "http://minio:9000", False)
    assert (virtual.host, virtual.path(None)) == ("bkt.minio:9000", "/")
    dotted = transport("my.bucket", None, None)  # a dot breaks the TLS name: path-style
    assert (dotted.host, dotted.path("k")) == ("s3.eu-west-1.amazonaws.com", "/my.bucket/k")
    china = transport("bkt", None, None)
    china = Transport("bkt", None, "cn-north-1", None, lambda: CREDS, 1)
    assert china.host == "bkt.s3.cn-north-1.amazonaws.com.cn"


def test_credentials_and_region_order() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "ENVKEY",
        "AWS_SECRET_ACCESS_KEY": "envsecret",
        "AWS_REGION": "ap-south-1",
    }
    in_url = parse_url("s3://b?access_key_id=URLKEY&secret_access_key=urlsecret")
    assert credential_source(in_url, env)() == Credentials("URLKEY", "urlsecret")
    plain = parse_url("s3://b")
    assert credential_source(plain, env)().access_key_id == "ENVKEY"
    assert region_of(plain, env) == "ap-south-1"
    assert region_of(parse_url("s3://b?region=eu-west-3"), env) == "eu-west-3"
    assert region_of(plain, {}) == "us-east-1"
    assert "urlsecret" not in repr(credential_source(in_url, env)())


def test_error_parsing() -> None:
    body = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"
    error = parse_error(404, body)
    assert error is not None and (error.code, error.status, error.message) == (
        "NoSuchKey",
        404,
        "gone",
    )
    in_200 = parse_error(200, b"<Error><Code>InternalError</Code><Message>x</Message></Error>")
    assert in_200 is not None and in_200.code == "InternalError"
    headless = parse_error(404, b"")  # HEAD answers carry no body
    assert headless is not None and (headless.code, headless.status) == ("404", 404)
    assert parse_error(200, b"<ListBucketResult></ListBucketResult>") is None


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers from a script: (status, body) per request, in order."""

    protocol_version = "HTTP/1.1"
    script: list[tuple[int, bytes]] = []
    seen: list[str] = []
    headers_seen: list[dict[str, str]] = []

    def _answer(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = self.script.pop(0) if self.script else (200, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("Handler", (_Flaky,), {"script": [], "seen": [], "headers_seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _client(endpoint: str, extra: str = "") -> S3Client:
    config = parse_url(f"s3://bkt?endpoint={endpoint}&access_key_id=AK&secret_access_key=SK{extra}")
    return S3Client(config, 2)


def test_retries_throttling_and_5xx_then_succeeds(
    flaky: tuple[str, type[_Flaky]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "_backoff", lambda attempt: None)
    endpoint, handler = flaky
    slow_down = b"<Error><Code>SlowDown</Code><Message>Please reduce your rate</Message></Error>"
    handler.script = [(503, slow_down), (500, b""), (200, b"state")]
    assert _client(endpoint).get_bytes("k") == b"state"
    assert handler.seen == ["GET /bkt/k"] * 3


def test_gives_up_after_five_attempts_and_never_retries_a_404(
    flaky: tuple[str, type[_Flaky]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "_backoff", lambda attempt: None)
    endpoint, handler = flaky
    handler.script = [(503, b"")] * 6
    with pytest.raises(transport_module.S3Error) as info:
        _client(endpoint).delete_object("k")
    assert info.value.status == 503 and len(handler.seen) == 5
    handler.seen.clear()
    missing = b"<Error><Code>NoSuchUpload</Code><Message>no</Message></Error>"
    handler.script = [(404, missing)]
    with pytest.raises(transport_module.S3Error) as info:
        _client(endpoint).abort_multipart_upload("k", "u1")
    assert info.value.code == "NoSuchUpload"
    assert handler.seen == ["DELETE /bkt/k?uploadId=u1"]


def test_complete_multipart_error_in_a_200_is_an_error(
    flaky: tuple[str, type[_Flaky]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "_backoff", lambda attempt: None)
    endpoint, handler = flaky
    bad = b"<Error><Code>InvalidPart</Code><Message>one part is missing</Message></Error>"
    handler.script = [(200, bad)]
    with pytest.raises(transport_module.S3Error) as info:
        _client(endpoint).complete_multipart_upload("k", "u1", ['"etag1"'])
    assert info.value.code == "InvalidPart"


def test_crc32_header_is_botocore_s() -> None:
    body = [b"a" * 700_000, b"piece two", b""]
    expected = Crc32Checksum()
    for piece in body:
        expected.update(piece)
    assert crc32_headers(body) == {
        "x-amz-checksum-crc32": expected.b64digest(),
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }


def test_unsigned_bodies_carry_their_crc32_and_signed_ones_their_hash(
    flaky: tuple[str, type[_Flaky]],
) -> None:
    endpoint, handler = flaky
    big = [b"x" * SIGN_BODY_BELOW, b"tail"]
    _client(endpoint).put_object("big", big)
    _client(endpoint).put_object("small", b"state")
    _client(endpoint, "&checksum=off").put_object("plain", big)
    sent_big, sent_small, sent_plain = handler.headers_seen
    assert sent_big["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert sent_big["x-amz-checksum-crc32"] == crc32_headers(big)["x-amz-checksum-crc32"]
    assert "x-amz-checksum-crc32" in sent_big["authorization"]  # signed, so not replaceable
    assert "x-amz-checksum-crc32" not in sent_small  # its SHA-256 is signed instead
    assert sent_small["x-amz-content-sha256"] != "UNSIGNED-PAYLOAD"
    assert "x-amz-checksum-crc32" not in sent_plain
    with pytest.raises(ValueError, match="checksum must be crc32 or off"):
        parse_url("s3://bkt?checksum=md5")


def test_a_skewed_clock_is_corrected_from_the_server_date(
    flaky: tuple[str, type[_Flaky]], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = transport_module._clock
    monkeypatch.setattr(transport_module, "_clock", lambda: real() + timedelta(hours=1))
    endpoint, handler = flaky
    skewed = (
        b"<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the "
        b"request time and the current time is too large.</Message></Error>"
    )
    handler.script = [(403, skewed), (200, b"state")]
    client = _client(endpoint)
    assert client.get_bytes("k") == b"state"
    first, second = (
        datetime.strptime(h["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        for h in handler.headers_seen
    )
    now = real()
    assert abs(first - now - timedelta(hours=1)) < timedelta(minutes=5)
    assert abs(second - now) < timedelta(minutes=5)  # signed on the server's clock
    handler.script = [(403, skewed)] * 6  # a server that keeps refusing is not retried forever
    with pytest.raises(transport_module.S3Error) as info:
        client.get_bytes("k")
    assert info.value.code == "RequestTimeTooSkewed" and len(handler.seen) == 4


def test_moto_stores_the_crc32_cargobay_sent(s3_server: MotoServer) -> None:
    bucket = s3_server.create_bucket("checksums")
    client = S3Client(parse_url(s3_server.storage_url(bucket, "", with_credentials=True)), 2)
    body = [os.urandom(SIGN_BODY_BELOW), os.urandom(1000)]
    client.put_object("blob", body)
    _, headers, _ = client.transport.request(
        "HEAD", "blob", headers={"x-amz-checksum-mode": "ENABLED"}
    )
    assert headers["x-amz-checksum-crc32"] == crc32_headers(body)["x-amz-checksum-crc32"]
    assert client.get_bytes("blob") == b"".join(body)
