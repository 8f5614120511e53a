"""OCI error JSON: the one place domain errors become `/v2/` responses.

`OCI_ERRORS` names, for every domain error, the distribution-spec code and HTTP status the
`/v2/` door answers with. A test proves every class in `cargobay.errors` has an entry; an error
without one is a bug and answers 500 UNKNOWN (logged), never a guess.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from cargobay import errors as e

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
log = logging.getLogger("cargobay.distribution")

OCI_ERRORS: dict[type[e.DomainError], tuple[str, int]] = {
    # categories services raise directly
    e.NotFound: ("NAME_UNKNOWN", 404),
    e.AlreadyExists: ("DENIED", 409),
    e.Conflict: ("DENIED", 409),
    e.InvalidParameter: ("DENIED", 400),
    e.LimitExceeded: ("DENIED", 400),
    e.AccessDenied: ("DENIED", 403),
    e.Unauthenticated: ("UNAUTHORIZED", 401),
    e.TooManyRequests: ("TOOMANYREQUESTS", 429),
    e.Unsupported: ("UNSUPPORTED", 405),
    # control plane (the `/v2/` door meets them only through shared services)
    e.RepositoryNotFound: ("NAME_UNKNOWN", 404),
    e.RepositoryAlreadyExists: ("DENIED", 409),
    e.RepositoryNotEmpty: ("DENIED", 409),
    e.RepositoryPolicyNotFound: ("DENIED", 404),
    e.RegistryPolicyNotFound: ("DENIED", 404),
    e.LifecyclePolicyNotFound: ("DENIED", 404),
    e.LifecyclePolicyPreviewNotFound: ("DENIED", 404),
    e.LifecyclePolicyPreviewInProgress: ("DENIED", 409),
    e.TooManyTags: ("DENIED", 400),
    # images
    e.ImageNotFound: ("MANIFEST_UNKNOWN", 404),
    e.ImageAlreadyExists: ("DENIED", 409),
    # Distribution answers a push over an existing tag of an immutable repository (its
    # tag-immutability middleware, as Harbor's and Zot's) with 400 TAG_INVALID.
    e.ImageTagAlreadyExists: ("TAG_INVALID", 400),
    e.ImageDigestDoesNotMatch: ("DIGEST_INVALID", 400),
    # Deleting a manifest an index still lists: 409 Conflict with MANIFEST_REFERENCED, as
    # GitLab's container registry (the Distribution fork with a metadata database, the one
    # that enforces this rule) answers; the distribution-spec has no code for it, and 409 tells
    # the client the delete can succeed once the index is gone. Zot refuses the same delete.
    e.ImageReferencedByManifestList: ("MANIFEST_REFERENCED", 409),
    e.ImageTagDoesNotMatchDigest: ("MANIFEST_INVALID", 400),
    e.MissingDigestAndTag: ("MANIFEST_INVALID", 400),
    e.LayersNotFound: ("MANIFEST_BLOB_UNKNOWN", 400),
    e.ReferencedImagesNotFound: ("MANIFEST_UNKNOWN", 404),
    e.ManifestInvalid: ("MANIFEST_INVALID", 400),
    e.PayloadTooLarge: ("SIZE_INVALID", 413),
    # names, tags, digests
    e.NameInvalid: ("NAME_INVALID", 400),
    e.TagInvalid: ("TAG_INVALID", 400),
    e.DigestInvalid: ("DIGEST_INVALID", 400),
    # The distribution-spec asks for 400 here (405 would say the method is not allowed).
    e.DigestUnsupported: ("UNSUPPORTED", 400),
    e.PaginationInvalid: ("PAGINATION_NUMBER_INVALID", 400),
    e.TransferCodingUnsupported: ("UNSUPPORTED", 501),
    # blobs and uploads
    e.BlobUnknown: ("BLOB_UNKNOWN", 404),
    e.UploadNotFound: ("BLOB_UPLOAD_UNKNOWN", 404),
    e.UploadInvalid: ("BLOB_UPLOAD_INVALID", 400),
    e.RangeInvalid: ("BLOB_UPLOAD_INVALID", 416),
    e.SizeInvalid: ("SIZE_INVALID", 400),
    e.LayerDigestMismatch: ("DIGEST_INVALID", 400),
    e.EmptyUpload: ("BLOB_UPLOAD_INVALID", 400),
    e.LayerAlreadyExists: ("DENIED", 409),
    # Encryption at rest: a pull under a disabled or pending-deletion key is refused, naming
    # the key's state (the DENIED-class error); a bad kmsKey comes from the ECR API.
    e.KmsKeyUnavailable: ("DENIED", 403),
    e.KmsKeyInvalid: ("DENIED", 400),
    e.KmsAccessDenied: ("DENIED", 403),
    # IAM users (not reachable from `/v2/`; mapped so the table is total)
    e.UserNotFound: ("DENIED", 404),
    e.UserAlreadyExists: ("DENIED", 409),
    e.DeleteConflict: ("DENIED", 409),
    e.TemplateAlreadyExists: ("DENIED", 409),
    e.TemplateNotFound: ("NAME_UNKNOWN", 404),
    e.ReplicationBackfillNotFound: ("NAME_UNKNOWN", 404),
    e.ReplicationBackfillInProgress: ("DENIED", 409),
    e.ReplicationBackfillInvalidStatus: ("DENIED", 409),
    # pull-through cache: an image neither cached nor obtainable from the upstream is unknown
    # (the message names the upstream failure); a push into a cache repository is refused as
    # Distribution's proxy mode refuses it.
    e.UpstreamFailed: ("MANIFEST_UNKNOWN", 404),
    e.CacheRepositoryPush: ("UNSUPPORTED", 405),
    e.PullThroughCacheRuleNotFound: ("DENIED", 404),
    e.PullThroughCacheRuleAlreadyExists: ("DENIED", 409),
    e.UnsupportedUpstreamRegistry: ("DENIED", 400),
    e.SecretNotFound: ("DENIED", 403),
    e.UnableToAccessSecret: ("DENIED", 403),
    e.UnableToDecryptSecretValue: ("DENIED", 403),
    # image scans (not reachable from `/v2/`; mapped so the table is total)
    e.ScanNotFound: ("DENIED", 404),
    e.UnsupportedImageType: ("UNSUPPORTED", 400),
    e.ScanQuotaExceeded: ("TOOMANYREQUESTS", 429),
    e.ScanningConfigurationInvalid: ("DENIED", 400),
    # archive storage class: a pull of an archived image is 404 as on ECR, and says why
    e.ImageArchived: ("MANIFEST_UNKNOWN", 404),
    e.LayerArchived: ("BLOB_UNKNOWN", 404),
    e.ImageStorageClassUpdateNotSupported: ("DENIED", 409),
    # pull-time update exclusions (not reachable from `/v2/`; mapped so the table is total)
    e.ExclusionAlreadyExists: ("DENIED", 409),
    e.ExclusionNotFound: ("DENIED", 404),
    e.SigningConfigurationNotFound: ("DENIED", 404),
}

_UNMAPPED = ("UNKNOWN", 500)


def oci_error(error: e.DomainError) -> tuple[str, int]:
    """The (code, status) of a domain error on `/v2/`; its exact class must be in the table."""
    found = OCI_ERRORS.get(type(error))
    if found is None:
        log.error("no /v2/ mapping for %s: answering 500", type(error).__name__)
        return _UNMAPPED
    return found


def error_response(
    request: web.Request,
    error: e.DomainError,
    realm: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    code, status = oci_error(error)
    entry: dict[str, object] = {"code": code, "message": error.message}
    if error.detail is not None:
        entry["detail"] = error.detail
    all_headers = {**API_VERSION_HEADER, **(headers or {})}
    if status == 401:
        all_headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    body = json.dumps({"errors": [entry]}).encode()
    all_headers["Content-Type"] = "application/json"
    # aiohttp sends no body on HEAD but keeps the Content-Length, as HTTP wants.
    return web.Response(status=status, body=body, headers=all_headers)


def internal_error(request: web.Request) -> web.Response:
    """500 UNKNOWN, for a failure that is not a domain error (already logged by the caller)."""
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "internal server error"}]})
    headers = {**API_VERSION_HEADER, "Content-Type": "application/json"}
    return web.Response(status=500, body=body.encode(), headers=headers)
