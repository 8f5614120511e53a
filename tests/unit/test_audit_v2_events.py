"""Which `/v2/` requests the dispatcher audits, and under which names: writes always, pulls
only as pulls (recorded with `audit_pulls`), chunks and checks never."""

from __future__ import annotations

import pytest

from cargobay.audit.hooks import v2_event


@pytest.mark.parametrize(
    ("kind", "method", "query", "expected"),
    [
        ("manifest", "PUT", {}, ("PutManifest", False)),
        ("manifest", "DELETE", {}, ("DeleteManifest", False)),
        ("manifest", "GET", {}, ("GetManifest", True)),
        ("manifest", "HEAD", {}, None),
        ("blob", "GET", {}, ("GetBlob", True)),
        ("blob", "HEAD", {}, None),
        ("blob", "DELETE", {}, ("DeleteBlob", False)),
        ("upload", "PUT", {"digest": "sha256:x"}, ("CompleteBlobUpload", False)),
        ("upload", "PATCH", {}, None),
        ("upload", "GET", {}, None),
        ("uploads", "POST", {}, None),
        ("uploads", "POST", {"digest": "sha256:x"}, ("CompleteBlobUpload", False)),
        ("uploads", "POST", {"mount": "sha256:x", "from": "a"}, ("MountBlob", False)),
        ("tags", "GET", {}, None),
        ("catalog", "GET", {}, None),
        ("base", "GET", {}, None),
        ("referrers", "GET", {}, None),
    ],
)
def test_v2_events(kind: str, method: str, query: dict, expected: tuple | None) -> None:
    assert v2_event(kind, method, query) == expected
