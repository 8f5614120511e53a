"""Registry-level failures that only the control plane reports (the `/v2/` door never raises
them); the ECR adapter maps each to its AWS exception name."""

from __future__ import annotations

from cargobay.oci.errors import RegistryError


class RepositoryExists(RegistryError):
    code, status, default_message = "DENIED", 409, "repository already exists"


class RepositoryNotEmpty(RegistryError):
    code, status, default_message = "DENIED", 409, "repository contains images"


class PolicyNotFound(RegistryError):
    code, status, default_message = "DENIED", 404, "no policy is set"


class ImageExists(RegistryError):
    code, status, default_message = "DENIED", 409, "image already exists"


class TooManyTags(RegistryError):
    code, status, default_message = "DENIED", 400, "too many tags"
