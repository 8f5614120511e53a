"""Layer actions: the ECR API's upload and download, on the `/v2/` upload service."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import AsyncIterator
from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall
from cargobay.errors import (
    BlobUnknown,
    DigestInvalid,
    DigestUnsupported,
    EmptyUpload,
    LayerAlreadyExists,
    LayersNotFound,
    RangeInvalid,
    SizeInvalid,
)
from cargobay.oci.digest import check_digest
from cargobay.registry.blobs import BlobInfo
from cargobay.registry.ecrreads import LayerState, layer_archived
from cargobay.registry.repositories import Repository

# ECR's advertised part size for direct API uploads.
PART_SIZE = 10 * 1024 * 1024
LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOWNLOAD_URL_SECONDS = 20 * 60


async def _one_block(data: bytes) -> AsyncIterator[list[bytes]]:
    if data:
        yield [data]


@action("BatchCheckLayerAvailability")
async def batch_check_layer_availability(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    digests = payload.get("layerDigests")
    if not isinstance(digests, list) or not 1 <= len(digests) <= 100:
        raise errors.InvalidParameter("layerDigests must list 1 to 100 digests")
    layers, failures = [], []
    # The authorization's statement read every named layer's state (`registry.ecrreads`).
    states = call.read.layers if call.read is not None else None
    # Layers only archived images use are ARCHIVED (the model's LayerAvailability).
    archived = (
        {d for d, state in states.items() if state.archived}
        if states is not None
        else await call.services.archive.archived_blobs(
            repo, [d for d in digests if isinstance(d, str) and d]
        )
    )
    for digest in digests:
        if not digest:
            failures.append(
                {
                    "layerDigest": digest,
                    "failureCode": "MissingLayerDigest",
                    "failureReason": "Missing layer digest",
                }
            )
            continue
        try:
            check_digest(digest)
            info = await _stat(call, repo, digest, states)
        except (DigestInvalid, DigestUnsupported):
            failures.append(
                {
                    "layerDigest": digest,
                    "failureCode": "InvalidLayerDigest",
                    "failureReason": "Invalid layer digest",
                }
            )
            continue
        except BlobUnknown:
            layers.append({"layerDigest": digest, "layerAvailability": "UNAVAILABLE"})
            continue
        layers.append(
            {
                "layerDigest": digest,
                "layerAvailability": "ARCHIVED" if digest in archived else "AVAILABLE",
                "layerSize": info.size,
                "mediaType": LAYER_MEDIA_TYPE,
            }
        )
    return {"layers": layers, "failures": failures}


async def _stat(
    call: EcrCall, repo: Repository, digest: str, states: dict[str, LayerState] | None
) -> BlobInfo:
    """`blobs.stat`, answered from the states the authorization's statement read if it did."""
    if states is None:
        return await call.services.blobs.stat(repo, digest)
    state = states.get(digest)
    if state is None:
        raise BlobUnknown(detail={"digest": digest})
    return BlobInfo(digest, state.size)


@action("InitiateLayerUpload")
async def initiate_layer_upload(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    await call.services.repositories.check_push(repo.registry_id, repo.name)
    upload = await call.services.uploads.start(repo)
    return {"uploadId": upload.id, "partSize": PART_SIZE}


@action("UploadLayerPart")
async def upload_layer_part(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    upload_id = payload.get("uploadId")
    first, last = payload.get("partFirstByte"), payload.get("partLastByte")
    blob = payload.get("layerPartBlob")
    if not isinstance(upload_id, str):
        raise errors.InvalidParameter("uploadId is required")
    if not isinstance(first, int) or not isinstance(last, int) or first < 0 or last < first:
        raise errors.InvalidParameter("partFirstByte and partLastByte must be a valid range")
    try:
        data = base64.b64decode(blob or "", validate=True)
    except (binascii.Error, TypeError):
        raise errors.InvalidParameter("layerPartBlob is not valid base64") from None
    if len(data) != last - first + 1:
        raise errors.InvalidLayerPart(
            f"the part has {len(data)} bytes but the range {first}-{last} needs {last - first + 1}",
            registryId=repo.registry_id,
            repositoryName=repo.name,
            uploadId=upload_id,
            lastValidByteReceived=max(first - 1, 0),
        )
    uploads = call.services.uploads
    try:
        state = await uploads.append(repo, upload_id, _one_block(data), start=first, end=last)
    except (RangeInvalid, SizeInvalid) as exc:
        # InvalidLayerPartException carries where the upload stands, so the caller resumes.
        size = exc.size if exc.size is not None else (await uploads.get(repo, upload_id)).size
        raise errors.InvalidLayerPart(
            f"The part starts at byte {first} but the upload has {size} bytes",
            registryId=repo.registry_id,
            repositoryName=repo.name,
            uploadId=upload_id,
            lastValidByteReceived=max(size - 1, 0),
        ) from None
    return {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "uploadId": upload_id,
        "lastByteReceived": state.size - 1,
    }


@action("CompleteLayerUpload")
async def complete_layer_upload(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    upload_id = payload.get("uploadId")
    digests = payload.get("layerDigests")
    if not isinstance(upload_id, str):
        raise errors.InvalidParameter("uploadId is required")
    if not isinstance(digests, list) or len(digests) != 1 or not isinstance(digests[0], str):
        raise errors.InvalidParameter("layerDigests must hold exactly one digest")
    uploads = call.services.uploads
    state = await uploads.get(repo, upload_id)
    if state.size == 0:
        raise EmptyUpload(
            f"The layer upload with id '{upload_id}' does not contain any layer parts"
        )
    existed = await _layer_exists(call, repo, digests[0])
    try:
        info = await uploads.complete(repo, upload_id, digests[0], None)
    except (DigestInvalid, DigestUnsupported) as exc:
        # ECR names any digest this upload cannot be committed under an invalid layer.
        raise errors.InvalidLayer(exc.message) from None
    if existed:
        # As ECR: the (verified) upload is consumed, and the caller learns the layer was there.
        raise LayerAlreadyExists(
            f"The layer '{info.digest}' already exists in the repository with name "
            f"'{repo.name}' in registry with id '{repo.registry_id}'"
        )
    return {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "uploadId": upload_id,
        "layerDigest": info.digest,
    }


async def _layer_exists(call: EcrCall, repo: Repository, digest: str) -> bool:
    try:
        check_digest(digest)
        await call.services.blobs.stat(repo, digest)
    except (BlobUnknown, DigestInvalid, DigestUnsupported):
        return False
    return True


@action("GetDownloadUrlForLayer")
async def get_download_url_for_layer(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    digest = payload.get("layerDigest")
    if not isinstance(digest, str):
        raise errors.InvalidParameter("layerDigest is required")
    # The authorization's statement read the layer's state (`registry.ecrreads`).
    states = call.read.layers if call.read is not None else None
    try:
        check_digest(digest)
        await _stat(call, repo, digest, states)
    except (DigestInvalid, DigestUnsupported):
        raise errors.InvalidParameter(f"layerDigest {digest!r} is not a valid digest") from None
    except BlobUnknown:
        raise LayersNotFound(
            f"The layer with digest '{digest}' does not exist in the repository with name "
            f"'{repo.name}' in registry with id '{repo.registry_id}'"
        ) from None
    # LayerInaccessibleException when only archived images use the layer.
    if states is None:
        await call.services.archive.check_blob(repo, digest)
    elif states[digest].archived:
        raise layer_archived(repo, digest)
    url = await call.services.download_url(
        call.principal, repo, digest, time.time() + DOWNLOAD_URL_SECONDS, call.base_url()
    )
    return {"downloadUrl": url, "layerDigest": digest}
