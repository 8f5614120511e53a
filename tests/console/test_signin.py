"""Sign-in, sessions, cookies, CSRF and headers of the console, against a real server."""

from __future__ import annotations

import re

import requests

from console.consolehelp import Visitor, csrf_token, signed_in


def test_anonymous_visitor_is_sent_to_sign_in(console_server) -> None:
    response = Visitor(console_server).get("repositories?prefix=x")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/console/signin?next=")


def test_wrong_secret_is_refused_and_sets_no_session(console_server) -> None:
    key, _ = console_server.credentials
    visitor = Visitor(console_server)
    response = visitor.signin(key, "not-the-secret")
    assert response.status_code == 401
    assert "wrong" in response.text
    assert "not-the-secret" not in response.text
    assert "cargobay_console" not in visitor.http.cookies


def test_session_cookie_flags_and_headers(console_server) -> None:
    visitor = Visitor(console_server)
    response = visitor.signin(*console_server.credentials)
    assert response.status_code == 303
    cookie = next(
        c for c in response.raw.headers.getlist("Set-Cookie") if c.startswith("cargobay_console=")
    )
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/console/" in flags
    assert any(flag.startswith("max-age=") and int(flag[8:]) > 0 for flag in flags)
    assert "secure" not in flags  # plain HTTP here; Secure under TLS
    page = visitor.get("repositories")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "style-src 'self'" in csp
    assert "<script>" not in page.text and "style=" not in page.text
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline event handlers either
    script = requests.get(f"{console_server.url}/console/static/console.js", timeout=60)
    assert script.status_code == 200
    assert "javascript" in script.headers["Content-Type"]
    assert "drawUsage" in script.text
    assert console_server.credentials[1] not in page.text


def test_secure_cookie_behind_a_tls_proxy(tmp_path) -> None:
    from server import Server

    server = Server(
        tmp_path / "data", workers=1, env={"CARGOBAY_TRUSTED_PROXIES": "127.0.0.1/32"}
    ).start(timeout=120)
    try:
        visitor = Visitor(server)
        tls = {"X-Forwarded-Proto": "https"}
        form = visitor.get("signin", headers=tls)
        signin_cookie = form.raw.headers.getlist("Set-Cookie")[0]
        assert "secure" in [part.strip().lower() for part in signin_cookie.split(";")]
        key, secret = server.credentials
        # requests keeps Secure cookies for https: send the sign-in cookie back by hand.
        response = requests.post(
            visitor.url("signin"),
            data={
                "csrf_token": csrf_token(form.text),
                "access_key_id": key,
                "secret_access_key": secret,
            },
            headers={**tls, "Cookie": signin_cookie.split(";")[0]},
            allow_redirects=False,
            timeout=60,
        )
        assert response.status_code == 303
        cookie = next(
            c
            for c in response.raw.headers.getlist("Set-Cookie")
            if c.startswith("cargobay_console=")
        )
        assert "secure" in [part.strip().lower() for part in cookie.split(";")]
    finally:
        server.discard()


def test_forged_signin_without_token_is_refused(console_server) -> None:
    key, secret = console_server.credentials
    response = requests.post(
        f"{console_server.url}/console/signin",
        data={"access_key_id": key, "secret_access_key": secret},
        allow_redirects=False,
        timeout=60,
    )
    assert response.status_code == 403
    assert "cargobay_console=" not in response.headers.get("Set-Cookie", "")


def test_forged_post_is_refused_and_sign_out_ends_the_session(console_server) -> None:
    visitor = signed_in(console_server)
    forged = visitor.post("signout", {})
    assert forged.status_code == 403
    wrong = visitor.post("signout", {"csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert visitor.get("repositories").status_code == 200  # still signed in
    stolen = dict(visitor.http.cookies)
    out = visitor.submit("repositories", "signout", {})
    assert out.status_code == 303
    assert visitor.get("repositories").status_code == 303
    # The old cookie, replayed, no longer works: the session is gone server-side.
    replay = requests.get(
        f"{console_server.url}/console/repositories",
        cookies=stolen,
        allow_redirects=False,
        timeout=60,
    )
    assert replay.status_code == 303


def test_next_only_goes_to_console_paths(console_server) -> None:
    visitor = Visitor(console_server)
    form = visitor.get("signin?next=//evil.example/x")
    key, secret = console_server.credentials
    response = visitor.post(
        "signin",
        {
            "csrf_token": csrf_token(form.text),
            "access_key_id": key,
            "secret_access_key": secret,
            "next": "https://evil.example/",
        },
    )
    assert response.headers["Location"] == "/console/repositories"


def test_deactivating_the_key_ends_its_console_sessions(console_server, tmp) -> None:
    import time

    import boto3

    from e2e.ecrhelp import allow, make_user, unique

    name = unique("leaver")
    key, secret = make_user(console_server, name, allow("ecr:DescribeRepositories"), tmp=tmp)
    visitor = signed_in(console_server, key, secret)
    assert visitor.get("repositories").status_code == 200
    assert visitor.get("signin").status_code == 303  # signed in: no form again
    admin_key, admin_secret = console_server.credentials
    iam = boto3.client(
        "iam",
        endpoint_url=console_server.url,
        region_name="us-east-1",
        aws_access_key_id=admin_key,
        aws_secret_access_key=admin_secret,
    )
    iam.update_access_key(UserName=name, AccessKeyId=key, Status="Inactive")
    deadline = time.monotonic() + 120  # each worker notices the revocation within seconds
    while True:
        answers = {visitor.get("repositories").status_code for _ in range(4)}
        if answers == {303} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert answers == {303}


def test_repeated_failed_signins_are_throttled(tmp_path) -> None:
    """Ten wrong secrets for one key from one address: the next try is refused (429, with
    Retry-After) before the secret is even checked; the same key from elsewhere is not held
    back by it (nobody can lock a user out by failing on purpose)."""
    from server import Server

    server = Server(tmp_path / "data", workers=1).start(timeout=120)
    try:
        key, secret = server.credentials
        visitor = Visitor(server)
        for _ in range(10):
            assert visitor.signin(key, "wrong-secret").status_code == 401
        refused = visitor.signin(key, secret)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 300
        assert "Too many failed sign-ins" in refused.text
        assert "cargobay_console" not in visitor.http.cookies
        # Behind no trusted proxy, X-Forwarded-For changes nothing: still this address.
        spoofed = visitor.signin(key, secret, headers={"X-Forwarded-For": "198.51.100.7"})
        assert spoofed.status_code == 429
    finally:
        server.discard()
