"""AWS error shapes for the ECR API: `{"__type": "<Exception>", "message": "..."}`.

Registry errors raised by the shared services are translated here, in one place, to the
exception names the botocore `ecr` model declares.
"""

from __future__ import annotations

from typing import Any

from cargobay.oci import errors as oci


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
AccessDenied = _named("AccessDeniedException")
RepositoryNotFound = _named("RepositoryNotFoundException")
RepositoryAlreadyExists = _named("RepositoryAlreadyExistsException")
RepositoryNotEmpty = _named("RepositoryNotEmptyException")
RepositoryPolicyNotFound = _named("RepositoryPolicyNotFoundException")
RegistryPolicyNotFound = _named("RegistryPolicyNotFoundException")
LifecyclePolicyNotFound = _named("LifecyclePolicyNotFoundException")
LifecyclePolicyPreviewNotFound = _named("LifecyclePolicyPreviewNotFoundException")
LifecyclePolicyPreviewInProgress = _named("LifecyclePolicyPreviewInProgressException")
ImageNotFound = _named("ImageNotFoundException")
ImageAlreadyExists = _named("ImageAlreadyExistsException")
ImageTagAlreadyExists = _named("ImageTagAlreadyExistsException")
ImageDigestDoesNotMatch = _named("ImageDigestDoesNotMatchException")
LayersNotFound = _named("LayersNotFoundException")
ReferencedImagesNotFound = _named("ReferencedImagesNotFoundException")
UploadNotFound = _named("UploadNotFoundException")
InvalidLayer = _named("InvalidLayerException")
InvalidLayerPart = _named("InvalidLayerPartException")
LayerAlreadyExists = _named("LayerAlreadyExistsException")
EmptyUpload = _named("EmptyUploadException")
InvalidTagParameter = _named("InvalidTagParameterException")
TooManyTags = _named("TooManyTagsException")
LimitExceeded = _named("LimitExceededException")
UnknownOperation = _named("UnknownOperationException")
Serialization = _named("SerializationException")
Server = _named("ServerException", 500)


def from_registry(
    error: oci.RegistryError, repository: str = "", registry_id: str = ""
) -> EcrError:
    """The ECR exception for a registry error raised by a shared service."""
    where = f"in the repository with name '{repository}' in registry with id '{registry_id}'"
    match error:
        case oci.NameUnknown():
            return RepositoryNotFound(
                f"The repository with name '{repository}' does not exist "
                f"in the registry with id '{registry_id}'"
            )
        case oci.NameInvalid():
            return InvalidParameter(
                f"Invalid parameter at 'repositoryName' failed to satisfy "
                f"constraint: '{error.message}'"
            )
        case oci.TagImmutable():
            return ImageTagAlreadyExists(error.message)
        case oci.ManifestBlobUnknown():
            digest = (error.detail or {}).get("digest", "")
            return LayersNotFound(
                f"Layers with digests '[{digest}]' required for pushing image "
                f"into repository with name '{repository}' in registry with id "
                f"'{registry_id}' do not exist"
            )
        case oci.ManifestUnknown():
            return ReferencedImagesNotFound(f"{error.message} {where}")
        case oci.PayloadTooLarge():
            return InvalidParameter(error.message)
        case oci.Denied():
            return AccessDenied(error.message)
        case oci.BlobUploadUnknown():
            return UploadNotFound(f"The upload does not exist {where}")
        case oci.DigestInvalid() | oci.Unsupported() | oci.ManifestInvalid() | oci.TagInvalid():
            return InvalidParameter(error.message)
    return Server(error.message)
