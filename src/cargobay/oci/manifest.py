"""Manifest parsing and validation: which blobs and child manifests a manifest references.

The registry stores the exact bytes it was given; this module only reads them to decide whether
they are acceptable and what they point to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cargobay.oci.digest import parse_digest
from cargobay.oci.errors import DigestInvalid, ManifestInvalid, Unsupported

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY_JSON = "application/vnd.oci.empty.v1+json"

IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES

# Descriptor sizes are int64 (image-spec: "size ... int64"); anything larger cannot be stored.
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()

    @property
    def non_distributable(self) -> bool:
        """Foreign layers live elsewhere (their `urls`); the registry need not hold them."""
        return bool(self.urls) and (
            "nondistributable" in self.media_type or "foreign" in self.media_type
        )


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)
    # Whether the document names its own top-level mediaType (ECR's PutImage needs one when
    # the request names none), so that door need not parse it again to find out.
    declared: bool = field(default=False, compare=False)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def blob_references(self) -> list[Descriptor]:
        """Blobs the registry must hold before accepting the manifest."""
        refs = [self.config] if self.config is not None else []
        refs.extend(layer for layer in self.layers if not layer.non_distributable)
        return refs


# Media types never hold control characters (RFC 6838), and PostgreSQL text cannot hold NUL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The digest nearly every descriptor holds, valid as `parse_digest` decides: one match
# instead of its two and a `Digest` (any other form goes through `parse_digest`).
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} is not a descriptor object")
    media_type = value.get("mediaType")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}.mediaType is missing or not a string")
    if _CONTROL.search(media_type):
        raise ManifestInvalid(f"{where}.mediaType holds control characters")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}.digest is missing or not a string")
    if _SHA256.fullmatch(digest) is None:
        try:
            parse_digest(digest)
        except (DigestInvalid, Unsupported) as exc:
            raise ManifestInvalid(f"{where}.digest is invalid: {exc.message}") from None
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise ManifestInvalid(f"{where}.size is missing or not a non-negative int64")
    urls = value.get("urls") or ()
    if urls and (not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls)):
        raise ManifestInvalid(f"{where}.urls must be a list of strings")
    return Descriptor(media_type, digest, size, tuple(urls))


def _descriptor_list(value: Any, where: str) -> tuple[Descriptor, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ManifestInvalid(f"{where} must be an array")
    return tuple(_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value))


def resolve_media_type(content_type: str | None, body: dict[str, Any]) -> str:
    """Pick the manifest's media type from the request's Content-Type and its own mediaType."""
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    header = (content_type or "").split(";")[0].strip().lower()
    if header in ("", "application/json", "application/octet-stream", "text/plain"):
        header = ""
    if header and declared and header != declared:
        raise ManifestInvalid(
            f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}"
        )
    media_type = header or declared
    if not media_type:
        # OCI allows mediaType to be omitted; infer it from the document's shape.
        media_type = OCI_INDEX if "manifests" in body else OCI_MANIFEST
    if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise ManifestInvalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if media_type not in MANIFEST_TYPES:
        raise ManifestInvalid(f"unsupported manifest media type {media_type!r}")
    return media_type


def _reject_constant(name: str) -> Any:
    raise ManifestInvalid(f"manifest is not valid JSON: {name} is not a JSON value")


# One decoder for every manifest: `json.loads` with an argument builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _load_json(payload: bytes) -> Any:
    """Strict JSON (RFC 8259): no NaN/Infinity, no lone surrogates; bounded nesting."""
    try:
        # What `json.loads` does with bytes: UTF-8, -16 or -32, detected as RFC 8259 says.
        body = _DECODER.decode(payload.decode(json.detect_encoding(payload), "surrogatepass"))
    except RecursionError:
        raise ManifestInvalid("manifest is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from None
    if b"\\u" not in payload and b"\x00" not in payload:
        # Only a "\u" escape decodes to a lone surrogate (a UTF-8 document that holds one
        # does not decode; a UTF-16 or -32 one holds NULs), so most documents skip the check.
        return body
    try:  # "\ud800" escapes decode to lone surrogates, which are not Unicode text
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestInvalid("manifest holds an unpaired UTF-16 surrogate escape") from None
    except RecursionError:  # pragma: no cover - loads already bounds the depth
        raise ManifestInvalid("manifest is nested too deeply") from None
    return body


def parse_manifest(payload: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a manifest's structure and return what it references (the size limit is the
    caller's: `ManifestService.put_image` checks the configured one)."""
    body = _load_json(payload)
    if not isinstance(body, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    version = body.get("schemaVersion")
    if type(version) is not int or version != 2:  # 2.0 and true are not the integer 2
        raise ManifestInvalid("schemaVersion must be 2")
    media_type = resolve_media_type(content_type, body)
    declared = body.get("mediaType") is not None  # a string: `resolve_media_type` checked

    artifact_type = body.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    if artifact_type is not None and _CONTROL.search(artifact_type):
        raise ManifestInvalid("artifactType holds control characters")
    annotations = body.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise ManifestInvalid("annotations must be a map of strings")
    subject = _descriptor(body["subject"], "subject") if body.get("subject") is not None else None

    if media_type in INDEX_TYPES:
        if "manifests" not in body:
            raise ManifestInvalid("an index must have a manifests array")
        if "config" in body or "layers" in body:
            raise ManifestInvalid("an index cannot have config or layers")
        manifests = _descriptor_list(body.get("manifests"), "manifests")
        return ParsedManifest(
            media_type, None, (), manifests, subject, artifact_type, annotations, declared
        )

    if "config" not in body:
        raise ManifestInvalid("an image manifest must have a config descriptor")
    config = _descriptor(body["config"], "config")
    if "layers" not in body and media_type == DOCKER_MANIFEST:
        raise ManifestInvalid("a Docker manifest must have a layers array")
    layers = _descriptor_list(body.get("layers", []), "layers")
    if artifact_type is None:
        # The referrers API reports the config media type when artifactType is absent.
        artifact_type = config.media_type
    return ParsedManifest(
        media_type, config, layers, (), subject, artifact_type, annotations, declared
    )


def accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether a client's Accept header admits a manifest of `media_type`.

    A client that names no manifest type at all (or a wildcard) gets what is stored; one that
    lists manifest types gets only one of those.
    """
    if not accept_header:
        return True
    offered = {part.split(";")[0].strip().lower() for part in accept_header.split(",")}
    if media_type in offered or "*/*" in offered or "application/*" in offered:
        return True
    return not (offered & (MANIFEST_TYPES | {DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED}))
