"""The set of registry services one process uses, built once per worker."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cargobay.audit import record as audit_record
from cargobay.config import Settings
from cargobay.events import hooks as event_hooks
from cargobay.iam.authz import Authorizer
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.principal import Principal
from cargobay.iam.secrets import load_box
from cargobay.iam.tokens import TokenClaims, TokenError, TokenSigner, blob_scope, load_signer
from cargobay.lifecycle.service import LifecycleService
from cargobay.metadata.db import Database
from cargobay.metadata.leases import Leases, process_holder
from cargobay.pullthrough.rules import RuleService
from cargobay.registry.archive import ArchiveService
from cargobay.registry.blobs import BlobService
from cargobay.registry.deletes import DeleteService
from cargobay.registry.encryption import Encryption
from cargobay.registry.hooks import Hooks
from cargobay.registry.images import ImageService
from cargobay.registry.manifests import ManifestService
from cargobay.registry.repositories import Repository, RepositoryService
from cargobay.registry.templates import TemplateService
from cargobay.registry.uploads import UploadService
from cargobay.registry.usage import UsageRecorder
from cargobay.replication.service import ReplicationService
from cargobay.scans.service import ScanService
from cargobay.secrets.service import SecretsService
from cargobay.signing.configuration import SigningService
from cargobay.storage import BlobStore, open_store

if TYPE_CHECKING:
    from cargobay.kms.authz import KmsAuthorizer
    from cargobay.kms.service import KmsService
    from cargobay.pullthrough.cache import PullThroughCache

SIGNER_REFRESH = 300.0
SIGNER_RETRY = 10.0


@dataclass
class Services:
    settings: Settings
    db: Database
    store: BlobStore
    leases: Leases
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
    templates: TemplateService
    replication: ReplicationService
    secrets: SecretsService
    pull_through_rules: RuleService
    scans: ScanService
    encryption: Encryption
    archive: ArchiveService
    signing: SigningService
    _signer: TokenSigner | None = field(default=None, repr=False)
    _pullthrough: PullThroughCache | None = field(default=None, repr=False)
    _signer_loaded: float = 0.0

    @classmethod
    def build(cls, settings: Settings, holder: str | None = None) -> Services:
        """`holder` names this process in leases (`leases.node_holder` for a serving worker);
        by default a one-off id that no other process takes over."""
        db = Database(settings.database_url)
        store = open_store(settings.storage_url)
        authorizer = Authorizer(db)
        box = load_box(settings.secret_key, settings.data_dir)
        encryption = Encryption(
            db, store, box, settings.region, grants_per_key=settings.kms_grants_per_key
        )
        repositories = RepositoryService(db, settings, authorizer, encryption)
        images = ImageService(db)
        leases = Leases(db, holder or process_holder())
        repositories.templates = TemplateService(db)
        hooks = Hooks()
        scans = ScanService(db)
        hooks.on_push(scans.on_push, reads=scans.push_reads())
        hooks.on_delete(scans.on_delete)
        signing = SigningService(db)
        hooks.on_push(signing.on_push, reads=signing.push_reads())
        hooks.on_delete(signing.on_delete)
        secrets = SecretsService(db, box, region=settings.region)
        authorizer.secret_policies = secrets.resource_policy  # secret policies in decisions
        rules = RuleService(db, secrets)
        blobs = BlobService(db, store, encryption)
        manifests = ManifestService(db, settings.max_manifest_bytes, hooks, encryption)
        event_hooks.register(hooks, settings.region)
        event_hooks.register_scans(scans, settings.region)
        archive = ArchiveService(db)
        hooks.on_push(archive.on_push)  # a re-push restores an archived image
        return cls(
            settings=settings,
            db=db,
            store=store,
            leases=leases,
            repositories=repositories,
            blobs=blobs,
            uploads=UploadService(db, store, leases, encryption),
            manifests=manifests,
            deletes=DeleteService(db, hooks),
            credentials=CredentialStore(db, box),
            authorizer=authorizer,
            images=images,
            lifecycle=LifecycleService(db, repositories, images),
            usage=UsageRecorder(db),
            hooks=hooks,
            templates=repositories.templates,
            replication=ReplicationService(
                db,
                settings.region,
                frozenset({*(r.name for r in settings.regions), *settings.served_regions}),
                hooks,
            ),
            secrets=secrets,
            pull_through_rules=rules,
            scans=scans,
            encryption=encryption,
            archive=archive,
            signing=signing,
        )

    @property
    def pullthrough(self) -> PullThroughCache:
        """The pull-through cache, built (and its upstream client loaded) on first use: a
        manifest or blob this registry does not hold, or a cache's ECR call."""
        if self._pullthrough is None:
            from cargobay.pullthrough.cache import PullThroughCache

            self._pullthrough = PullThroughCache(
                self.db,
                self.settings,
                self.store,
                self.authorizer,
                self.repositories,
                self.manifests,
                self.blobs,
                self.pull_through_rules,
                self.leases,
            )
        return self._pullthrough

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
        scope = blob_scope(repo.registry_id, repo.name, digest, repo.region_key)
        token = (await self.token_signer()).issue_for(principal, expires_at - time.time(), scope)
        region = f"&region={repo.region_key}" if repo.region_key else ""  # not the default
        return (
            f"{base}/v2/{repo.name}/blobs/{digest}?registryId={repo.registry_id}"
            f"&token={token}{region}"  # [A-Za-z0-9_.-] only (`iam.tokens`): nothing to quote
        )

    async def close(self) -> None:
        if self._pullthrough is not None:
            await self._pullthrough.close()
        await self.usage.close()
        await audit_record.close_for(self.db)  # the buffered audit records
        self.credentials.close()
        await self.db.dispose()
