"""Upstream authentication pieces: challenges, token answers, the token cache, ECR answers."""

from __future__ import annotations

import base64
import json

import pytest

from cargobay.upstream.auth import (
    Credentials,
    TokenCache,
    parse_challenge,
    token_from_answer,
)
from cargobay.upstream.ecr import AwsKeys, credentials_from_answer, signed_request
from cargobay.upstream.errors import BadResponse
from cargobay.upstream.transport import retry_after


def test_bearer_challenge() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull,push", error="invalid_token"'
    )
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scope == "repository:library/alpine:pull,push"
    assert challenge.params["error"] == "invalid_token"


def test_basic_and_empty_challenges() -> None:
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and (basic.scheme, basic.realm) == ("basic", "Registry Realm")
    assert parse_challenge("") is None
    escaped = parse_challenge('Bearer realm="a\\"b",service=plain')
    assert escaped is not None and escaped.params == {"realm": 'a"b', "service": "plain"}


def test_token_answers() -> None:
    assert token_from_answer({"token": "t", "expires_in": 300}) == ("t", 300.0)
    assert token_from_answer({"access_token": "a"}) == ("a", 60.0)
    assert token_from_answer({"token": "t", "expires_in": "soon"}) == ("t", 60.0)
    for bad in ({}, {"token": ""}, [], "x", {"token": 5}):
        with pytest.raises(ValueError):
            token_from_answer(bad)


def test_token_cache_expires() -> None:
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put("r", "s", "tok", 300)
    assert cache.get("r", "s") == "tok"
    assert cache.get("r", "other") is None and cache.get("other", "s") is None
    now[0] = 289
    assert cache.get("r", "s") == "tok"
    now[0] = 291  # within the renewal margin of expiry
    assert cache.get("r", "s") is None


def test_credentials_never_show_their_password() -> None:
    credentials = Credentials("me", "hunter2")
    assert "hunter2" not in repr(credentials)
    assert base64.b64decode(credentials.basic_header().split()[1]) == b"me:hunter2"
    assert "sekret" not in repr(AwsKeys("AKIA", "sekret"))


def test_ecr_answers() -> None:
    token = base64.b64encode(b"AWS:pw").decode()
    answer = {"authorizationData": [{"authorizationToken": token, "expiresAt": 123.0}]}
    assert credentials_from_answer(answer) == (Credentials("AWS", "pw"), 123.0)
    for bad in (
        {},
        {"authorizationData": []},
        {"authorizationData": [{"authorizationToken": "!"}]},
    ):
        with pytest.raises(BadResponse):
            credentials_from_answer(bad)


def test_ecr_request_is_sigv4_signed() -> None:
    url, headers, body = signed_request("http://127.0.0.1:1", "eu-west-1", AwsKeys("AKIA", "s"))
    assert url == "http://127.0.0.1:1/" and body == b"{}"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIA/")
    assert "/eu-west-1/ecr/aws4_request" in headers["Authorization"]
    assert headers["X-Amz-Target"].endswith(".GetAuthorizationToken")
    _, _, other = signed_request("http://h", "eu-west-1", AwsKeys("A", "s"), "210987654321")
    assert json.loads(other) == {"registryIds": ["210987654321"]}


def test_retry_after() -> None:
    assert retry_after("12") == 12.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
