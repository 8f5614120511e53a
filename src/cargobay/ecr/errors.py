"""AWS error shapes for the ECR API: `{"__type": "<Exception>", "message": "..."}`.

Domain errors raised by the services are translated here, in one table (ECR_ERRORS), to the
exception names the botocore `ecr` model declares; the constructors below are for what the
door itself finds wrong with a request.
"""

from __future__ import annotations

import logging
from typing import Any

from cargobay import errors as e

log = logging.getLogger("cargobay.ecr")


class EcrError(Exception):
    """An error the ECR API reports by name."""

    def __init__(self, code: str, message: str, status: int = 400, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message, **self.fields}


def _named(code: str, status: int = 400):
    def make(message: str, **fields: Any) -> EcrError:
        return EcrError(code, message, status, **fields)

    return make


InvalidParameter = _named("InvalidParameterException")
Validation = _named("ValidationException")
InvalidLayer = _named("InvalidLayerException")
InvalidLayerPart = _named("InvalidLayerPartException")
InvalidTagParameter = _named("InvalidTagParameterException")
TooManyTags = _named("TooManyTagsException")
UnknownOperation = _named("UnknownOperationException")
Serialization = _named("SerializationException")
Server = _named("ServerException", 500)


# Every domain error, as the ECR API names it (botocore's `ecr` model lists these shapes).
ECR_ERRORS: dict[type[e.DomainError], str] = {
    e.NotFound: "InvalidParameterException",
    e.AlreadyExists: "InvalidParameterException",
    e.Conflict: "InvalidParameterException",
    e.InvalidParameter: "InvalidParameterException",
    e.LimitExceeded: "LimitExceededException",
    e.AccessDenied: "AccessDeniedException",
    e.Unauthenticated: "UnrecognizedClientException",
    e.TooManyRequests: "ThrottlingException",
    e.Unsupported: "InvalidParameterException",
    e.RepositoryNotFound: "RepositoryNotFoundException",
    e.RepositoryAlreadyExists: "RepositoryAlreadyExistsException",
    e.RepositoryNotEmpty: "RepositoryNotEmptyException",
    e.RepositoryPolicyNotFound: "RepositoryPolicyNotFoundException",
    e.RegistryPolicyNotFound: "RegistryPolicyNotFoundException",
    e.LifecyclePolicyNotFound: "LifecyclePolicyNotFoundException",
    e.LifecyclePolicyPreviewNotFound: "LifecyclePolicyPreviewNotFoundException",
    e.LifecyclePolicyPreviewInProgress: "LifecyclePolicyPreviewInProgressException",
    e.TooManyTags: "TooManyTagsException",
    e.ImageNotFound: "ImageNotFoundException",
    e.ImageAlreadyExists: "ImageAlreadyExistsException",
    e.ImageTagAlreadyExists: "ImageTagAlreadyExistsException",
    e.ImageDigestDoesNotMatch: "ImageDigestDoesNotMatchException",
    # BatchDeleteImage reports it per image (ImageReferencedByManifestList); as an
    # exception the model has nothing closer than InvalidParameter.
    e.ImageReferencedByManifestList: "InvalidParameterException",
    e.ImageTagDoesNotMatchDigest: "InvalidParameterException",
    e.MissingDigestAndTag: "InvalidParameterException",
    e.LayersNotFound: "LayersNotFoundException",
    e.ReferencedImagesNotFound: "ReferencedImagesNotFoundException",
    e.ManifestInvalid: "InvalidParameterException",
    e.PayloadTooLarge: "InvalidParameterException",
    e.NameInvalid: "InvalidParameterException",
    e.TagInvalid: "InvalidParameterException",
    e.DigestInvalid: "InvalidParameterException",
    e.DigestUnsupported: "InvalidParameterException",
    e.PaginationInvalid: "InvalidParameterException",
    e.TransferCodingUnsupported: "InvalidParameterException",
    e.BlobUnknown: "LayersNotFoundException",
    e.UploadNotFound: "UploadNotFoundException",
    e.UploadInvalid: "InvalidLayerPartException",
    e.RangeInvalid: "InvalidLayerPartException",
    e.SizeInvalid: "InvalidLayerPartException",
    e.LayerDigestMismatch: "InvalidLayerException",
    e.EmptyUpload: "EmptyUploadException",
    e.LayerAlreadyExists: "LayerAlreadyExistsException",
    e.KmsKeyUnavailable: "KmsException",
    e.KmsKeyInvalid: "KmsException",
    e.KmsAccessDenied: "KmsException",
    e.UserNotFound: "InvalidParameterException",
    e.UserAlreadyExists: "InvalidParameterException",
    e.DeleteConflict: "InvalidParameterException",
    e.TemplateAlreadyExists: "TemplateAlreadyExistsException",
    e.TemplateNotFound: "TemplateNotFoundException",
    e.ReplicationBackfillNotFound: "ReplicationBackfillNotFoundException",
    e.ReplicationBackfillInProgress: "ReplicationBackfillInProgressException",
    e.ReplicationBackfillInvalidStatus: "ReplicationBackfillInvalidStatusException",
    e.PullThroughCacheRuleNotFound: "PullThroughCacheRuleNotFoundException",
    e.PullThroughCacheRuleAlreadyExists: "PullThroughCacheRuleAlreadyExistsException",
    e.UnsupportedUpstreamRegistry: "UnsupportedUpstreamRegistryException",
    e.SecretNotFound: "SecretNotFoundException",
    e.UnableToAccessSecret: "UnableToAccessSecretException",
    e.UnableToDecryptSecretValue: "UnableToDecryptSecretValueException",
    e.UpstreamFailed: "ImageNotFoundException",
    e.CacheRepositoryPush: "InvalidParameterException",
    e.ScanNotFound: "ScanNotFoundException",
    e.UnsupportedImageType: "UnsupportedImageTypeException",
    e.ScanQuotaExceeded: "LimitExceededException",
    e.ScanningConfigurationInvalid: "ValidationException",
    e.ImageArchived: "ImageArchivedException",
    e.LayerArchived: "LayerInaccessibleException",
    e.ImageStorageClassUpdateNotSupported: "ImageStorageClassUpdateNotSupportedException",
    # pull-time update exclusions
    e.ExclusionAlreadyExists: "ExclusionAlreadyExistsException",
    e.ExclusionNotFound: "ExclusionNotFoundException",
    e.SigningConfigurationNotFound: "SigningConfigurationNotFoundException",
}


def from_domain(error: e.DomainError) -> EcrError:
    """The ECR exception for a domain error; its exact class must be in ECR_ERRORS."""
    code = ECR_ERRORS.get(type(error))
    if code is None:
        log.error("no ECR mapping for %s: answering 500", type(error).__name__)
        return Server("internal error")
    fields: dict[str, Any] = {}
    if code == "KmsException" and isinstance(error.detail, dict) and "kmsError" in error.detail:
        fields["kmsError"] = error.detail["kmsError"]  # the model's KmsException.kmsError
    return EcrError(code, error.message, **fields)


# Per-image failures of the batch image actions, by domain error (the model's
# ImageFailureCode enum); anything else is reported as ImageNotFound.
IMAGE_FAILURES: dict[type[e.DomainError], tuple[str, str]] = {
    e.MissingDigestAndTag: ("MissingDigestAndTag", "Missing image digest and tag"),
    e.DigestInvalid: ("InvalidImageDigest", "Invalid image digest"),
    e.DigestUnsupported: ("InvalidImageDigest", "Invalid image digest"),
    e.TagInvalid: ("InvalidImageTag", "Invalid image tag"),
    e.ImageNotFound: ("ImageNotFound", "Requested image not found"),
    e.ImageTagDoesNotMatchDigest: (
        "ImageTagDoesNotMatchDigest",
        "Image tag does not match digest",
    ),
    e.ImageReferencedByManifestList: ("ImageReferencedByManifestList", ""),
    e.UpstreamFailed: ("UpstreamUnavailable", ""),
    e.ImageArchived: ("ImageInaccessible", ""),
}
# A pull-through import's failure by the upstream error behind it (`UpstreamFailed.detail`).
UPSTREAM_FAILURES = {
    "Unauthorized": "UpstreamAccessDenied",
    "RateLimited": "UpstreamTooManyRequests",
    "NotFound": "ImageNotFound",
}


def image_failure(image_id: dict[str, Any], error: e.DomainError) -> dict[str, Any]:
    code, reason = IMAGE_FAILURES.get(type(error), ("ImageNotFound", "Requested image not found"))
    if isinstance(error, e.UpstreamFailed) and isinstance(error.detail, dict):
        code = UPSTREAM_FAILURES.get(error.detail.get("failure", ""), code)
    return {"imageId": image_id, "failureCode": code, "failureReason": reason or error.message}
