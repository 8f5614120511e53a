"""The pull-through cache behind `/v2/` pulls.

Manifests: a pull in a repository under a rule is answered from the store when it can be; a
tag is re-checked upstream (one HEAD) at most once per `pull_through_recheck_seconds`, a
digest never. What is missing is fetched, verified, and stored through the one push path
(`ManifestService.put_image`, with the blobs left to arrive lazily); an index's child
manifests are fetched eagerly with it (they are small, and an index cannot be stored before
its children), their blobs lazily. When the upstream fails or rate-limits, the cached copy is
served (stale-if-error); with nothing cached the pull fails with `UpstreamFailed`, naming the
upstream's failure. The first pull creates the repository.

Blobs: a blob a cached manifest references but the store lacks is fetched once (a lease in
the database, see `fills`) and streamed to the client while it is stored (`upstream.tee`);
concurrent pullers wait for it and are served from the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from cargobay.config import Settings
from cargobay.errors import (
    BlobUnknown,
    DomainError,
    ImageNotFound,
    UpstreamFailed,
)
from cargobay.iam.authz import Authorizer, RequestContext, Resource
from cargobay.iam.permissions import PULL_THROUGH
from cargobay.iam.principal import Principal
from cargobay.jobs.leases import holder_id
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.leases import LeaseBusy, Leases
from cargobay.metadata.sql import upsert
from cargobay.oci.digest import is_digest, parse_digest
from cargobay.oci.manifest import parse_manifest
from cargobay.oci.names import validate_tag
from cargobay.pullthrough import failures, fills
from cargobay.pullthrough.clients import UpstreamClients
from cargobay.pullthrough.rules import Rule, RuleService, find_rule
from cargobay.registry.blobs import BlobService
from cargobay.registry.hooks import PULL_THROUGH_CACHE
from cargobay.registry.manifests import Manifest, ManifestService
from cargobay.registry.repositories import Repository, RepositoryService
from cargobay.registry.templates import apply_template
from cargobay.storage import BlobStore
from cargobay.upstream import errors as upstream_errors
from cargobay.upstream.client import Manifest as UpstreamManifest
from cargobay.upstream.client import UpstreamClient
from cargobay.upstream.tee import Tee

log = logging.getLogger("cargobay.pullthrough")

# How long a puller waits for another worker's fetch of the same blob before giving up.
FILL_WAIT_SECONDS = 600.0
FILL_POLL_SECONDS = 0.1
# After a failed tag re-check, how long the cached copy is served before asking again.
RETRY_SECONDS = 60.0


@dataclass
class BlobFill:
    """A blob being fetched from the upstream by this request: stream `tee` to the client."""

    tee: Tee
    size: int


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
        self.store = store
        self.authorizer = authorizer
        self.repositories = repositories
        self.manifests = manifests
        self.blobs = blobs
        self.rules = rules
        self.clients = UpstreamClients(rules)
        self._background: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        await self.clients.close()

    # -- authorization and repositories -------------------------------------------------------

    async def _require(
        self,
        principal: Principal,
        kind: str,
        registry_id: str,
        name: str,
        context: RequestContext | None,
    ) -> None:
        resource = Resource(registry_id, self.settings.region, name)
        for action in PULL_THROUGH[kind].actions:
            await self.authorizer.require(principal, action, resource, context)

    async def _may(
        self,
        principal: Principal,
        kind: str,
        registry_id: str,
        name: str,
        context: RequestContext | None,
    ) -> bool:
        resource = Resource(registry_id, self.settings.region, name)
        for action in PULL_THROUGH[kind].actions:
            if not await self.authorizer.allowed(principal, action, resource, context):
                return False
        return True

    async def _repository(
        self, principal: Principal, registry_id: str, name: str, context: RequestContext | None
    ) -> Repository:
        """The cache repository, created on its first pull (as the caller, who needs
        `ecr:CreateRepository`)."""
        repo = await self.repositories.find(registry_id, name)
        if repo is not None:
            return repo
        await self._require(principal, "create", registry_id, name, context)
        # A template with appliedFor PULL_THROUGH_CACHE sets mutability, encryption, tags and
        # policies; without one the repository gets ECR's defaults.
        if self.repositories.templates is None:
            return (await self.repositories.create(registry_id, name))[0]
        return await apply_template(
            self.repositories, self.repositories.templates, registry_id, name, "PULL_THROUGH_CACHE"
        )

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
        if rule is None:
            return await self.manifests.get(registry_id, name, reference)
        lease = _lease_name(registry_id, name, reference)
        deadline = time.monotonic() + FILL_WAIT_SECONDS
        while True:
            local, repo = await self._local(registry_id, name, reference)
            if local is not None and (is_digest(reference) or await self._fresh(repo, reference)):
                return local
            if local is not None:
                # A re-check is due; a caller who may not import is served the cached copy.
                if not await self._may(principal, "import", registry_id, name, context):
                    return local
            else:
                await self._require(principal, "import", registry_id, name, context)
            try:
                async with self.leases.hold(lease):
                    # Another holder may have stored or re-checked it just before.
                    local, repo = await self._local(registry_id, name, reference)
                    if local is not None and (
                        is_digest(reference) or await self._fresh(repo, reference)
                    ):
                        return local
                    return await self._from_upstream(
                        principal, rule, registry_id, name, reference, local, repo, context
                    )
            except LeaseBusy:
                if local is not None:
                    return local  # another pull is re-checking the tag: serve the cached copy
            if time.monotonic() > deadline:
                raise UpstreamFailed(
                    f"timed out waiting for another pull's fetch of {name}:{reference} from "
                    f"{rule.upstream_url}",
                    detail={"reference": reference},
                )
            await asyncio.sleep(FILL_POLL_SECONDS)

    async def _local(
        self, registry_id: str, name: str, reference: str
    ) -> tuple[Manifest | None, Repository | None]:
        """The cached manifest (None when absent) and the repository (None before the first
        pull created it)."""
        try:
            local: Manifest | None = await self.manifests.get(registry_id, name, reference)
        except ImageNotFound:
            local = None
            _check_reference(reference)
        return local, await self.repositories.find(registry_id, name)

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
                    await self._checked(repo, reference)
                    return local
            fetched = await client.get_manifest(upstream_name, reference)
        except (upstream_errors.UpstreamError, DomainError) as exc:
            if local is not None and not is_digest(reference):
                await self._back_off(repo, reference, exc)
            return await self._stale_or_fail(rule, name, reference, local, exc)
        repo = repo or await self._repository(principal, registry_id, name, context)
        tag = None if is_digest(reference) else reference
        try:
            await self._store(client, repo, upstream_name, fetched, tag)
        except upstream_errors.UpstreamError as exc:
            return await self._stale_or_fail(rule, name, reference, local, exc)
        if tag is not None:
            await self._checked(repo, tag)
        return await self.manifests.get(registry_id, name, reference)

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
        await failures.emit_failed(self.db, self.settings.region, rule, name, exc, **image)
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
        m = schema.manifests
        async with self.db.read_now() as conn:
            found = await conn.execute(
                select(m.c.digest).where(m.c.repository_id == repo.id, m.c.digest == digest)
            )
            return found.first() is not None

    async def _fresh(self, repo: Repository | None, tag: str) -> bool:
        """Whether the tag was checked upstream within the re-check interval."""
        if repo is None:
            return False
        t = schema.pull_through_tags
        async with self.db.read_now() as conn:
            checked = (
                await conn.execute(
                    select(t.c.checked_at).where(t.c.repository_id == repo.id, t.c.tag == tag)
                )
            ).scalar_one_or_none()
        interval = self.settings.pull_through_recheck_seconds
        return checked is not None and time.time() - checked < interval

    async def _back_off(self, repo: Repository | None, tag: str, exc: Exception) -> None:
        """After a failed re-check, the cached copy is served without asking the upstream
        again for a while (its Retry-After, else at most a minute): an upstream that times
        out must not slow every pull down."""
        interval = self.settings.pull_through_recheck_seconds
        wait = getattr(exc, "retry_after", None) or RETRY_SECONDS
        await self._checked(repo, tag, time.time() - interval + min(wait, interval))

    async def _checked(self, repo: Repository | None, tag: str, when: float | None = None) -> None:
        if repo is None:
            return
        async with self.db.write() as conn:
            await upsert(
                conn,
                schema.pull_through_tags,
                ["repository_id", "tag"],
                repository_id=repo.id,
                tag=tag,
                checked_at=time.time() if when is None else when,
            )

    # -- blobs ----------------------------------------------------------------------------------

    async def _referenced_size(self, repo: Repository, digest: str) -> int | None:
        """The size a cached manifest of the repository gives the blob; None when none
        references it (the cache fetches only what its images need)."""
        m, ref = schema.manifests, schema.manifest_references
        query = (
            select(m.c.content, m.c.media_type)
            .join(
                ref,
                (ref.c.repository_id == m.c.repository_id) & (ref.c.manifest_digest == m.c.digest),
            )
            .where(ref.c.repository_id == repo.id, ref.c.target_digest == digest)
            .where(ref.c.kind == "blob")
            .limit(1)
        )
        async with self.db.read_now() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        parsed = parse_manifest(row.content, row.media_type)
        for descriptor in parsed.blob_references():
            if descriptor.digest == digest:
                return descriptor.size
        return None

    async def _cache_target(self, repo: Repository, digest: str) -> tuple[Rule, int]:
        parse_digest(digest)
        rule = await find_rule(self.db, repo.registry_id, repo.name)
        size = None if rule is None else await self._referenced_size(repo, digest)
        if rule is None or size is None:
            raise BlobUnknown(detail={"digest": digest})
        return rule, size

    async def _stored_size(self, digest: str) -> int | None:
        b = schema.blobs
        async with self.db.read_now() as conn:
            size = (
                await conn.execute(select(b.c.size).where(b.c.digest == digest))
            ).scalar_one_or_none()
        if size is None or await self.store.stat(digest) is None:
            return None
        return int(size)

    async def blob_size(self, repo: Repository, digest: str) -> int:
        """The size of a blob a cached manifest references (HEAD), not fetching it."""
        return (await self._cache_target(repo, digest))[1]

    async def open_blob(
        self,
        principal: Principal,
        repo: Repository,
        digest: str,
        context: RequestContext | None = None,
    ) -> BlobFill | None:
        """A blob the repository does not hold yet: a BlobFill when this request fetches it
        from the upstream (stream it), None once it is stored and linked (serve it from the
        store). BlobUnknown when no cached manifest of the repository references it."""
        rule, size = await self._cache_target(repo, digest)
        holder = f"{holder_id()}:{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + FILL_WAIT_SECONDS
        asked = False
        while True:
            stored = await self._stored_size(digest)
            if stored is not None:
                await self.blobs.link(repo, digest, stored)
                return None
            if not asked:
                await self._require(principal, "import", repo.registry_id, repo.name, context)
                asked = True
            if await fills.claim(self.db, repo.registry_id, digest, holder):
                if await self._stored_size(digest) is not None:  # finished just before
                    await fills.release(self.db, repo.registry_id, digest, holder)
                    continue
                return await self._start_fill(rule, repo, digest, size, holder)
            if time.monotonic() > deadline:
                raise UpstreamFailed(
                    f"timed out waiting for another pull's fetch of {digest} from "
                    f"{rule.upstream_url}",
                    detail={"digest": digest},
                )
            await asyncio.sleep(FILL_POLL_SECONDS)

    async def _start_fill(
        self, rule: Rule, repo: Repository, digest: str, size: int, holder: str
    ) -> BlobFill:
        try:
            client = await self.clients.get(rule)
            source = client.get_blob(rule.upstream_name(repo.name), digest, size=size)
        except Exception as exc:
            await fills.release(self.db, repo.registry_id, digest, holder)
            await self._blob_failed(rule, repo, digest, exc)
            raise
        tee = Tee(source, digest, fills.StoreSink(self.store, self.blobs, repo, digest))
        task = asyncio.ensure_future(self._supervise(tee, rule, repo, digest, holder))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return BlobFill(tee, size)

    async def _supervise(
        self, tee: Tee, rule: Rule, repo: Repository, digest: str, holder: str
    ) -> None:
        """Run the fill to its end, whoever reads it, and end the lease."""
        registry_id = repo.registry_id
        renewing = asyncio.ensure_future(fills.keep_renewing(self.db, registry_id, digest, holder))
        try:
            await tee.wait()
        except Exception as exc:
            log.warning("pull-through fetch of %s failed: %r", digest, exc)
            await self._blob_failed(rule, repo, digest, exc)
        finally:
            renewing.cancel()
            await fills.release(self.db, registry_id, digest, holder)

    async def _blob_failed(
        self, rule: Rule, repo: Repository, digest: str, exc: BaseException
    ) -> None:
        region = self.settings.region
        await failures.emit_failed(self.db, region, rule, repo.name, exc, layer=digest)


def _lease_name(registry_id: str, name: str, reference: str) -> str:
    """The lease on fetching one manifest (hashed: names and tags are too long for the
    lease table's key together)."""
    key = hashlib.sha256(f"{registry_id}/{name}:{reference}".encode()).hexdigest()[:40]
    return f"pull-through-manifest:{key}"


def _check_reference(reference: str) -> None:
    """A reference that is neither a tag nor a digest names nothing (ImageNotFound)."""
    try:
        if is_digest(reference):
            parse_digest(reference)
        else:
            validate_tag(reference)
    except DomainError:
        raise ImageNotFound(detail={"reference": reference}) from None
