"""The pull-through cache behind `/v2/` pulls.

Manifests: a pull in a repository under a rule is answered from the store when it can be; a
tag is re-checked upstream (one HEAD) at most once per `pull_through_recheck_seconds`, a
digest never. What is missing is fetched, verified, and stored through the one push path
(`ManifestService.put_image`, with the blobs left to arrive lazily); an index's child
manifests are fetched eagerly with it (they are small, and an index cannot be stored before
its children), their blobs lazily. When the upstream fails or rate-limits, the cached copy is
served (stale-if-error); with nothing cached the pull fails with `UpstreamFailed`, naming the
upstream's failure. The first pull creates the repository.

Whatever asks the upstream about a manifest holds a database lease on the (repository,
reference) (`metadata.leases`), so concurrent first pulls on every worker and node make one
upstream request. A failed attempt emits the FAILED cache event (`failures`).

The rest lives beside it: blobs in `blobs` (one fetch each, streamed while stored), the
permission checks and repository creation in `access`, the tag re-check clock in `tags`.
"""

from __future__ import annotations

import hashlib
import logging
import time

from cargobay import regions
from cargobay.config import Settings
from cargobay.errors import DomainError, ImageNotFound, UpstreamFailed
from cargobay.iam.authz import Authorizer, RequestContext
from cargobay.iam.principal import Principal
from cargobay.metadata.db import Database
from cargobay.metadata.leases import LeaseBusy, Leases
from cargobay.metadata.records import manifests as manifest_records
from cargobay.oci.digest import is_digest
from cargobay.oci.manifest import parse_manifest
from cargobay.pullthrough import failures
from cargobay.pullthrough.access import CacheAccess
from cargobay.pullthrough.blobs import (
    FILL_WAIT_SECONDS,
    BlobFill,
    BlobFills,
    wait_for_other_fetch,
)
from cargobay.pullthrough.clients import UpstreamClients
from cargobay.pullthrough.parts import CacheParts
from cargobay.pullthrough.rules import Rule, RuleService, find_rule
from cargobay.pullthrough.tags import TagChecks
from cargobay.registry.blobs import BlobService
from cargobay.registry.hooks import PULL_THROUGH_CACHE
from cargobay.registry.manifests import Manifest, ManifestService
from cargobay.registry.pulls import valid_reference
from cargobay.registry.repositories import Repository, RepositoryService
from cargobay.storage import BlobStore
from cargobay.upstream import errors as upstream_errors
from cargobay.upstream.client import Manifest as UpstreamManifest
from cargobay.upstream.client import UpstreamClient

log = logging.getLogger("cargobay.pullthrough")

__all__ = ["BlobFill", "PullThroughCache"]


class PullThroughCache:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        store: BlobStore,
        authorizer: Authorizer,
        repositories: RepositoryService,
        manifests: ManifestService,
        blobs: BlobService,
        rules: RuleService,
        leases: Leases,
    ) -> None:
        self.db = db
        self.leases = leases
        self.settings = settings
        self.repositories = repositories
        self.manifests = manifests
        self.rules = rules
        self.clients = UpstreamClients(rules)
        self.access = CacheAccess(settings, authorizer, repositories)
        self.tags = TagChecks(db, settings)
        self.fills = BlobFills(
            CacheParts(db, settings, store, blobs, leases, self.clients, self.access)
        )

    async def close(self) -> None:
        await self.clients.close()

    # -- manifests ------------------------------------------------------------------------------

    async def covers(self, registry_id: str, name: str) -> bool:
        """Whether the repository is (or would be) a pull-through cache repository."""
        return await find_rule(self.db, registry_id, name) is not None

    async def get_manifest(
        self,
        principal: Principal,
        registry_id: str,
        name: str,
        reference: str,
        context: RequestContext | None = None,
    ) -> Manifest:
        """A manifest by tag or digest: from the store, or through the repository's rule.

        Whatever asks the upstream (a first fetch, a due re-check) holds a database lease on
        the (repository, reference), so concurrent pulls on every worker and node make one
        upstream request: the others wait for the stored manifest, or, when a cached copy
        exists, are served it at once."""
        rule = await find_rule(self.db, registry_id, name)
        puller = principal.arn  # a pull time is recorded unless the registry excludes it
        if rule is None:
            return await self.manifests.get(registry_id, name, reference, puller)
        lease = _lease_name(registry_id, name, reference)
        deadline = time.monotonic() + FILL_WAIT_SECONDS
        asked = False  # whether the caller was found allowed to import (once is enough)
        while True:
            local, repo = await self._local(registry_id, name, reference, puller)
            if await self._current(local, repo, reference):
                return local
            if local is not None:
                # A re-check is due; a caller who may not import is served the cached copy.
                if not await self.access.may(principal, "import", registry_id, name, context):
                    return local
            elif not asked:
                await self.access.require(principal, "import", registry_id, name, context)
                asked = True
            try:
                async with self.leases.hold(lease):
                    # Another holder may have stored or re-checked it just before.
                    local, repo = await self._local(registry_id, name, reference, puller)
                    if await self._current(local, repo, reference):
                        return local
                    return await self._from_upstream(
                        principal, rule, registry_id, name, reference, local, repo, context
                    )
            except LeaseBusy:
                if local is not None:
                    return local  # another pull is re-checking the tag: serve the cached copy
            what = f"{name}:{reference}"
            await wait_for_other_fetch(deadline, what, rule, {"reference": reference})

    async def _local(
        self, registry_id: str, name: str, reference: str, puller: str
    ) -> tuple[Manifest | None, Repository | None]:
        """The cached manifest (None when absent) and the repository (None before the first
        pull created it)."""
        try:
            local: Manifest | None = await self.manifests.get(registry_id, name, reference, puller)
        except ImageNotFound:
            local = None
            _check_reference(reference)
        return local, await self.repositories.find(registry_id, name)

    async def _current(
        self, local: Manifest | None, repo: Repository | None, reference: str
    ) -> bool:
        """Whether the cached copy answers without asking the upstream: a digest always, a
        tag within its re-check interval."""
        if local is None:
            return False
        return is_digest(reference) or await self.tags.fresh(repo, reference)

    async def _from_upstream(
        self,
        principal: Principal,
        rule: Rule,
        registry_id: str,
        name: str,
        reference: str,
        local: Manifest | None,
        repo: Repository | None,
        context: RequestContext | None,
    ) -> Manifest:
        """Re-check a cached tag (HEAD) or fetch the manifest, store it, and return it; the
        cached copy when the upstream fails (UpstreamFailed when there is none)."""
        upstream_name = rule.upstream_name(name)
        try:
            client = await self.clients.get(rule)
            if local is not None:
                head = await client.head_manifest(upstream_name, reference)
                if head.digest == local.digest:
                    await self.tags.checked(repo, reference)
                    return local
            fetched = await client.get_manifest(upstream_name, reference)
        except (upstream_errors.UpstreamError, DomainError) as exc:
            if local is not None and not is_digest(reference):
                await self.tags.back_off(repo, reference, exc)
            return await self._stale_or_fail(rule, name, reference, local, exc)
        repo = repo or await self.access.repository(principal, registry_id, name, context)
        tag = None if is_digest(reference) else reference
        try:
            await self._store(client, repo, upstream_name, fetched, tag)
        except upstream_errors.UpstreamError as exc:
            return await self._stale_or_fail(rule, name, reference, local, exc)
        if tag is not None:
            await self.tags.checked(repo, tag)
        return await self.manifests.get(registry_id, name, reference, principal.arn)

    async def _stale_or_fail(
        self,
        rule: Rule,
        name: str,
        reference: str,
        local: Manifest | None,
        exc: Exception,
    ) -> Manifest:
        why = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        image = {"digest": reference} if is_digest(reference) else {"tag": reference}
        await failures.emit_failed(
            self.db, regions.current(self.settings.region), rule, name, exc, **image
        )
        if local is not None:
            log.warning("serving cached %s:%s: upstream failed: %s", name, reference, why)
            return local
        raise UpstreamFailed(
            f"{name}:{reference} is not cached, and the upstream {rule.upstream_url} could not "
            f"provide it ({type(exc).__name__}: {why})",
            detail={
                "upstream": rule.upstream_url,
                "reference": reference,
                "failure": type(exc).__name__,
            },
        ) from None

    async def _store(
        self,
        client: UpstreamClient,
        repo: Repository,
        upstream_name: str,
        manifest: UpstreamManifest,
        tag: str | None,
    ) -> None:
        parsed = parse_manifest(manifest.content, manifest.media_type or None)
        for child in parsed.manifests:
            if not await self._has_manifest(repo, child.digest):
                fetched = await client.get_manifest(upstream_name, child.digest)
                await self._store(client, repo, upstream_name, fetched, None)
        await self.manifests.put_image(
            repo,
            manifest.content,
            parsed.media_type,
            manifest.digest,
            tag,
            lazy_blobs=True,
            origin=PULL_THROUGH_CACHE,
        )

    async def _has_manifest(self, repo: Repository, digest: str) -> bool:
        async with self.db.read_now() as conn:
            return bool(await manifest_records.present(conn, repo.id, [digest]))

    # -- blobs ----------------------------------------------------------------------------------

    async def blob_size(self, repo: Repository, digest: str) -> int:
        """The size of a blob a cached manifest references (HEAD), not fetching it."""
        return await self.fills.blob_size(repo, digest)

    async def open_blob(
        self,
        principal: Principal,
        repo: Repository,
        digest: str,
        context: RequestContext | None = None,
    ) -> BlobFill | None:
        """A BlobFill to stream when this request fetches the blob from the upstream, None
        once it is stored (see `blobs.BlobFills.open_blob`)."""
        return await self.fills.open_blob(principal, repo, digest, context)


def _lease_name(registry_id: str, name: str, reference: str) -> str:
    """The lease on fetching one manifest (hashed: names and tags are too long for the
    lease table's key together)."""
    key = hashlib.sha256(f"{registry_id}/{name}:{reference}".encode()).hexdigest()[:40]
    return f"pull-through-manifest:{key}"


def _check_reference(reference: str) -> None:
    """A reference that is neither a tag nor a digest names nothing (ImageNotFound)."""
    if not valid_reference(reference):
        raise ImageNotFound(detail={"reference": reference})
