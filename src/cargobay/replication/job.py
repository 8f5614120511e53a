"""Running one `replicate` task: copy an image to one destination and record the outcome.

Two paths, one outcome:
- a destination this deployment serves (its own region or another of `regions_served`, any
  account) is a metadata copy:
  the destination repository is created from the account's REPLICATION template if missing,
  the blobs are linked (no byte moves) and the manifests written through the one push path;
- a destination in another region goes to that region's deployment over `/v2/`
  (replication/remote.py) with the key configured for it.

Cross-account copies need the destination's registry policy to allow `ecr:ReplicateImage`
(and `ecr:CreateRepository` when the repository must be created) to the source account, as in
ECR; without it the status is FAILED with the reason. A destination that is down is retried
with backoff (the task stays IN_PROGRESS), and the push never waits for any of it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from cargobay import regions
from cargobay.errors import (
    ImageTagAlreadyExists,
    KmsAccessDenied,
    KmsKeyInvalid,
    KmsKeyUnavailable,
)
from cargobay.events.hooks import image_replicated
from cargobay.iam.authz import Resource
from cargobay.iam.principal import Principal
from cargobay.jobs.queue import Fail, Retry, Task
from cargobay.oci.manifest import parse_manifest
from cargobay.registry.templates import TemplateService, apply_template
from cargobay.replication.config import Destination
from cargobay.replication.remote import Endpoint, RemoteError, RemoteRegistry
from cargobay.replication.service import COMPLETE, FAILED, ReplicationService

if TYPE_CHECKING:
    from cargobay.registry.repositories import Repository
    from cargobay.registry.services import Services

log = logging.getLogger("cargobay.replication")

REPLICATE_IMAGE = "ecr:ReplicateImage"
CREATE_REPOSITORY = "ecr:CreateRepository"


class Replicator:
    def __init__(
        self, services: Services, replication: ReplicationService, endpoints: dict[str, Endpoint]
    ) -> None:
        self.services = services
        self.replication = replication
        self.endpoints = endpoints
        self.templates = TemplateService(services.db)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
            )
        return self._session

    async def prepare_backfill(self, task: Task) -> None:
        await self.replication.backfills.prepare(task.payload["backfill_id"])

    async def handle(self, task: Task) -> None:
        p = task.payload
        backfill = p.get("backfill_id")
        if backfill and not await self.replication.backfills.active(backfill):
            return  # the backfill was stopped
        try:
            await self._replicate(p)
        except Fail as exc:
            if backfill:
                await self.replication.backfills.finish(
                    backfill,
                    p["backfill_result_id"],
                    FAILED,
                    exc.args[1] if len(exc.args) > 1 else None,
                )
            raise
        if backfill:
            await self.replication.backfills.finish(
                backfill, p["backfill_result_id"], COMPLETE, None
            )

    async def _replicate(self, p: dict[str, Any]) -> None:
        destination = Destination(p["region"], p["destination_registry_id"])
        repo = await self.services.repositories.find(p["registry_id"], p["name"])
        if repo is None or repo.id != p["repository_id"]:
            return  # the source repository is gone: nothing left to replicate
        try:
            if destination.region in self.services.settings.served_regions:
                sent = await self._copy_locally(repo, p["digest"], p.get("tag"), destination)
            else:
                sent = await self._push_remote(repo, p["digest"], p.get("tag"), destination)
        except _Failed as exc:
            log.warning(
                "replication of %s/%s@%s to %s/%s failed: %s",
                repo.registry_id, repo.name, p["digest"], destination.region,
                destination.registry_id, exc.reason,
            )  # fmt: skip
            await self.replication.record(
                repo.id, p["digest"], destination, FAILED, exc.code, exc.reason
            )
            raise Fail(exc.reason, exc.code) from None
        await self.replication.record(repo.id, p["digest"], destination, COMPLETE, bytes_sent=sent)
        log.info(
            "replicated %s/%s@%s to %s/%s (%d bytes sent)",
            repo.registry_id, repo.name, p["digest"], destination.region,
            destination.registry_id, sent,
        )  # fmt: skip

    # -- within this deployment ----------------------------------------------------------

    async def _allowed(self, source: str, action: str, destination: Destination, name: str) -> bool:
        if source == destination.registry_id:
            return True
        principal = Principal(source, "root", "", is_admin=True)
        resource = Resource(destination.registry_id, destination.region, name)
        # The destination repository's policy is the one in the destination's region.
        with regions.serving_key(regions.key(destination.region, self.services.settings.region)):
            return await self.services.authorizer.allowed(principal, action, resource)

    async def _copy_locally(
        self, repo: Repository, digest: str, tag: str | None, destination: Destination
    ) -> int:
        services = self.services
        name = repo.name
        if not await self._allowed(repo.registry_id, REPLICATE_IMAGE, destination, name):
            raise _Failed(
                "ACCESS_DENIED",
                f"the registry policy of {destination.registry_id} does not allow "
                f"{REPLICATE_IMAGE} to {repo.registry_id}",
            )
        default = services.settings.region
        with regions.serving_key(regions.key(destination.region, default)):
            target = await self._target(repo, destination)
        await self._copy_manifest(repo, target, digest, tag, destination)
        await image_replicated(
            self.services.db,
            account=destination.registry_id,
            region=destination.region,
            repository=name,
            digest=digest,
            tag=tag,
            source_account=repo.registry_id,
            source_region=regions.current(default),
        )
        return 0

    async def _target(self, repo: Repository, destination: Destination) -> Repository:
        """The destination repository, created from a REPLICATION template when missing, in
        the destination's region (the caller serves it)."""
        services, name = self.services, repo.name
        target = await services.repositories.find(destination.registry_id, name)
        if target is None:
            if not await self._allowed(repo.registry_id, CREATE_REPOSITORY, destination, name):
                raise _Failed(
                    "ACCESS_DENIED",
                    f"the registry policy of {destination.registry_id} does not allow "
                    f"{CREATE_REPOSITORY} to {repo.registry_id}",
                )
            try:
                # The template's encryptionConfiguration is resolved in the destination
                # account: the replica is encrypted under the template's KMS key.
                target = await apply_template(
                    services.repositories,
                    self.templates,
                    destination.registry_id,
                    name,
                    "REPLICATION",
                )
            except (KmsKeyInvalid, KmsKeyUnavailable, KmsAccessDenied) as exc:
                raise _Failed(
                    "KMS_KEY_ERROR",
                    f"the REPLICATION template's KMS key cannot encrypt {name} in "
                    f"{destination.registry_id}: {exc}",
                ) from None
        return target

    async def _copy_manifest(
        self,
        source: Repository,
        target: Repository,
        digest: str,
        tag: str | None,
        destination: Destination,
    ) -> None:
        """Read in the source's region (this task's), write in the destination's: another
        region this deployment serves is a local copy too."""
        services = self.services
        found = await services.manifests.get(source.registry_id, source.name, digest)
        parsed = parse_manifest(found.content, found.media_type)
        for child in parsed.manifests:
            await self._copy_manifest(source, target, child.digest, None, destination)
        for blob in parsed.blob_references():
            # Metadata only when both repositories share a key (or have none); between keys
            # the blob is re-encrypted (or decrypted) for the destination.
            await services.blobs.copy(source, target, blob.digest, blob.size)
        with regions.serving_key(regions.key(destination.region, services.settings.region)):
            await self._put_replica(target, found.content, found.media_type, digest, tag)

    async def _put_replica(
        self, target: Repository, content: bytes, media_type: str, digest: str, tag: str | None
    ) -> None:
        services = self.services
        await services.manifests.put_image(target, content, media_type, digest)
        if tag:
            try:
                await services.manifests.put_image(target, content, media_type, digest, tag)
            except ImageTagAlreadyExists:
                # As ECR: an immutable destination keeps its tag; the image arrives untagged.
                log.info("replicated %s without tag %s (immutable at destination)", digest, tag)

    # -- to another deployment -----------------------------------------------------------

    async def _push_remote(
        self, repo: Repository, digest: str, tag: str | None, destination: Destination
    ) -> int:
        endpoint = self.endpoints.get(destination.region)
        if endpoint is None:
            raise _Failed("UNKNOWN_REGION", f"no endpoint is configured for {destination.region}")
        remote = RemoteRegistry(
            self._client(),
            endpoint,
            destination.registry_id,
            destination.region,
            regions.current(self.services.settings.region),
        )
        services = self.services

        async def read_manifest(ref: str) -> tuple[bytes, str]:
            found = await services.manifests.get(repo.registry_id, repo.name, ref)
            return found.content, found.media_type

        def read_blob(blob_digest: str, size: int) -> Any:
            # Plaintext: a KMS repository's blobs are decrypted here and re-encrypted (or not)
            # by the destination under its own repository's settings.
            return services.blobs.read(repo, blob_digest, 0, size, size)

        try:
            stats = await remote.push_image(repo.name, digest, tag, read_manifest, read_blob)
        except RemoteError as exc:
            if exc.retryable:
                raise Retry(f"{exc.code}: {exc.message}") from None
            raise _Failed(exc.code, exc.message) from None
        return stats.bytes_sent


class _Failed(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
