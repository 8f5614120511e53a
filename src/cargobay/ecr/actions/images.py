"""Image actions: list, describe, get, delete and put, over the same services as the `/v2/`
door (put_image, delete_images): only the request and response shapes are ECR's here."""

from __future__ import annotations

import json
from typing import Any

from cargobay.ecr import describing, errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall, token_text, token_texts
from cargobay.ecr.describing import image_ids as _image_ids
from cargobay.ecr.describing import image_status as _image_status
from cargobay.ecr.describing import ref as _ref
from cargobay.ecr.describing import tag_status as _tag_status
from cargobay.errors import (
    DomainError,
    ImageArchived,
    ImageNotFound,
    RepositoryNotFound,
    UpstreamFailed,
)
from cargobay.oci.convert import for_accepted
from cargobay.oci.errors import ManifestInvalid
from cargobay.oci.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
)
from cargobay.registry import ecrreads
from cargobay.registry.repositories import Repository
from cargobay.scans.service import COMPLETE, ScanRecord


def scan_status(record: ScanRecord) -> dict[str, str]:
    """ECR's ImageScanStatus."""
    status = {"status": record.status}
    if record.description:
        status["description"] = record.description
    return status


def findings_summary(record: ScanRecord) -> dict[str, Any] | None:
    """ECR's ImageScanFindingsSummary of a completed scan (None otherwise)."""
    if record.status != COMPLETE:
        return None
    summary: dict[str, Any] = {"findingSeverityCounts": record.severity_counts}
    if record.completed_at is not None:
        summary["imageScanCompletedAt"] = record.completed_at
    if record.source_updated_at is not None:
        summary["vulnerabilitySourceUpdatedAt"] = record.source_updated_at
    return summary


async def resolve_image(call: EcrCall, repo: Repository, image_id: dict[str, str]) -> str:
    """The digest an image id names, or the domain error that says why it names none."""
    [digest] = await call.services.images.resolve(repo, [_ref(image_id)])
    if isinstance(digest, DomainError):
        raise digest
    return digest


@action("ListImages")
async def list_images(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    """The page comes from the statement that authorized the call when it could (it read
    the pairs with the repository, `ecr.context`), else from one of its own."""
    repo = await call.repository(payload)
    limit = call.page_size(payload)
    after = call.decode_token(payload, lambda v: token_texts(v, 2))
    tag_status, image_status = _tag_status(payload), _image_status(payload)
    read = call.read
    if read is not None and read.listed is not None and read.repository is repo:
        rows = read.listed
    else:
        rows = await call.services.images.list_ids(
            repo, tag_status, tuple(after) if after else None, limit + 1, image_status=image_status
        )
    ids = []
    for digest, tag in rows[:limit]:
        entry = {"imageDigest": digest}
        if tag is not None:
            entry["imageTag"] = tag
        ids.append(entry)
    result: dict[str, Any] = {"imageIds": ids}
    if len(rows) > limit:
        digest, tag = rows[limit - 1]
        result["nextToken"] = call.encode_token([digest, tag or ""])
    return result


@action("DescribeImages")
async def describe_images(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    """The images and everything ECR details of them come from one statement, the one that
    authorized the call when it could (`ecr.context`), else one of its own."""
    repo = await call.repository(payload)
    by_id = payload.get("imageIds") is not None
    limit = 0 if by_id else call.page_size(payload)
    after = None if by_id else call.decode_token(payload, token_text)
    query = describing.query(payload, limit, after)
    read = call.read
    if query is None:
        rows = []
    elif read is not None and read.described is not None and read.repository is repo:
        rows = read.described
    else:
        rows = await ecrreads.described(call.services.db, repo, call.principal, query)
    next_token = None
    if by_id:
        rows = describing.pick(repo, payload["imageIds"], rows)
    elif len(rows) > limit:
        next_token = call.encode_token(rows[limit - 1].digest)
        rows = rows[:limit]
    result: dict[str, Any] = {"imageDetails": describing.details(repo, rows)}
    if next_token:
        result["nextToken"] = next_token
    return result


async def _import_through_cache(call: EcrCall, payload: dict[str, Any]) -> dict[int, DomainError]:
    """In a pull-through cache repository, BatchGetImage imports what is missing, as ECR does
    (the cache checks `ecr:BatchImportUpstreamImage`, and `ecr:CreateRepository` for a new
    repository). Returns, by image id position, the upstream failures that left one missing."""
    registry_id, name = call.use_registry(payload), call.name_param(payload)
    cache = call.services.pullthrough
    if not await cache.covers(registry_id, name):
        return {}
    failed: dict[int, DomainError] = {}
    for i, image_id in enumerate(_image_ids(payload)):
        ref = _ref(image_id)
        reference = ref.tag or ref.digest
        if not reference:
            continue
        try:
            await cache.get_manifest(call.principal, registry_id, name, reference, call.context())
        except UpstreamFailed as exc:
            failed[i] = exc
        except (ImageNotFound, ImageArchived, RepositoryNotFound):
            pass  # reported by the lookup below, as for any repository
    return failed


@action("BatchGetImage")
async def batch_get_image(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    # The authorization's statement read the images already, unless a pull-through rule
    # covers the repository (the cache imports what is missing first, then they are read).
    read = call.read if call.read is not None and not call.read.cached else None
    prefetched = read.images if read is not None else None
    imported = {} if prefetched is not None else await _import_through_cache(call, payload)
    repo = await call.repository(payload)
    accepted = payload.get("acceptedMediaTypes")
    if accepted is not None and (
        not isinstance(accepted, list) or not all(isinstance(a, str) for a in accepted)
    ):
        raise errors.InvalidParameter("acceptedMediaTypes must be a list of strings")
    image_ids = _image_ids(payload)
    # All the images at once, failures per image as ECR reports them; an archived image's
    # failure is ImageInaccessible, saying why.
    wanted = [i for i in range(len(image_ids)) if i not in imported]
    refs = [_ref(image_ids[i]) for i in wanted]
    manifests_service = call.services.manifests
    if prefetched is not None:
        tagged, rows = prefetched
        found = await manifests_service.serve_batch(repo, refs, tagged, rows, call.principal.arn)
    else:
        found = await manifests_service.get_batch(repo, refs, call.principal.arn)
    manifests = dict(zip(wanted, found, strict=True))
    images, failures = [], []
    for i, image_id in enumerate(image_ids):
        manifest = imported[i] if i in imported else manifests[i]
        if isinstance(manifest, DomainError):
            failures.append(errors.image_failure(image_id, manifest))
            continue
        # acceptedMediaTypes: the stored format if accepted, else ECR's conversion between
        # Docker schema 2 and OCI (by tag only), else the image is not found in that format.
        served = for_accepted(
            manifest.content, manifest.media_type, accepted, not image_id.get("imageTag")
        )
        if served is None:
            failures.append(errors.image_failure(image_id, ImageNotFound()))
            continue
        content, media_type = served
        resolved_id = {"imageDigest": manifest.digest}
        if image_id.get("imageTag"):
            resolved_id["imageTag"] = image_id["imageTag"]
        images.append(
            {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "imageId": resolved_id,
                "imageManifest": content.decode("utf-8"),
                "imageManifestMediaType": media_type,
            }
        )
    return {"images": images, "failures": failures}


@action("BatchDeleteImage")
async def batch_delete_image(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    image_ids = _image_ids(payload)
    outcomes = await call.services.deletes.delete_images(repo, [_ref(i) for i in image_ids])
    deleted, failures = [], []
    for image_id, outcome in zip(image_ids, outcomes, strict=True):
        if outcome.error is not None:
            failures.append(errors.image_failure(image_id, outcome.error))
            continue
        assert outcome.deleted is not None
        entry = {"imageDigest": outcome.deleted.digest}
        if outcome.deleted.tag:
            entry["imageTag"] = outcome.deleted.tag
        deleted.append(entry)
    return {"imageIds": deleted, "failures": failures}


def _declares_media_type(manifest: str) -> bool:
    """Whether the manifest has a top-level `mediaType` (unparseable text is left to the
    manifest validation to refuse)."""
    try:
        body = json.loads(manifest)
    except (ValueError, RecursionError):
        return True
    return not isinstance(body, dict) or isinstance(body.get("mediaType"), str)


@action("PutImage")
async def put_image(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    read = call.read
    if read is None or read.repository is not repo or read.cached:
        # The authorization's statement said whether a pull-through rule covers the name;
        # without it (or when one does, to name the rule) the service decides.
        await call.services.repositories.check_push(repo.registry_id, repo.name)
    manifest = payload.get("imageManifest")
    if not isinstance(manifest, str) or not manifest:
        raise errors.InvalidParameter("imageManifest is required")
    media_type = payload.get("imageManifestMediaType")
    if media_type is not None and media_type not in (
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        OCI_INDEX,
    ):
        raise errors.InvalidParameter(f"unsupported imageManifestMediaType {media_type!r}")
    payload_bytes = manifest.encode("utf-8")
    parsed = None
    if media_type is None:
        # As ECR: with no Content-Type on this door, the type must be said somewhere. The
        # manifest is parsed here once, and the push takes that parse.
        try:
            parsed = parse_manifest(payload_bytes, None)
            declared = parsed.declared
        except ManifestInvalid:  # refused by the push, unless it lacks the type too
            declared = _declares_media_type(manifest)
        if not declared:
            raise errors.InvalidParameter(
                "Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
                "'imageManifestMediaType is required when the manifest has no mediaType field'"
            )
    tag, digest = payload.get("imageTag"), payload.get("imageDigest")
    if not isinstance(tag, str | None) or not isinstance(digest, str | None):
        raise errors.InvalidParameter("imageTag and imageDigest must be strings")
    result = await call.services.manifests.put_image(
        repo,
        payload_bytes,
        media_type,
        digest,
        tag,
        refuse_existing=True,
        pusher=call.principal,
        parsed=parsed,
    )
    image_id = {"imageDigest": result.digest}
    if tag:
        image_id["imageTag"] = tag
    return {
        "image": {
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "imageId": image_id,
            "imageManifest": manifest,
            "imageManifestMediaType": media_type or result.media_type,
        }
    }
