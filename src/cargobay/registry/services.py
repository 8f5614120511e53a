"""The set of registry services one process uses, built once per worker."""

from __future__ import annotations

from dataclasses import dataclass

from cargobay.config import Settings
from cargobay.iam.authz import Authorizer
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.secrets import load_box
from cargobay.metadata.db import Database
from cargobay.registry.blobs import BlobService
from cargobay.registry.manifests import ManifestService
from cargobay.registry.repositories import RepositoryService
from cargobay.registry.uploads import UploadService
from cargobay.storage import BlobStore, open_store


@dataclass
class Services:
    settings: Settings
    db: Database
    store: BlobStore
    repositories: RepositoryService
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    credentials: CredentialStore
    authorizer: Authorizer

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.database_url)
        store = open_store(settings.storage_url)
        return cls(
            settings=settings,
            db=db,
            store=store,
            repositories=RepositoryService(db),
            blobs=BlobService(db, store),
            uploads=UploadService(db, store),
            manifests=ManifestService(db),
            credentials=CredentialStore(db, load_box(settings.secret_key, settings.data_dir)),
            authorizer=Authorizer(),
        )

    async def close(self) -> None:
        await self.db.dispose()
