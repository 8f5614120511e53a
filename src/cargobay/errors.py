"""The registry's domain errors: what went wrong, in no protocol's words.

Services raise these; they carry a message and, where a door needs it, structured facts
(`detail`, the upload's size), never an HTTP status or a protocol error code. Each front door
translates them in exactly one table: `distribution.errors.OCI_ERRORS` (OCI code + status),
`ecr.errors.ECR_ERRORS` (AWS `__type` + status) and `iamapi.errors` (IAM code by category).
A test walks every concrete class below and fails if a door has no entry for it.

The categories (NotFound, AlreadyExists, ...) exist so a door that speaks coarsely (IAM) can
map by kind; the detailed doors map each concrete class.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A failure a caller can act on; `detail` is machine-readable context (a digest...)."""

    default_message = "the request failed"

    def __init__(self, message: str | None = None, detail: Any = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.detail = detail


# -- categories ---------------------------------------------------------------------------------


class NotFound(DomainError):
    default_message = "not found"


class AlreadyExists(DomainError):
    default_message = "already exists"


class Conflict(DomainError):
    """The request is valid but the current state forbids it."""

    default_message = "the resource is in a state that does not allow this"


class InvalidParameter(DomainError):
    default_message = "invalid parameter"


class LimitExceeded(DomainError):
    default_message = "a limit was exceeded"


class AccessDenied(DomainError):
    default_message = "requested access to the resource is denied"


class Unauthenticated(DomainError):
    default_message = "authentication required"


class TooManyRequests(DomainError):
    default_message = "too many requests"


class Unsupported(DomainError):
    default_message = "the operation is unsupported"


# -- repositories and policies ------------------------------------------------------------------


class RepositoryNotFound(NotFound):
    default_message = "repository name not known to registry"


class RepositoryAlreadyExists(AlreadyExists):
    default_message = "repository already exists"


class RepositoryNotEmpty(Conflict):
    default_message = "repository contains images"


class RepositoryPolicyNotFound(NotFound):
    default_message = "no repository policy is set"


class RegistryPolicyNotFound(NotFound):
    default_message = "no registry policy is set"


class LifecyclePolicyNotFound(NotFound):
    default_message = "no lifecycle policy is set"


class LifecyclePolicyPreviewNotFound(NotFound):
    default_message = "no lifecycle policy preview exists"


class LifecyclePolicyPreviewInProgress(Conflict):
    default_message = "a lifecycle policy preview is already running"


class TooManyTags(LimitExceeded):
    """Resource tags (key/value labels on a repository), not image tags."""

    default_message = "too many tags"


# -- images (manifests and their tags) ----------------------------------------------------------


class ImageNotFound(NotFound):
    default_message = "manifest unknown to registry"


class ImageAlreadyExists(AlreadyExists):
    """The same manifest is already stored under the same tag (PutImage's rule)."""

    default_message = "image already exists"


class ImageTagAlreadyExists(AlreadyExists):
    """A push that would move a tag in a repository whose tags are immutable."""

    default_message = "tag is immutable and already points to another manifest"


class ImageDigestDoesNotMatch(InvalidParameter):
    """The digest the caller named is not the digest of the manifest it sent."""

    default_message = "manifest digest does not match its content"


class ImageTagDoesNotMatchDigest(InvalidParameter):
    """An image named by both tag and digest, where the tag names another digest."""

    default_message = "image tag does not match digest"


class MissingDigestAndTag(InvalidParameter):
    """An image reference that names neither a digest nor a tag."""

    default_message = "missing image digest and tag"


class ImageReferencedByManifestList(Conflict):
    """Deleting a manifest that an image index in the same repository lists."""

    default_message = "the manifest is referenced by an image index"


class LayersNotFound(NotFound):
    """A manifest names a blob (config or layer) the repository does not hold."""

    default_message = "manifest references unknown blob"


class ReferencedImagesNotFound(NotFound):
    """An image index names a manifest the repository does not hold."""

    default_message = "manifest references an unknown manifest"


class ManifestInvalid(InvalidParameter):
    default_message = "manifest invalid"


class PayloadTooLarge(InvalidParameter):
    default_message = "payload too large"


# -- names, tags, digests ---------------------------------------------------------------------


class NameInvalid(InvalidParameter):
    default_message = "invalid repository name"


class TagInvalid(InvalidParameter):
    default_message = "invalid tag"


class DigestInvalid(InvalidParameter):
    """A digest that is malformed, or content that does not match the digest given."""

    default_message = "provided digest did not match content"


class DigestUnsupported(Unsupported):
    """A well-formed digest whose algorithm the registry does not implement."""

    default_message = "unsupported digest algorithm"


class TransferCodingUnsupported(Unsupported):
    """A request body in a transfer coding other than chunked (`gzip, chunked`): RFC 9112
    asks for 501, and storing the still-encoded bytes would corrupt the blob."""

    default_message = "transfer coding not implemented"


class PaginationInvalid(InvalidParameter):
    default_message = "invalid number of results"


# -- blobs and uploads ------------------------------------------------------------------------


class BlobUnknown(NotFound):
    default_message = "blob unknown to registry"


class UploadNotFound(NotFound):
    default_message = "blob upload unknown to registry"


class UploadInvalid(Conflict):
    """The upload cannot proceed as asked (changed concurrently, its blob collected...)."""

    default_message = "blob upload invalid"


class _UploadPosition(InvalidParameter):
    """A chunk that does not fit where the upload is; `size` is the upload's current size so a
    door can tell the client where to resume."""

    def __init__(
        self, message: str | None = None, detail: Any = None, *, size: int | None = None
    ) -> None:
        super().__init__(message, detail)
        self.size = size


class RangeInvalid(_UploadPosition):
    """A chunk that does not start where the upload ends, or the upload is busy."""

    default_message = "requested range not satisfiable"


class SizeInvalid(_UploadPosition):
    default_message = "provided length did not match content length"


class LayerDigestMismatch(DigestInvalid):
    """The uploaded bytes do not hash to the digest the caller gave when completing."""

    default_message = "provided digest did not match uploaded content"


class EmptyUpload(InvalidParameter):
    default_message = "the upload contains no data"


class LayerAlreadyExists(AlreadyExists):
    default_message = "the layer already exists"


# -- IAM users --------------------------------------------------------------------------------


class UserNotFound(NotFound):
    default_message = "the user does not exist"


class UserAlreadyExists(AlreadyExists):
    default_message = "the user already exists"


class DeleteConflict(Conflict):
    default_message = "the entity must be emptied before it can be deleted"


# -- replication and repository creation templates --------------------------------------------


class TemplateAlreadyExists(AlreadyExists):
    default_message = "a repository creation template with this prefix already exists"


class TemplateNotFound(NotFound):
    default_message = "no repository creation template has this prefix"


class ReplicationBackfillNotFound(NotFound):
    default_message = "no replication backfill has this id"


class ReplicationBackfillInProgress(Conflict):
    default_message = "a replication backfill to this destination is already in progress"


class ReplicationBackfillInvalidStatus(Conflict):
    default_message = "the replication backfill is not in a status that allows this"


# -- image scans ------------------------------------------------------------------------------


class ScanNotFound(NotFound):
    """The image exists but has never been scanned."""

    default_message = "no scan exists for the image"


class UnsupportedImageType(Unsupported):
    """An artifact (SBOM, signature...) or another manifest that is not a container image."""

    default_message = "the image type is not supported for scanning"


class ScanQuotaExceeded(LimitExceeded):
    """A second scan of one image within 24 hours (ECR's basic-scan quota)."""

    default_message = "an image can be scanned once per 24 hours"


class ScanningConfigurationInvalid(InvalidParameter):
    """A registry scanning configuration or account setting the registry does not accept."""

    default_message = "invalid scanning configuration"


# -- encryption at rest (KMS keys of repositories) ----------------------------------------------


class KmsKeyUnavailable(AccessDenied):
    """The KMS key a repository's data is encrypted under cannot be used: its state (Disabled,
    PendingDeletion, Deleted) is in `detail`, so the refusal names it."""

    default_message = "the KMS key of the repository cannot be used"


class KmsAccessDenied(AccessDenied):
    """The caller may not use the KMS key a repository would be encrypted under (ECR asks
    for `kms:DescribeKey` and `kms:CreateGrant` on it when the repository is created)."""

    default_message = "the caller is not allowed to use the KMS key"


class KmsKeyInvalid(InvalidParameter):
    """A repository's `kmsKey` names no usable key (unknown, another usage or spec)."""

    default_message = "the KMS key is not valid for encrypting a repository"


def concrete_errors() -> list[type[DomainError]]:
    """Every domain error class a service may raise (categories included: services raise
    InvalidParameter and LimitExceeded themselves), for the door-coverage test."""
    found: list[type[DomainError]] = []
    pending = list(DomainError.__subclasses__())
    while pending:
        cls = pending.pop()
        if not cls.__name__.startswith("_"):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: c.__name__)


# -- pull-through cache -------------------------------------------------------------------------


class PullThroughCacheRuleNotFound(NotFound):
    default_message = "pull through cache rule not found"


class PullThroughCacheRuleAlreadyExists(AlreadyExists):
    default_message = "a pull through cache rule with this prefix already exists"


class UnsupportedUpstreamRegistry(InvalidParameter):
    default_message = "the upstream registry is not supported"


class SecretNotFound(NotFound):
    """The rule's credential secret does not exist (or is scheduled for deletion)."""

    default_message = "the credential secret was not found"


class UnableToAccessSecret(AccessDenied):
    """The credential secret exists but is not a usable upstream credential."""

    default_message = "the credential secret cannot be used"


class UnableToDecryptSecretValue(Conflict):
    default_message = "the credential secret's value cannot be decrypted"


class UpstreamFailed(NotFound):
    """An image is not cached and its upstream could not provide it (down, rate-limited,
    refused our credentials, or does not have it); the message names the upstream failure."""

    default_message = "the upstream registry could not provide the image"


class CacheRepositoryPush(Unsupported):
    """A push into a pull-through cache repository: its images come only from the upstream."""

    default_message = "pushing into a pull through cache repository is not supported"


# -- archive storage class (issue 18) -----------------------------------------------------------


class ImageArchived(NotFound):
    """A pull (or scan) of an image in the archive storage class: restore it first. ECR answers
    such a pull 404; the message says why and what to do."""

    default_message = (
        "the image is archived and cannot be pulled; restore it with UpdateImageStorageClass "
        "(targetStorageClass STANDARD)"
    )


class LayerArchived(NotFound):
    """A pull of a blob (layer or config) that only archived images of the repository use: its
    bytes are as unpullable as the images until one is restored."""

    default_message = (
        "the layer belongs only to archived images and cannot be pulled; restore an image with "
        "UpdateImageStorageClass (targetStorageClass STANDARD)"
    )


class ImageStorageClassUpdateNotSupported(Conflict):
    """A storage class change the image's state does not allow (already in that class, or a
    manifest an image index lists, which moves with its index)."""

    default_message = "the requested image storage class update is not supported"


# -- pull-time update exclusions (issue 18) ----------------------------------------------------


class ExclusionAlreadyExists(AlreadyExists):
    default_message = "the principal is already excluded from pull time updates"


class ExclusionNotFound(NotFound):
    default_message = "the principal is not excluded from pull time updates"


# -- managed signing (issue 18) -------------------------------------------------------------------


class SigningConfigurationNotFound(NotFound):
    """The registry has no signing configuration."""

    default_message = "the registry has no signing configuration"
