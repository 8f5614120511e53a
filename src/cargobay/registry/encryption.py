"""Encryption at rest as the registry services see it: which KMS key a repository uses, the
repository's `kmsKey` resolved when it is created, and manifests sealed under that key.

A repository's key is fixed at creation (ECR's encryption configuration is immutable) and
stored as the key's ARN, so the key id of every encrypted copy follows from the repository.
Failures of the KMS become domain errors here, once, for every door: a key that cannot be
used is `KmsKeyUnavailable` (its state named), a key that cannot serve is `KmsKeyInvalid`.

Manifests live in the metadata database (`manifests.content`), not the blob store. Each is
sealed with its own data key (KMS GenerateDataKey under the repository's key, the manifest's
digest as encryption context), AES-256-GCM with the digest as associated data, and stored as
`MAGIC | len(wrapped key) | wrapped key | nonce | ciphertext`. KMS Encrypt alone would cap a
manifest at 4 KiB; the envelope has no such limit and costs one KMS call per push and pull.

`Encryption` builds the KMS service and the encrypted store on first use: a deployment whose
repositories are all AES256 never imports `cryptography` in its workers.
"""

from __future__ import annotations

import base64
import os
import re
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from cargobay.errors import InvalidParameter, KmsAccessDenied, KmsKeyInvalid, KmsKeyUnavailable
from cargobay.kms import errors as kms_errors
from cargobay.kms.model import ENABLED, ENCRYPT_DECRYPT, SYMMETRIC, KeyRecord

if TYPE_CHECKING:
    from cargobay.iam.authz import Authorizer, RequestContext
    from cargobay.iam.principal import Principal
    from cargobay.iam.secrets import SecretBox
    from cargobay.kms.service import KmsService
    from cargobay.metadata.db import Database
    from cargobay.registry.repositories import Repository
    from cargobay.storage.base import BlobStore
    from cargobay.storage.encrypted import EncryptedBlobs
    from cargobay.storage.staging import EncryptedStaging

AES256 = "AES256"
KMS_TYPES = ("KMS", "KMS_DSSE")
MAGIC = b"CBM1"
SEALED_TEXT = "sealed:"
ANNOTATIONS = "#annotations"
# What ECR accepts as `kmsKey`: a key id, an alias name, or the ARN of either.
_KEY_REF = re.compile(
    r"(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+)"
    r"|alias/[A-Za-z0-9/_-]+|[A-Za-z0-9-]+)"
)
_NONCE = 12


def key_id_of(encryption_type: str, kms_key: str | None) -> str | None:
    """The KMS key id (UUID) a repository's data is encrypted under, None for AES256."""
    if encryption_type not in KMS_TYPES or not kms_key:
        return None
    return kms_key.rsplit("/", 1)[-1]


def unavailable(key_arn: str, state: str) -> KmsKeyUnavailable:
    return KmsKeyUnavailable(
        f"KMS key {key_arn} is {state}: the repository's content cannot be read or written "
        f"until the key is enabled",
        detail={
            "kmsKey": key_arn,
            "keyState": state,
            "kmsError": "DisabledException" if state == "Disabled" else "KMSInvalidStateException",
        },
    )


@asynccontextmanager
async def kms_failures() -> AsyncIterator[None]:
    """Turn KMS and envelope failures into the registry's domain errors."""
    try:
        yield
    except (kms_errors.DisabledException, kms_errors.KMSInvalidStateException) as exc:
        raise KmsKeyUnavailable(exc.message) from None
    except kms_errors.NotFoundException as exc:
        raise KmsKeyInvalid(exc.message) from None
    except Exception as exc:
        # Only ever raised once the encrypted store is loaded: no import for the plain path.
        key_arn, state = getattr(exc, "key_arn", None), getattr(exc, "state", None)
        if type(exc).__name__ == "KeyUnavailable" and key_arn and state:
            raise unavailable(key_arn, state) from None
        raise


async def resolve_key(
    kms: KmsService,
    account_id: str,
    encryption_type: str,
    kms_key: str | None,
    *,
    principal: Principal | None = None,
    authorizer: Authorizer | None = None,
    context: RequestContext | None = None,
) -> str | None:
    """The ARN a new repository stores for its `kmsKey` (id, ARN or alias; `alias/aws/ecr`,
    created on first use, when KMS is asked for without a key). The key must be an enabled
    symmetric encryption key of this deployment, and the creating `principal` must be allowed
    `kms:DescribeKey` and, on a customer managed key, `kms:CreateGrant` through ECR (what AWS
    asks, so that ECR may then use the key for the repository's pushes and pulls)."""
    if encryption_type == AES256:
        return None
    if kms_key is not None and not _KEY_REF.fullmatch(kms_key):
        raise InvalidParameter(
            f"Invalid parameter at 'kmsKey': {kms_key!r} is not a KMS key id, alias or ARN",
            detail={"kmsKey": kms_key},
        )
    try:
        if kms_key is None:
            key = await kms.aws_managed_key(account_id, "ecr")
        else:
            key = await kms.key(account_id, kms_key)
    except (kms_errors.InvalidArnException, kms_errors.ValidationException) as exc:
        raise InvalidParameter(f"Invalid parameter at 'kmsKey': {exc.message}") from None
    except kms_errors.NotFoundException:
        raise KmsKeyInvalid(
            f"KMS key {kms_key} does not exist: the repository cannot be encrypted with it",
            detail={"kmsKey": kms_key, "kmsError": "NotFoundException"},
        ) from None
    _check_usable(key)
    if principal is not None and authorizer is not None:
        await _require_key_use(key, principal, authorizer, context)
    return key.arn


async def _require_key_use(
    key: KeyRecord, principal: Principal, authorizer: Authorizer, context: RequestContext | None
) -> None:
    from cargobay.kms.authz import KmsAuthorizer

    actions = ["kms:DescribeKey"] + (["kms:CreateGrant"] if key.key_manager == "CUSTOMER" else [])
    via = f"ecr.{key.region}.amazonaws.com"
    for action in actions:
        if not await KmsAuthorizer(authorizer).allowed(
            principal, action, key, context=context, via_service=via
        ):
            raise KmsAccessDenied(
                f"User: {principal.arn} is not authorized to perform: {action} on resource: "
                f"{key.arn}: the repository cannot be encrypted with it",
                detail={"kmsKey": key.arn, "kmsError": "AccessDeniedException"},
            )


def _check_usable(key: KeyRecord) -> None:
    if key.state != ENABLED:
        raise unavailable(key.arn, key.state)
    if key.key_spec != SYMMETRIC or key.key_usage != ENCRYPT_DECRYPT:
        raise KmsKeyInvalid(
            f"KMS key {key.arn} is {key.key_spec} {key.key_usage}: a repository needs a "
            "SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key",
            detail={"kmsKey": key.arn, "kmsError": "InvalidKeyUsageException"},
        )


def _context(digest: str) -> dict[str, str]:
    return {"cargobay:manifest-digest": digest}


class ManifestSealer:
    """Manifest contents under a repository's KMS key (see the module docstring)."""

    def __init__(self, kms: KmsService) -> None:
        self.kms = kms

    async def seal(self, account_id: str, key_id: str, digest: str, content: bytes) -> bytes:
        async with kms_failures():
            out = await self.kms.generate_data_key(
                account_id, key_id, key_spec="AES_256", encryption_context=_context(digest)
            )
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        wrapped: bytes = out["CiphertextBlob"]
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(out["Plaintext"]).encrypt(nonce, content, digest.encode())
        return MAGIC + struct.pack(">H", len(wrapped)) + wrapped + nonce + sealed

    async def open(self, account_id: str, digest: str, stored: bytes) -> bytes:
        """The plaintext of a sealed manifest; KmsKeyUnavailable when its key cannot be used,
        ValueError when the stored bytes were tampered with."""
        if not stored.startswith(MAGIC) or len(stored) < len(MAGIC) + 2:
            raise ValueError(f"manifest {digest} is not sealed")
        (length,) = struct.unpack(">H", stored[4:6])
        wrapped = stored[6 : 6 + length]
        nonce = stored[6 + length : 6 + length + _NONCE]
        body = stored[6 + length + _NONCE :]
        async with kms_failures():
            try:
                key = await self.kms.key_for_ciphertext(wrapped)
            except kms_errors.NotFoundException:
                # Its material was destroyed after the deletion window: crypto-shredded.
                raise unavailable("of the manifest", "Deleted") from None
            if key.state != ENABLED:
                raise unavailable(key.arn, key.state)
            out = await self.kms.decrypt(
                key.account_id, wrapped, encryption_context=_context(digest)
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(out["Plaintext"]).decrypt(nonce, body, digest.encode())
        except InvalidTag:
            raise ValueError(f"manifest {digest} failed its integrity check") from None

    # Manifest annotations (kept in their own column for the referrers API) are sealed the
    # same way, bound to the manifest's digest with a suffix of their own.
    async def seal_text(self, account_id: str, key_id: str, digest: str, text: str) -> str:
        sealed = await self.seal(account_id, key_id, digest + ANNOTATIONS, text.encode())
        return SEALED_TEXT + base64.b64encode(sealed).decode()

    async def open_text(self, account_id: str, digest: str, stored: str) -> str:
        if not stored.startswith(SEALED_TEXT):
            raise ValueError(f"the annotations of {digest} are not sealed")
        raw = base64.b64decode(stored.removeprefix(SEALED_TEXT))
        return (await self.open(account_id, digest + ANNOTATIONS, raw)).decode()


# -- manifest rows, as ManifestService stores and reads them ---------------------------------


def _sealer(encryption: Encryption | None) -> ManifestSealer:
    assert encryption is not None, "a KMS repository needs the KMS service"
    return encryption.sealer


async def sealed_row(
    encryption: Encryption | None,
    repo: Repository,
    digest: str,
    payload: bytes,
    annotations: str | None,
) -> tuple[bytes, str | None]:
    """The `content` and `annotations` a manifest row stores: as given, or sealed under the
    repository's KMS key."""
    key_id = repo.kms_key_id
    if key_id is None:
        return payload, annotations
    sealer = _sealer(encryption)
    content = await sealer.seal(repo.registry_id, key_id, digest, payload)
    if annotations is not None:
        annotations = await sealer.seal_text(repo.registry_id, key_id, digest, annotations)
    return content, annotations


async def opened(
    encryption: Encryption | None, account_id: str, digest: str, stored: bytes
) -> bytes:
    return await _sealer(encryption).open(account_id, digest, stored)


async def opened_text(
    encryption: Encryption | None, repo: Repository, digest: str, stored: str
) -> str:
    if repo.kms_key_id is None:
        return stored
    return await _sealer(encryption).open_text(repo.registry_id, digest, stored)


class Encryption:
    """The KMS service, the encrypted blob store and the manifest sealer of one process,
    built on first use."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        box: SecretBox,
        region: str,
        *,
        grants_per_key: int | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.box = box
        self.region = region
        self.grants_per_key = grants_per_key

    @cached_property
    def kms(self) -> KmsService:
        from cargobay.kms.service import KmsService

        if self.grants_per_key is None:
            return KmsService(self.db, self.box, self.region)
        return KmsService(self.db, self.box, self.region, grants_per_key=self.grants_per_key)

    @cached_property
    def blobs(self) -> EncryptedBlobs:
        from cargobay.storage.encrypted import EncryptedBlobs

        return EncryptedBlobs(self.store, self.kms)

    @cached_property
    def staging(self) -> EncryptedStaging:
        from cargobay.storage.staging import EncryptedStaging

        return EncryptedStaging(self.store, self.kms)

    @cached_property
    def sealer(self) -> ManifestSealer:
        return ManifestSealer(self.kms)
