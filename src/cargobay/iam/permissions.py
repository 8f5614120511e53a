"""The authorization table: for every route and operation of every door, the IAM actions it
needs and on which resource. Each door's dispatcher checks its entry before any handler runs,
through `Authorizer.require`, so a handler cannot forget a check; an operation without an
entry cannot be dispatched at all (a test proves every route and operation has one, and
docs/architecture.md's operation table is checked against this one).

Resource kinds say where the dispatcher finds the resource in the request:
- REPOSITORY: the repository the path (`/v2/<name>/...`) or `repositoryName` names;
- REPOSITORY_ARN: the repository `resourceArn` names (ECR resource tagging);
- REPOSITORIES: each of `repositoryNames`, or the registry when absent (DescribeRepositories);
- REGISTRY: the registry itself (`repository/*`);
- USER: the IAM user `UserName` names; USER_OR_SELF: the same, the caller when absent;
- USERS: the account's users (`user/`);
- SECRET: the Secrets Manager secret `SecretId` (or `Name`) names; SECRETS: all of them (`*`);
- NONE: authentication only (`GET /v2/`).
Checks that depend on more than the route (the mount source repository, a monolithic upload,
tags given at creation) stay explicit in the handler, on top of the table's.
"""

from __future__ import annotations

from dataclasses import dataclass

REPOSITORY = "repository"
REPOSITORY_ARN = "repository-arn"
REPOSITORIES = "repositories"
REGISTRY = "registry"
USER = "user"
USER_OR_SELF = "user-or-self"
USERS = "users"
SECRET = "secret"
SECRETS = "secrets"
NONE = "none"

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
TAG_RESOURCE = "ecr:TagResource"
REPLICATE_IMAGE = "ecr:ReplicateImage"
IMPORT_UPSTREAM_IMAGE = "ecr:BatchImportUpstreamImage"


@dataclass(frozen=True, slots=True)
class Permission:
    """The IAM actions a call needs (all of them) on the resource `resource` locates;
    `tags` names the parameter whose tags become `aws:RequestTag/*` and `aws:TagKeys`
    ("Tags") or only `aws:TagKeys` ("TagKeys")."""

    actions: tuple[str, ...]
    resource: str
    tags: str = ""


def _p(action: str | None, resource: str, tags: str = "") -> Permission:
    return Permission((action,) if action else (), resource, tags)


# `/v2/`: (route kind, method) as distribution.routes resolves them.
V2_ROUTES: dict[tuple[str, str], Permission] = {
    ("base", "GET"): _p(None, NONE),
    ("base", "HEAD"): _p(None, NONE),
    ("catalog", "GET"): _p(DESCRIBE_REPOSITORIES, REGISTRY),
    ("tags", "GET"): _p(LIST_IMAGES, REPOSITORY),
    ("manifest", "GET"): _p(PULL_MANIFEST, REPOSITORY),
    ("manifest", "HEAD"): _p(PULL_MANIFEST, REPOSITORY),
    ("manifest", "PUT"): _p(PUT_IMAGE, REPOSITORY),
    ("manifest", "DELETE"): _p(DELETE_IMAGE, REPOSITORY),
    ("blob", "GET"): _p(PULL_BLOB, REPOSITORY),
    ("blob", "HEAD"): _p(CHECK_BLOB, REPOSITORY),
    ("blob", "DELETE"): _p(DELETE_IMAGE, REPOSITORY),
    ("uploads", "POST"): _p(INITIATE_UPLOAD, REPOSITORY),
    ("upload", "GET"): _p(UPLOAD_PART, REPOSITORY),
    ("upload", "PATCH"): _p(UPLOAD_PART, REPOSITORY),
    ("upload", "PUT"): _p(COMPLETE_UPLOAD, REPOSITORY),
    ("upload", "DELETE"): _p(INITIATE_UPLOAD, REPOSITORY),
    ("referrers", "GET"): _p(PULL_MANIFEST, REPOSITORY),
}

# `/v2/` writes that another deployment's replication makes: what ECR asks of a replica is
# `ecr:ReplicateImage` on the destination (granted cross-account by its registry policy).
V2_REPLICATION_ROUTES: dict[tuple[str, str], Permission] = {
    route: _p(REPLICATE_IMAGE, REPOSITORY)
    for route in (
        ("manifest", "PUT"),
        ("blob", "HEAD"),
        ("uploads", "POST"),
        ("upload", "GET"),
        ("upload", "PATCH"),
        ("upload", "PUT"),
        ("upload", "DELETE"),
    )
}


_ECR_BY_RESOURCE: dict[str, tuple[str, ...]] = {
    REGISTRY: (
        "GetAuthorizationToken",
        "PutRegistryPolicy",
        "GetRegistryPolicy",
        "DeleteRegistryPolicy",
        "DescribeRegistry",
        "GetRegistryScanningConfiguration",
        "PutReplicationConfiguration",
        "CreateRepositoryCreationTemplate",
        "DescribeRepositoryCreationTemplates",
        "UpdateRepositoryCreationTemplate",
        "DeleteRepositoryCreationTemplate",
        "StartReplicationBackfill",
        "StopReplicationBackfill",
        "DescribeReplicationBackfillResults",
        "ListReplicationBackfills",
        "CreatePullThroughCacheRule",
        "DescribePullThroughCacheRules",
        "UpdatePullThroughCacheRule",
        "DeletePullThroughCacheRule",
        "ValidatePullThroughCacheRule",
        "PutRegistryScanningConfiguration",
        "GetAccountSetting",
        "PutAccountSetting",
    ),
    REPOSITORIES: ("DescribeRepositories", "BatchGetRepositoryScanningConfiguration"),
    REPOSITORY_ARN: ("TagResource", "UntagResource", "ListTagsForResource"),
    REPOSITORY: (
        "CreateRepository",
        "DeleteRepository",
        "PutImageTagMutability",
        "PutImageScanningConfiguration",
        "ListImages",
        "DescribeImages",
        "BatchGetImage",
        "BatchDeleteImage",
        "PutImage",
        "BatchCheckLayerAvailability",
        "InitiateLayerUpload",
        "UploadLayerPart",
        "CompleteLayerUpload",
        "GetDownloadUrlForLayer",
        "PutLifecyclePolicy",
        "GetLifecyclePolicy",
        "DeleteLifecyclePolicy",
        "StartLifecyclePolicyPreview",
        "GetLifecyclePolicyPreview",
        "SetRepositoryPolicy",
        "GetRepositoryPolicy",
        "DeleteRepositoryPolicy",
        "DescribeImageReplicationStatus",
        "StartImageScan",
        "DescribeImageScanFindings",
    ),
}

# ECR JSON API: operation name -> permission (each operation is its own IAM action, except
# ListImageReferrers, which ECR authorizes as `ecr:BatchGetImage`).
ECR_OPERATIONS: dict[str, Permission] = {
    **{
        operation: _p(f"ecr:{operation}", resource)
        for resource, operations in _ECR_BY_RESOURCE.items()
        for operation in operations
    },
    # archive storage class and referrers (issue 18)
    "UpdateImageStorageClass": _p("ecr:UpdateImageStorageClass", REPOSITORY),
    "ListImageReferrers": _p(PULL_MANIFEST, REPOSITORY),
}
# Pull-time update exclusions (issue 18): registry-wide settings.
ECR_OPERATIONS.update(
    {
        operation: _p(f"ecr:{operation}", REGISTRY)
        for operation in (
            "RegisterPullTimeUpdateExclusion",
            "DeregisterPullTimeUpdateExclusion",
            "ListPullTimeUpdateExclusions",
        )
    }
)

_IAM_BY_RESOURCE: dict[str, tuple[str, ...]] = {
    USER: (
        "DeleteUser",
        "PutUserPolicy",
        "GetUserPolicy",
        "ListUserPolicies",
        "DeleteUserPolicy",
        "ListUserTags",
    ),
    USER_OR_SELF: (
        "GetUser",
        "CreateAccessKey",
        "ListAccessKeys",
        "DeleteAccessKey",
        "UpdateAccessKey",
    ),
    USERS: ("ListUsers",),
}

# IAM Query API: operation name -> permission.
IAM_OPERATIONS: dict[str, Permission] = {
    **{
        operation: _p(f"iam:{operation}", resource)
        for resource, operations in _IAM_BY_RESOURCE.items()
        for operation in operations
    },
    "CreateUser": _p("iam:CreateUser", USER, tags="Tags"),
    "TagUser": _p("iam:TagUser", USER, tags="Tags"),
    "UntagUser": _p("iam:UntagUser", USER, tags="TagKeys"),
}

# A pull through a pull-through cache rule needs, besides the route's pull action, these on the
# cache repository: importing from the upstream (whenever the upstream is asked), and creating
# the repository (on its first pull). The cache service checks them when it acts.
PULL_THROUGH: dict[str, Permission] = {
    "import": _p(IMPORT_UPSTREAM_IMAGE, REPOSITORY),
    "create": _p(CREATE_REPOSITORY, REPOSITORY),
}

# Secrets Manager (AWS JSON 1.1): operation name -> permission.
SECRETS_OPERATIONS: dict[str, Permission] = {
    **{
        operation: _p(f"secretsmanager:{operation}", SECRET)
        for operation in (
            "CreateSecret",
            "GetSecretValue",
            "PutSecretValue",
            "UpdateSecret",
            "DescribeSecret",
            "DeleteSecret",
            "RestoreSecret",
            "TagResource",
            "UntagResource",
            "GetResourcePolicy",
            "PutResourcePolicy",
            "DeleteResourcePolicy",
        )
    },
    "TagResource": _p("secretsmanager:TagResource", SECRET),
    "ListSecrets": _p("secretsmanager:ListSecrets", SECRETS),
}

# KMS (AWS JSON 1.1, `TrentService.*`): operation name -> permission. The key policy of the
# key the resource names is the resource policy (`kms.authz.KmsAuthorizer`); `account`
# operations name no key and are decided on identity policies alone.
KMS_ACCOUNT = "account"
KMS_KEY = "key"  # the key KeyId names (id, ARN or alias)
KMS_CIPHERTEXT_KEY = "ciphertext-key"  # KeyId, else the key the CiphertextBlob names
KMS_TARGET_KEY = "target-key"  # the key TargetKeyId names
KMS_ALIAS_KEY = "alias-key"  # the key AliasName points to
KMS_REENCRYPT_KEYS = "source-and-destination-keys"  # From: the ciphertext's, To: DestinationKeyId

_KMS_BY_RESOURCE: dict[str, tuple[str, ...]] = {
    KMS_ACCOUNT: ("CreateKey", "ListKeys", "ListAliases"),
    KMS_KEY: (
        "DescribeKey",
        "EnableKey",
        "DisableKey",
        "EnableKeyRotation",
        "DisableKeyRotation",
        "GetKeyRotationStatus",
        "RotateKeyOnDemand",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GetKeyPolicy",
        "PutKeyPolicy",
        "TagResource",
        "UntagResource",
        "ListResourceTags",
        "Sign",
        "Verify",
        "GetPublicKey",
    ),
    KMS_CIPHERTEXT_KEY: ("Decrypt",),
    KMS_TARGET_KEY: ("CreateAlias", "UpdateAlias"),
    KMS_ALIAS_KEY: ("DeleteAlias",),
}

KMS_OPERATIONS: dict[str, Permission] = {
    **{
        operation: _p(f"kms:{operation}", resource)
        for resource, operations in _KMS_BY_RESOURCE.items()
        for operation in operations
    },
    "ReEncrypt": Permission(("kms:ReEncryptFrom", "kms:ReEncryptTo"), KMS_REENCRYPT_KEYS),
}

# The signer API (REST JSON, `/signing-profiles...`, SigV4 service `signer`): operation name ->
# permission. SIGNING_PROFILE is the profile the path's `{profileName}` names
# (`arn:aws:signer:<region>:<account>:/signing-profiles/<name>`); SIGNING_PROFILES is `*`.
SIGNING_PROFILE = "signing-profile"
SIGNING_PROFILES = "signing-profiles"
SIGNER_OPERATIONS: dict[str, Permission] = {
    "PutSigningProfile": _p("signer:PutSigningProfile", SIGNING_PROFILE, tags="tags"),
    "GetSigningProfile": _p("signer:GetSigningProfile", SIGNING_PROFILE),
    "CancelSigningProfile": _p("signer:CancelSigningProfile", SIGNING_PROFILE),
    "ListSigningProfiles": _p("signer:ListSigningProfiles", SIGNING_PROFILES),
}

# ECR managed signing (issue 18): the registry's signing configuration, and an image's status.
ECR_OPERATIONS.update(
    {
        "PutSigningConfiguration": _p("ecr:PutSigningConfiguration", REGISTRY),
        "GetSigningConfiguration": _p("ecr:GetSigningConfiguration", REGISTRY),
        "DeleteSigningConfiguration": _p("ecr:DeleteSigningConfiguration", REGISTRY),
        "DescribeImageSigningStatus": _p("ecr:DescribeImageSigningStatus", REPOSITORY),
    }
)

# KMS grants (issue 13). RetireGrant is decided by the grant itself (its retiring principal,
# its grantee when it allows RetireGrant, or the issuing account: `kms.grants.can_retire`),
# not by policies; ListRetirableGrants names no key.
KMS_GRANT = "grant"
KMS_OPERATIONS.update(
    {
        "CreateGrant": _p("kms:CreateGrant", KMS_KEY),
        "ListGrants": _p("kms:ListGrants", KMS_KEY),
        "RevokeGrant": _p("kms:RevokeGrant", KMS_KEY),
        "RetireGrant": _p("kms:RetireGrant", KMS_GRANT),
        "ListRetirableGrants": _p("kms:ListRetirableGrants", KMS_ACCOUNT),
    }
)

# ECR managed signing signs as the principal who pushed (issue 18): `signing.job` asks the
# authorizer for this action on the signing profile's ARN before signing; no door has it.
SIGN_PAYLOAD = "signer:SignPayload"
