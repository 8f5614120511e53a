"""Every console route, walked from the route table: anonymous visitors get nothing, and a
signed-in principal without permissions sees a denial (never data, never a 500)."""

from __future__ import annotations

import pytest
import requests

from cargobay.console.routes import ROUTES
from console.consolehelp import csrf_token, signed_in
from e2e.ecrhelp import allow, make_user, unique

PUBLIC = {("GET", ""), ("GET", "/"), ("GET", "/signin"), ("POST", "/signin")}
# What a principal with no permission gets on each signed-in route (query as the page takes).
DENIED = {
    ("GET", "/repositories"): ("", 403),
    ("GET", "/repository"): ("?name={repo}", 403),
    ("GET", "/image"): ("?name={repo}&digest={digest}", 403),
    ("GET", "/settings"): ("?name={repo}", 403),
    ("POST", "/settings"): ("?name={repo}", 403),
    ("GET", "/usage"): ("", 403),
    ("GET", "/usage.json"): ("", 403),
    ("GET", "/registry"): ("", 200),  # sections show their own denials
    ("POST", "/signout"): ("", 303),  # anyone signed in may sign out
    ("POST", "/region"): ("", 400),  # anyone may choose a region; this form names none
}


def test_every_route_is_listed_here() -> None:
    routes = {(method, path) for method, path, _ in ROUTES}
    assert routes == PUBLIC | set(DENIED)


@pytest.mark.parametrize(("method", "path"), sorted(set(DENIED)))
def test_anonymous_visitor_gets_nothing(console_server, pushed, method, path) -> None:
    query = DENIED[(method, path)][0].format(repo=pushed, digest="sha256:" + "0" * 64)
    response = requests.request(
        method,
        f"{console_server.url}/console{path}{query}",
        data={"action": "lifecycle-save", "lifecycle": "{}"} if method == "POST" else None,
        allow_redirects=False,
        timeout=60,
    )
    if method == "GET":
        assert response.status_code == 303
        assert response.headers["Location"].startswith("/console/signin")
    else:
        assert response.status_code == 401
    assert pushed not in response.text


def test_principal_without_permissions_is_denied_everywhere(console_server, pushed, tmp) -> None:
    admin = signed_in(console_server)
    page = admin.get(f"repository?name={pushed}").text
    digest = page.split("digest=sha256%3A", 1)[1][:64]
    key, secret = make_user(console_server, unique("nobody"), allow("ecr:ListImages"), tmp=tmp)
    visitor = signed_in(console_server, key, secret)
    token = csrf_token(visitor.get("registry").text)
    for (method, path), (query, status) in DENIED.items():
        if path == "/signout":
            continue
        url = path.lstrip("/") + query.format(repo=pushed, digest=f"sha256:{digest}")
        if method == "GET":
            response = visitor.get(url)
        else:
            response = visitor.post(
                url, {"csrf_token": token, "action": "lifecycle-save", "lifecycle": "{}"}
            )
        assert response.status_code == status, (method, path, response.text[:300])
        if status == 403:
            assert "AccessDenied" in response.text, (method, path)
        assert digest not in response.text, (method, path)
        assert ">latest<" not in response.text, (method, path)
