"""Raw-HTTP helpers for the protocol tests: a thin `/v2/` client over `requests`, content
builders for blobs and manifests, and the one assertion every OCI error response must pass."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

EMPTY_JSON = b"{}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def unique_repo(prefix: str = "proto") -> str:
    """A repository name no other test uses."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    """The status, and the OCI error body `{"errors": [{"code", "message", ...}]}` naming code."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), body
    assert body["errors"], body
    for entry in body["errors"]:
        assert isinstance(entry.get("code"), str) and entry["code"], body
        assert isinstance(entry.get("message"), str) and entry["message"], body
    assert code in [entry["code"] for entry in body["errors"]], body
    return body


def follow_blob_redirect(
    answer: requests.Response, headers: dict[str, str] | None = None, **kwargs
) -> requests.Response:
    """The response with a blob's bytes, for the registry's `answer` to a blob GET: the answer
    itself, or for a 307 (object storage) its presigned Location, fetched as clients do: with
    no registry credentials and no registry Host header, and with the same Range, if any."""
    if answer.status_code != 307:
        return answer
    location = answer.headers["Location"]
    assert urlsplit(location).scheme in ("http", "https"), location
    answer.close()
    wanted = {k: v for k, v in (headers or {}).items() if k.lower() == "range"}
    kwargs.setdefault("timeout", 120)
    return requests.get(location, headers=wanted, **kwargs)


def stream(data: bytes, piece: int = 64 * 1024) -> Iterator[bytes]:
    """A generator body, so requests sends it with chunked transfer encoding."""
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


@dataclass
class PushedImage:
    repo: str
    manifest: bytes
    digest: str
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.manifest),
            **extra,
        }


class Client:
    """`/v2/` over one authenticated requests session."""

    def __init__(self, server, session: requests.Session | None = None) -> None:
        self.server = server
        self.base = server.url
        self.session = session or server.session()

    def url(self, path: str) -> str:
        """An absolute URL for a `/v2/...` path or a (relative or absolute) Location."""
        return urljoin(self.base + "/", path)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 120)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs) -> requests.Response:
        return self.request("HEAD", path, **kwargs)

    def put(self, path: str, **kwargs) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    # -- blobs ----------------------------------------------------------------------------

    def push_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        """A monolithic `POST ?digest=` upload; returns the digest."""
        digest = digest or sha256(data)
        response = self.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, (response.status_code, response.text)
        assert response.headers["Docker-Content-Digest"] == digest
        return digest

    def start_upload(self, repo: str) -> str:
        """POST an upload session; returns its Location."""
        response = self.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
        assert response.status_code == 202, (response.status_code, response.text)
        return response.headers["Location"]

    def get_blob(
        self, repo: str, digest: str, headers: dict[str, str] | None = None, **kwargs
    ) -> tuple[requests.Response, requests.Response]:
        """GET a blob as clients do: (the registry's answer, the response with the bytes). They
        are one response unless the registry redirected (307, object storage) to a presigned
        URL, which `follow_blob_redirect` then fetches."""
        answer = self.get(
            f"/v2/{repo}/blobs/{digest}", headers=headers, allow_redirects=False, **kwargs
        )
        return answer, follow_blob_redirect(answer, headers, **kwargs)

    def pull_blob(self, repo: str, digest: str) -> bytes:
        """GET a blob as clients do: the registry answers with the bytes, or (object storage)
        with a 307 to a presigned URL that needs no registry credentials."""
        answer, response = self.get_blob(repo, digest)
        assert answer.status_code in (200, 307), (answer.status_code, answer.text[:300])
        assert answer.headers["Docker-Content-Digest"] == digest
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return response.content

    # -- manifests ------------------------------------------------------------------------

    def put_manifest(
        self, repo: str, reference: str, manifest: bytes, media_type: str | None
    ) -> requests.Response:
        headers = {"Content-Type": media_type} if media_type else {}
        return self.put(f"/v2/{repo}/manifests/{reference}", data=manifest, headers=headers)

    def push_manifest(
        self, repo: str, reference: str, manifest: bytes, media_type: str | None
    ) -> str:
        response = self.put_manifest(repo, reference, manifest, media_type)
        assert response.status_code == 201, (response.status_code, response.text)
        digest = response.headers["Docker-Content-Digest"]
        if not reference.startswith("sha512:"):
            assert digest == sha256(manifest)
        return digest

    def push_image(
        self,
        repo: str,
        tag: str | None = "latest",
        *,
        media_type: str = OCI_MANIFEST,
        layer_sizes: Iterable[int] = (1024,),
        config_media_type: str | None = None,
        layer_media_type: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> PushedImage:
        """Push random layers and a config, then a manifest of `media_type` for them."""
        docker = media_type == DOCKER_MANIFEST
        config_type = config_media_type or (DOCKER_CONFIG if docker else OCI_CONFIG)
        layer_type = layer_media_type or (DOCKER_LAYER if docker else OCI_LAYER)
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}
        ).encode()
        layers = [os.urandom(size) for size in layer_sizes]
        blobs = {}
        for blob in (config, *layers):
            blobs[self.push_blob(repo, blob)] = blob
        body: dict[str, object] = {"schemaVersion": 2, "mediaType": media_type}
        body["config"] = descriptor(config_type, config)
        body["layers"] = [descriptor(layer_type, layer) for layer in layers]
        body.update(extra or {})
        manifest = json.dumps(body).encode()
        digest = self.push_manifest(repo, tag or sha256(manifest), manifest, media_type)
        return PushedImage(repo, manifest, digest, media_type, blobs)

    def push_index(
        self,
        repo: str,
        tag: str | None,
        children: list[PushedImage],
        *,
        media_type: str = OCI_INDEX,
        extra: dict[str, object] | None = None,
    ) -> PushedImage:
        platforms = [("amd64", "linux"), ("arm64", "linux"), ("s390x", "linux")]
        body: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                child.descriptor(platform={"architecture": arch, "os": os_name})
                for child, (arch, os_name) in zip(children, platforms, strict=False)
            ],
        }
        body.update(extra or {})
        manifest = json.dumps(body).encode()
        digest = self.push_manifest(repo, tag or sha256(manifest), manifest, media_type)
        return PushedImage(repo, manifest, digest, media_type)

    def push_artifact(
        self,
        repo: str,
        subject: PushedImage | dict[str, object] | None,
        artifact_type: str | None,
        *,
        config_media_type: str = OCI_EMPTY,
        annotations: dict[str, str] | None = None,
        tag: str | None = None,
    ) -> tuple[PushedImage, requests.Response]:
        """An OCI 1.1 artifact: empty config (or a typed one), one layer, optional subject."""
        config = EMPTY_JSON if config_media_type == OCI_EMPTY else b'{"kind":"artifact"}'
        payload = f"artifact payload {uuid.uuid4().hex}".encode()
        self.push_blob(repo, config)
        self.push_blob(repo, payload)
        body: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        if artifact_type is not None:
            body["artifactType"] = artifact_type
        body["config"] = descriptor(config_media_type, config)
        body["layers"] = [descriptor("application/octet-stream", payload)]
        if subject is not None:
            body["subject"] = subject.descriptor() if isinstance(subject, PushedImage) else subject
        if annotations:
            body["annotations"] = annotations
        manifest = json.dumps(body).encode()
        response = self.put_manifest(repo, tag or sha256(manifest), manifest, OCI_MANIFEST)
        assert response.status_code == 201, (response.status_code, response.text)
        image = PushedImage(repo, manifest, response.headers["Docker-Content-Digest"], OCI_MANIFEST)
        return image, response
