"""Blobs through the cache: a blob a cached manifest references but the store lacks is
fetched once across workers and nodes (a lease in the database, `metadata.leases`) and streamed
to the client while it is stored (`upstream.tee`); concurrent pullers wait for it and are then
served from the store. A failed fetch emits the FAILED cache event (`failures`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

from cargobay import regions
from cargobay.errors import BlobUnknown, ImageArchived, UpstreamFailed
from cargobay.iam.authz import RequestContext
from cargobay.iam.principal import Principal
from cargobay.metadata.leases import LeaseBusy
from cargobay.metadata.records import blobs as blob_records
from cargobay.metadata.records import manifests as manifest_records
from cargobay.metadata.records.archives import ARCHIVED
from cargobay.oci.digest import parse_digest
from cargobay.oci.manifest import parse_manifest
from cargobay.pullthrough import failures, fills
from cargobay.pullthrough.parts import CacheParts
from cargobay.pullthrough.rules import Rule, find_rule
from cargobay.registry.encryption import opened
from cargobay.registry.repositories import Repository
from cargobay.upstream.tee import Tee

log = logging.getLogger("cargobay.pullthrough")

# How long a puller waits for another worker's fetch of the same blob before giving up.
FILL_WAIT_SECONDS = 600.0
FILL_POLL_SECONDS = 0.1


async def wait_for_other_fetch(
    deadline: float, what: str, rule: Rule, detail: dict[str, str]
) -> None:
    """Let another pull's fetch of `what` (a blob or a manifest, whose lease it holds) go on
    for a poll interval; UpstreamFailed once it has taken past `deadline` (monotonic)."""
    if time.monotonic() > deadline:
        raise UpstreamFailed(
            f"timed out waiting for another pull's fetch of {what} from {rule.upstream_url}",
            detail=detail,
        )
    await asyncio.sleep(FILL_POLL_SECONDS)


@dataclass
class BlobFill:
    """A blob being fetched from the upstream by this request: stream `tee` to the client."""

    tee: Tee
    size: int


class BlobFills:
    def __init__(self, parts: CacheParts) -> None:
        self.db = parts.db
        self.leases = parts.leases
        self.store = parts.store
        self.blobs = parts.blobs
        self.clients = parts.clients
        self.access = parts.access
        self._background: set[asyncio.Task[None]] = set()

    async def _referenced_size(self, repo: Repository, digest: str) -> int | None:
        """The size a cached manifest of the repository gives the blob; None when none
        references it (the cache fetches only what its images need). Read for the cache's own
        use: no pull of the manifest is recorded."""
        async with self.db.read_now() as conn:
            row = await manifest_records.referencing_blob(conn, repo.id, digest)
        if row is None:
            return None
        if row.archive_status == ARCHIVED:  # as a pull of that image is refused
            raise ImageArchived(
                f"the image {row.digest} in repository '{repo.name}' is archived: its blobs "
                "are not fetched; restore it with UpdateImageStorageClass",
                detail={"digest": digest},
            )
        content = row.content
        if repo.kms_key_id is not None:  # sealed under the repository's key (a template's)
            content = await opened(self.blobs.encryption, repo.registry_id, row.digest, content)
        for descriptor in parse_manifest(content, row.media_type).blob_references():
            if descriptor.digest == digest:
                return descriptor.size
        return None

    async def _cache_target(self, repo: Repository, digest: str) -> tuple[Rule, int]:
        parse_digest(digest)
        rule = await find_rule(self.db, repo.registry_id, repo.name, repo.region_key)
        size = None if rule is None else await self._referenced_size(repo, digest)
        if rule is None or size is None:
            raise BlobUnknown(detail={"digest": digest})
        return rule, size

    async def _stored_size(self, repo: Repository, digest: str) -> int | None:
        async with self.db.read_now() as conn:
            size = await blob_records.stored_size(conn, digest)
        if size is None or not await self.blobs.held(repo, digest):
            return None
        return size

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
        lease = blob_lease_name(repo.registry_id, digest)
        deadline = time.monotonic() + FILL_WAIT_SECONDS
        asked = False
        while True:
            stored = await self._stored_size(repo, digest)
            if stored is not None:
                await self.blobs.adopt(repo, digest, stored)
                return None
            if not asked:
                await self.access.require(principal, "import", repo.registry_id, repo.name, context)
                asked = True
            try:
                token = await self.leases.acquire(lease)
            except LeaseBusy:
                token = None
            if token is not None:
                if await self._stored_size(repo, digest) is not None:  # finished just before
                    await self.leases.release(lease, token)
                    continue
                return await self._start_fill(rule, repo, digest, size, lease, token)
            await wait_for_other_fetch(deadline, digest, rule, {"digest": digest})

    async def _start_fill(
        self, rule: Rule, repo: Repository, digest: str, size: int, lease: str, token: str
    ) -> BlobFill:
        try:
            client = await self.clients.get(rule)
            source = client.get_blob(rule.upstream_name(repo.name), digest, size=size)
        except Exception as exc:
            await self.leases.release(lease, token)
            await self._blob_failed(rule, repo, digest, exc)
            raise
        # get_blob verifies the digest (raising before the last chunk): the tee need not.
        sink = fills.StoreSink(self.store, self.blobs, repo, digest)
        tee = Tee(source, digest, sink, verify=False)
        task = asyncio.ensure_future(self._supervise(tee, rule, repo, digest, lease, token))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return BlobFill(tee, size)

    async def _supervise(
        self, tee: Tee, rule: Rule, repo: Repository, digest: str, lease: str, token: str
    ) -> None:
        """Run the fill to its end, whoever reads it, renewing the lease, and end it."""
        renewing = asyncio.ensure_future(self._keep(lease, token))
        try:
            await tee.wait()
        except Exception as exc:
            log.warning("pull-through fetch of %s failed: %r", digest, exc)
            await self._blob_failed(rule, repo, digest, exc)
        finally:
            renewing.cancel()
            try:
                await self.leases.release(lease, token)
            except Exception:
                log.exception("releasing the lease on %s failed; it will expire", lease)

    async def _keep(self, lease: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.leases.renew_every)
            with contextlib.suppress(Exception):
                await self.leases.renew(lease, token)

    async def _blob_failed(
        self, rule: Rule, repo: Repository, digest: str, exc: BaseException
    ) -> None:
        region = regions.current(self.access.settings.region)
        await failures.emit_failed(self.db, region, rule, repo.name, exc, layer=digest)


def blob_lease_name(registry_id: str, digest: str) -> str:
    """The lease on fetching one blob for one registry (hashed: a sha512 digest alone is
    longer than the lease table's key)."""
    key = hashlib.sha256(f"{registry_id}/{digest}".encode()).hexdigest()[:40]
    return f"pull-through-blob:{key}"
