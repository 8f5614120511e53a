"""A console visitor over plain HTTP (requests): signs in through the form as a browser would
and submits forms with the CSRF token the page carries."""

from __future__ import annotations

import re
from typing import Any

import requests

# The two-region deployment of the `regional` fixture (conftest.py).
REGION_DEFAULT, REGION_OTHER = "us-east-1", "eu-west-1"
REGION_SUFFIX = "registry.example.test"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


class Visitor:
    def __init__(self, server) -> None:
        self.server = server
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return f"{self.server.url}/console/{path.lstrip('/')}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url(path), allow_redirects=False, timeout=60, **kwargs)

    def post(self, path: str, data: dict[str, str], **kwargs: Any) -> requests.Response:
        return self.http.post(
            self.url(path), data=data, allow_redirects=False, timeout=60, **kwargs
        )

    def signin(self, key: str, secret: str, **kwargs: Any) -> requests.Response:
        form = self.get("signin")
        assert form.status_code == 200
        return self.post(
            "signin",
            {
                "csrf_token": csrf_token(form.text),
                "access_key_id": key,
                "secret_access_key": secret,
                "next": "/console/repositories",
            },
            **kwargs,
        )

    def submit(self, page: str, action: str, fields: dict[str, str]) -> requests.Response:
        """POST `fields` to `action` with the CSRF token of the form on `page`."""
        html = self.get(page).text
        return self.post(action, {"csrf_token": csrf_token(html), **fields})


def signed_in(server, key: str | None = None, secret: str | None = None) -> Visitor:
    visitor = Visitor(server)
    if key is None:
        key, secret = server.credentials
    response = visitor.signin(key, secret or "")
    assert response.status_code == 303, response.text
    return visitor
