"""The one authorization decision both front doors ask before touching the registry.

Actions are the IAM action names ECR uses (`ecr:BatchGetImage`, `ecr:PutImage`, ...), so the
`/v2/` data plane and the ECR API share one vocabulary and, later, one policy engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cargobay.iam.principal import Principal
from cargobay.oci.errors import Denied

log = logging.getLogger("cargobay.authz")

PULL_MANIFEST = "ecr:BatchGetImage"
PULL_BLOB = "ecr:GetDownloadUrlForLayer"
CHECK_BLOB = "ecr:BatchCheckLayerAvailability"
INITIATE_UPLOAD = "ecr:InitiateLayerUpload"
UPLOAD_PART = "ecr:UploadLayerPart"
COMPLETE_UPLOAD = "ecr:CompleteLayerUpload"
PUT_IMAGE = "ecr:PutImage"
DELETE_IMAGE = "ecr:BatchDeleteImage"
LIST_IMAGES = "ecr:ListImages"
DESCRIBE_REPOSITORIES = "ecr:DescribeRepositories"
CREATE_REPOSITORY = "ecr:CreateRepository"


@dataclass(frozen=True, slots=True)
class Resource:
    """A repository (or, with name None, the registry) in an account and region."""

    account_id: str
    region: str
    name: str | None = None

    @property
    def arn(self) -> str:
        if self.name is None:
            return f"arn:aws:ecr:{self.region}:{self.account_id}:repository/*"
        return f"arn:aws:ecr:{self.region}:{self.account_id}:repository/{self.name}"


@dataclass(frozen=True, slots=True)
class RequestContext:
    source_ip: str = ""
    secure_transport: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class Authorizer:
    """Decides whether a principal may perform an action on a resource.

    An account's administrator may do anything in its own account; everything else is denied
    until a policy grants it (identity and resource policies arrive with the ECR control plane).
    """

    async def allowed(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: RequestContext | None = None,
    ) -> bool:
        return principal.is_admin and principal.account_id == resource.account_id

    async def require(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: RequestContext | None = None,
    ) -> None:
        if not await self.allowed(principal, action, resource, context):
            log.warning("denied %s on %s to %s", action, resource.arn, principal.arn)
            raise Denied(f"{principal.arn} is not authorized to perform {action} on {resource.arn}")
