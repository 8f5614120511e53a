"""The set of registry services one process uses, built once per worker."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import quote

from cargobay.config import Settings
from cargobay.iam.authz import Authorizer
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.principal import Principal
from cargobay.iam.secrets import load_box
from cargobay.iam.tokens import TokenClaims, TokenError, TokenSigner, blob_scope, load_signer
from cargobay.lifecycle.service import LifecycleService
from cargobay.metadata.db import Database
from cargobay.registry.blobs import BlobService
from cargobay.registry.deletes import DeleteService
from cargobay.registry.encryption import Encryption
from cargobay.registry.hooks import Hooks
from cargobay.registry.images import ImageService
from cargobay.registry.manifests import ManifestService
from cargobay.registry.repositories import Repository, RepositoryService
from cargobay.registry.uploads import UploadService
from cargobay.registry.usage import UsageRecorder
from cargobay.storage import BlobStore, open_store

if TYPE_CHECKING:
    from cargobay.kms.authz import KmsAuthorizer
    from cargobay.kms.service import KmsService

SIGNER_REFRESH = 300.0
SIGNER_RETRY = 10.0


@dataclass
class Services:
    settings: Settings
    db: Database
    store: BlobStore
    repositories: RepositoryService
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    deletes: DeleteService
    credentials: CredentialStore
    authorizer: Authorizer
    images: ImageService
    lifecycle: LifecycleService
    usage: UsageRecorder
    hooks: Hooks
    encryption: Encryption
    _signer: TokenSigner | None = field(default=None, repr=False)
    _signer_loaded: float = 0.0

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.database_url)
        store = open_store(settings.storage_url)
        authorizer = Authorizer(db)
        box = load_box(settings.secret_key, settings.data_dir)
        encryption = Encryption(db, store, box, settings.region)
        repositories = RepositoryService(db, settings, authorizer, encryption)
        images = ImageService(db)
        hooks = Hooks()
        return cls(
            settings=settings,
            db=db,
            store=store,
            repositories=repositories,
            blobs=BlobService(db, store, encryption),
            uploads=UploadService(db, store, encryption),
            manifests=ManifestService(db, settings.max_manifest_bytes, hooks, encryption),
            deletes=DeleteService(db, hooks),
            credentials=CredentialStore(db, box),
            authorizer=authorizer,
            images=images,
            lifecycle=LifecycleService(db, repositories, images),
            usage=UsageRecorder(db),
            hooks=hooks,
            encryption=encryption,
        )

    @property
    def kms(self) -> KmsService:
        """The KMS service (built, and `cryptography` loaded, on first use)."""
        return self.encryption.kms

    @property
    def kms_authorizer(self) -> KmsAuthorizer:
        from cargobay.kms.authz import KmsAuthorizer

        return KmsAuthorizer(self.authorizer)

    async def token_signer(self, *, refresh: bool = False) -> TokenSigner:
        """This process's token signer; keys live in the database, shared by every node."""
        now = time.time()
        if refresh or self._signer is None or now - self._signer_loaded > SIGNER_REFRESH:
            self._signer = await load_signer(self.db)
            self._signer_loaded = now
        return self._signer

    async def verify_token(self, token: str) -> TokenClaims:
        """Claims of an ECR authorization token; TokenError when forged or expired."""
        signer = await self.token_signer()
        try:
            return signer.verify(token)
        except TokenError as exc:
            # Another node may have created a key this process has not read yet; look again
            # at most every few seconds so forged tokens cannot become database reads.
            stale = time.time() - self._signer_loaded >= SIGNER_RETRY
            if exc.reason != "unknown-key" or not stale:
                raise
        return (await self.token_signer(refresh=True)).verify(token)

    async def download_url(
        self, principal: Principal, repo: Repository, digest: str, expires_at: float, base: str
    ) -> str:
        """A URL that fetches one blob without other credentials until `expires_at`: the
        object store's presigned URL when it has one (never for a KMS-encrypted repository,
        whose stored bytes are ciphertext), else this registry's with a token."""
        if self.blobs.serves_plaintext(repo):
            presigned = await self.store.download_url(digest, max(1, int(expires_at - time.time())))
            if presigned is not None:
                return presigned
        claims = replace(
            TokenClaims.for_principal(principal, lifetime=expires_at - time.time()),
            scope=blob_scope(repo.registry_id, repo.name, digest),
        )
        token = (await self.token_signer()).issue(claims)
        return (
            f"{base}/v2/{repo.name}/blobs/{digest}?registryId={repo.registry_id}"
            f"&token={quote(token, safe='')}"
        )

    async def close(self) -> None:
        await self.usage.close()
        await self.db.dispose()
