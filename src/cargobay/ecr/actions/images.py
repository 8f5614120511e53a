"""Image actions: list, describe, get, delete and put, over the same manifest services as the
`/v2/` door."""

from __future__ import annotations

import json
from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall, token_text, token_texts
from cargobay.oci import errors as oci
from cargobay.oci.digest import compute, parse_digest
from cargobay.oci.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
)
from cargobay.oci.names import validate_tag
from cargobay.registry.repositories import Repository

TAG_STATUS = ("TAGGED", "UNTAGGED", "ANY")


def _tag_status(payload: dict[str, Any]) -> str:
    value = (payload.get("filter") or {}).get("tagStatus", "ANY")
    if value not in TAG_STATUS:
        raise errors.InvalidParameter(
            "Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: "
            "'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'"
        )
    return value


def _image_ids(payload: dict[str, Any], key: str = "imageIds") -> list[dict[str, str]]:
    ids = payload.get(key)
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise errors.InvalidParameter(f"{key} must list 1 to 100 image identifiers")
    if not all(isinstance(i, dict) for i in ids):
        raise errors.InvalidParameter(f"{key} entries must be objects")
    return ids


def _failure(image_id: dict[str, str], code: str, reason: str) -> dict[str, Any]:
    return {"imageId": image_id, "failureCode": code, "failureReason": reason}


async def _resolve(
    call: EcrCall, repo: Repository, image_id: dict[str, str]
) -> tuple[str | None, dict[str, Any] | None]:
    """The digest an image id names, or a per-image failure entry."""
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    if not digest and not tag:
        return None, _failure(image_id, "MissingDigestAndTag", "Missing image digest and tag")
    if digest:
        try:
            parse_digest(digest)
        except oci.RegistryError:
            return None, _failure(image_id, "InvalidImageDigest", "Invalid image digest")
    if tag:
        try:
            validate_tag(tag)
        except oci.TagInvalid:
            return None, _failure(image_id, "InvalidImageTag", "Invalid image tag")
        tagged = await call.services.images.digest_for_tag(repo, tag)
        if tagged is None:
            return None, _failure(image_id, "ImageNotFound", "Requested image not found")
        if digest and tagged != digest:
            return None, _failure(
                image_id, "ImageTagDoesNotMatchDigest", "Image tag does not match digest"
            )
        return tagged, None
    found = await call.services.images.describe(repo, [digest])
    if not found:
        return None, _failure(image_id, "ImageNotFound", "Requested image not found")
    return digest, None


@action("ListImages")
async def list_images(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    limit = call.page_size(payload)
    after = call.decode_token(payload, lambda v: token_texts(v, 2))
    rows = await call.services.images.list_ids(
        repo, _tag_status(payload), tuple(after) if after else None, limit + 1
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
    repo = await call.repository(payload)
    images = call.services.images
    if payload.get("imageIds") is not None:
        digests = []
        for image_id in _image_ids(payload):
            digest, failure = await _resolve(call, repo, image_id)
            if failure is not None:
                raise errors.ImageNotFound(
                    f"The image with imageId {image_id} does not exist within the repository "
                    f"with name '{repo.name}' in the registry with id '{repo.registry_id}'"
                )
            digests.append(digest)
        rows = await images.describe(repo, digests)
        next_token = None
    else:
        limit = call.page_size(payload)
        after = call.decode_token(payload, token_text)
        rows = await images.describe(
            repo, tag_status=_tag_status(payload), after=after, limit=limit + 1
        )
        next_token = call.encode_token(rows[limit - 1].digest) if len(rows) > limit else None
        rows = rows[:limit]
    details = []
    for row in rows:
        detail: dict[str, Any] = {
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "imageDigest": row.digest,
            "imageSizeInBytes": row.image_size,
            "imagePushedAt": row.pushed_at,
            "imageManifestMediaType": row.media_type,
            "imageStatus": "ACTIVE",
        }
        if row.tags:
            detail["imageTags"] = row.tags
        if row.artifact_type:
            detail["artifactMediaType"] = row.artifact_type
        if row.last_pulled_at:
            detail["lastRecordedPullTime"] = row.last_pulled_at
        if row.subject_digest:
            detail["subjectManifestDigest"] = row.subject_digest
        details.append(detail)
    result: dict[str, Any] = {"imageDetails": details}
    if next_token:
        result["nextToken"] = next_token
    return result


@action("BatchGetImage")
async def batch_get_image(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    accepted = payload.get("acceptedMediaTypes")
    if accepted is not None and (
        not isinstance(accepted, list) or not all(isinstance(a, str) for a in accepted)
    ):
        raise errors.InvalidParameter("acceptedMediaTypes must be a list of strings")
    images, failures = [], []
    for image_id in _image_ids(payload):
        digest, failure = await _resolve(call, repo, image_id)
        if failure is not None:
            failures.append(failure)
            continue
        # acceptedMediaTypes only steers ECR's format conversion; an image it cannot convert
        # comes back as stored (the caller decides), never as a failure: the model's
        # ImageFailureCode has no code for it.
        manifest = await call.services.manifests.get(repo.registry_id, repo.name, digest)
        resolved_id = {"imageDigest": manifest.digest}
        if image_id.get("imageTag"):
            resolved_id["imageTag"] = image_id["imageTag"]
        images.append(
            {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "imageId": resolved_id,
                "imageManifest": manifest.content.decode("utf-8"),
                "imageManifestMediaType": manifest.media_type,
            }
        )
    return {"images": images, "failures": failures}


@action("BatchDeleteImage")
async def batch_delete_image(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    services = call.services
    deleted, failures = [], []
    for image_id in _image_ids(payload):
        digest, failure = await _resolve(call, repo, image_id)
        if failure is not None:
            failures.append(failure)
            continue
        assert digest is not None
        tag = image_id.get("imageTag")
        # Untag; removing an image's last tag deletes the image, as ECR does.
        untag_only = tag and not image_id.get("imageDigest")
        if untag_only and await services.images.tag_count(repo, digest) > 1:
            await services.manifests.delete(repo, tag)
            deleted.append({"imageDigest": digest, "imageTag": tag})
            continue
        parents = await services.images.parents(repo, digest)
        if parents:
            failures.append(
                _failure(
                    image_id,
                    "ImageReferencedByManifestList",
                    f"Requested image referenced by manifest list: {parents}",
                )
            )
            continue
        try:
            await services.manifests.delete(repo, digest)
        except oci.ManifestUnknown:
            failures.append(_failure(image_id, "ImageNotFound", "Requested image not found"))
            continue
        entry = {"imageDigest": digest}
        if tag:
            entry["imageTag"] = tag
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
    if media_type is None and not _declares_media_type(manifest):
        # As ECR: with no Content-Type on this door, the type must be said somewhere.
        raise errors.InvalidParameter(
            "Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
            "'imageManifestMediaType is required when the manifest has no mediaType field'"
        )
    tag, digest = payload.get("imageTag"), payload.get("imageDigest")
    payload_bytes = manifest.encode("utf-8")
    if digest is not None:
        try:
            parse_digest(digest)
        except oci.RegistryError:
            raise errors.InvalidParameter("imageDigest is not a valid digest") from None
    if tag is not None:
        try:
            validate_tag(tag)
        except oci.TagInvalid:
            raise errors.InvalidParameter(f"imageTag {tag!r} is not a valid tag") from None
        existing = await call.services.images.digest_for_tag(repo, tag)
        new_digest = compute(payload_bytes)
        if existing == new_digest:
            raise errors.ImageAlreadyExists(
                f"Image with digest '{new_digest}' and tag '{tag}' already exists in the "
                f"repository with name '{repo.name}' in registry with id '{repo.registry_id}'"
            )
    try:
        if digest is not None:
            result = await call.services.manifests.put(repo, digest, media_type, payload_bytes)
            if tag is not None:
                result = await call.services.manifests.put(repo, tag, media_type, payload_bytes)
        else:
            result = await call.services.manifests.put(
                repo, tag or compute(payload_bytes), media_type, payload_bytes
            )
    except oci.DigestInvalid as exc:
        raise errors.ImageDigestDoesNotMatch(exc.message) from None
    except oci.TagImmutable:
        raise errors.ImageTagAlreadyExists(
            f"The image tag '{tag}' already exists in the '{repo.name}' repository and cannot "
            "be overwritten because the repository is immutable."
        ) from None
    image_id = {"imageDigest": result.digest}
    if tag:
        image_id["imageTag"] = tag
    return {
        "image": {
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "imageId": image_id,
            "imageManifest": manifest,
            "imageManifestMediaType": media_type or parse_manifest(payload_bytes, None).media_type,
        }
    }
