"""Every `/v2/` route with generated methods, names, references, digests, query strings,
headers and bodies; and manifests built from hostile JSON. Each answer: no 5xx, and a 4xx
carries the distribution-spec error body."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.target import FUZZ, REPO, FuzzTarget, assert_oci_answer

MANIFEST_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json",
]
LIVE = "<live upload>"  # replaced by a fresh upload session's id
SEEDED = "<seeded>"  # replaced by the seeded manifest's or a blob's digest

hostile_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40
) | st.sampled_from(
    ["", "..", "%00", "\x00", "a" * 300, "²", "٣", "\n", "a\n", "*", "${aws:username}", "é"]
)
names = st.sampled_from([REPO, "fuzz/none", "a", "A", "a__b", "a/" * 40 + "a"]) | hostile_text
hex64 = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
digests = (
    st.just(SEEDED)
    | hex64.map(lambda h: f"sha256:{h}")
    | hex64.map(lambda h: f"sha512:{h}")
    | st.sampled_from(["sha256:xyz", "md5:" + "0" * 32, "sha256:", ":", "SHA256:" + "0" * 64])
    | hostile_text
)
references = st.sampled_from(["latest", "v1", "-bad", "x" * 129]) | digests | hostile_text
numbers = st.integers(min_value=-(2**70), max_value=2**70).map(str) | st.sampled_from(
    ["", "²", "9" * 5000, "1e3", "0x10", " 5", "5 "]
)
queries = st.dictionaries(
    st.sampled_from(["n", "last", "digest", "mount", "from", "artifactType"]),
    numbers | hostile_text | digests,
    max_size=4,
)
ranges = st.sampled_from(
    ["bytes=0-0", "bytes=-0", "bytes=-1", "bytes=5-2", "items=0-1", "bytes=0-1,3-4", "bytes="]
) | st.builds(lambda a, b: f"bytes={a}-{b}", numbers, numbers)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Range": ranges,
        "Content-Range": ranges | st.builds(lambda a, b: f"{a}-{b}", numbers, numbers),
        "Content-Type": st.sampled_from(MANIFEST_TYPES) | hostile_text,
        "Accept": st.sampled_from([*MANIFEST_TYPES, "*/*"]) | hostile_text,
    },
).map(lambda h: {k: v for k, v in h.items() if _header_safe(v)})
bodies = st.binary(max_size=512) | st.sampled_from([b"", b"{}", b"[]", b"null", b"[" * 5000])


def _header_safe(value: str) -> bool:
    return value.isprintable() and value.isascii() and value == value.strip()


ROUTES = {
    "base": (["GET", "HEAD"], "/v2/"),
    "catalog": (["GET"], "/v2/_catalog"),
    "manifest": (["GET", "HEAD", "PUT", "DELETE"], "/v2/{name}/manifests/{ref}"),
    "blob": (["GET", "HEAD", "DELETE"], "/v2/{name}/blobs/{digest}"),
    "uploads": (["POST"], "/v2/{name}/blobs/uploads/"),
    "upload": (["GET", "PATCH", "PUT", "DELETE"], "/v2/{name}/blobs/uploads/{upload}"),
    "tags": (["GET"], "/v2/{name}/tags/list"),
    "referrers": (["GET"], "/v2/{name}/referrers/{digest}"),
}


@st.composite
def v2_requests(draw: st.DrawFn) -> dict[str, Any]:
    route = draw(st.sampled_from(sorted(ROUTES)))
    allowed, template = ROUTES[route]
    method = draw(st.sampled_from(allowed) | st.sampled_from(["OPTIONS", "TRACE", "PATCH"]))
    return {
        "method": method,
        "template": template,
        "name": draw(names),
        "ref": draw(references),
        "digest": draw(digests),
        "upload": draw(st.just(LIVE) | st.uuids().map(str) | hostile_text),
        "query": draw(queries),
        "headers": draw(headers),
        "body": draw(bodies),
    }


def _segment(value: str, keep_slash: bool = False) -> str:
    """Percent-encoded, with `.`/`..` segments encoded too: clients resolve those before
    sending, which would take the request out of `/v2/`."""
    parts = value.split("/") if keep_slash else [value]
    encoded = [quote(p, safe="") if p not in (".", "..") else p.replace(".", "%2E") for p in parts]
    return "/".join(encoded) or "%20"


def _send(fuzz: FuzzTarget, case: dict[str, Any]):
    digest = case["digest"]
    if digest == SEEDED:
        digest = fuzz.blob_digests[0]
    ref = fuzz.manifest_digest if case["ref"] == SEEDED else case["ref"]
    upload = case["upload"]
    if upload == LIVE:
        location = fuzz.oci.start_upload(REPO)
        upload = location.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    path = case["template"].format(
        name=_segment(case["name"], keep_slash=True),
        ref=_segment(ref),
        digest=_segment(digest),
        upload=_segment(upload),
    )
    query = urlencode(case["query"])
    url = fuzz.url + path + (f"?{query}" if query else "")
    return fuzz.oci.session.request(
        case["method"],
        url,
        headers=case["headers"],
        data=case["body"] if case["method"] not in ("GET", "HEAD") else None,
        timeout=60,
        allow_redirects=False,
    )


@settings(FUZZ, max_examples=150)
@given(case=v2_requests())
def test_v2_routes(fuzz: FuzzTarget, case: dict[str, Any]) -> None:
    assert_oci_answer(_send(fuzz, case))


# -- manifests --------------------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def descriptors(draw: st.DrawFn, known: list[str]) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "mediaType": draw(st.sampled_from(MANIFEST_TYPES) | hostile_text),
        "digest": draw(st.sampled_from(known) | digests),
        "size": draw(
            st.integers(min_value=-(2**70), max_value=2**70)
            | st.sampled_from([0, 1024, 2**63 - 1, 2**63, 1.5, "10", None, True])
        ),
    }
    extra = draw(st.dictionaries(st.sampled_from(["urls", "annotations", "platform"]), json_values))
    return {**descriptor, **extra}


@st.composite
def manifests(draw: st.DrawFn, known: list[str]) -> bytes:
    body: dict[str, Any] = {
        "schemaVersion": draw(st.sampled_from([2, 2.0, "2", 1, -1, 2**70, True, None])),
        "mediaType": draw(st.sampled_from(MANIFEST_TYPES) | hostile_text),
    }
    if draw(st.booleans()):
        body["config"] = draw(descriptors(known))
    if draw(st.booleans()):
        body["layers"] = draw(st.lists(descriptors(known), max_size=3))
    if draw(st.booleans()):
        body["manifests"] = draw(st.lists(descriptors(known), max_size=3))
    extra = draw(st.dictionaries(hostile_text, json_values, max_size=3))
    text = json.dumps({**body, **extra})
    hazard = draw(st.sampled_from(["", "nan", "inf", "surrogate", "deep", "duplicate", "truncate"]))
    if hazard == "nan":
        text = text[:-1] + ', "x": NaN}'
    elif hazard == "inf":
        text = text[:-1] + ', "x": -Infinity}'
    elif hazard == "surrogate":
        text = text[:-1] + ', "x": "\\udc00"}'
    elif hazard == "deep":
        text = text[:-1] + ', "x": ' + "[" * 3000 + "]" * 3000 + "}"
    elif hazard == "duplicate":
        text = text[:-1] + ', "schemaVersion": 3}'
    elif hazard == "truncate":
        text = text[: len(text) // 2]
    return text.encode("utf-8", "surrogatepass")


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_manifest_bodies(fuzz: FuzzTarget, data: st.DataObject) -> None:
    body = data.draw(manifests([*fuzz.blob_digests, fuzz.manifest_digest]))
    content_type = data.draw(st.none() | st.sampled_from(MANIFEST_TYPES))
    tag = data.draw(
        st.sampled_from(["fuzzed", "latest-fuzz"]) | digests.filter(lambda d: d != SEEDED)
    )
    headers = {"Content-Type": content_type} if content_type else {}
    response = fuzz.oci.put(
        f"/v2/{REPO}/manifests/{_segment(tag)}", data=body, headers=headers, timeout=60
    )
    assert_oci_answer(response)
    if response.status_code == 201:
        got = fuzz.oci.get(f"/v2/{REPO}/manifests/{response.headers['Docker-Content-Digest']}")
        assert got.status_code == 200 and got.content == body


def test_v2_still_healthy(fuzz: FuzzTarget) -> None:
    fuzz.healthy()
    assert fuzz.oci.get(f"/v2/{REPO}/manifests/latest").status_code == 200
