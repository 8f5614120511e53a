"""Manifests and tags: the read path both front doors share, tag listing and the referrers
API, on top of the push (`registry.push`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cargobay import regions
from cargobay.errors import DomainError, ImageArchived, ImageNotFound
from cargobay.metadata.db import Database
from cargobay.metadata.records import manifests as records
from cargobay.metadata.records import tags as tag_records
from cargobay.oci.digest import is_digest, parse_digest
from cargobay.oci.manifest import OCI_INDEX
from cargobay.oci.names import validate_tag
from cargobay.registry.archive import ARCHIVED
from cargobay.registry.deletes import ImageRef, check_refs, named_digest
from cargobay.registry.encryption import Encryption, key_id_of, opened
from cargobay.registry.hooks import Hooks
from cargobay.registry.pulls import PullLookup
from cargobay.registry.pulltime import PullTimeExclusions
from cargobay.registry.push import ManifestPush
from cargobay.registry.referrers import Referrer, list_referrers
from cargobay.registry.repositories import Repository

log = logging.getLogger("cargobay.manifests")

# Pulls refresh `last_pulled_at` at most this often per image, so reads stay reads.
PULL_TIME_RESOLUTION = 3600.0
# Pull-time records this process remembers having written, at most.
RECORDED_PULLS = 10_000


@dataclass(frozen=True, slots=True)
class Manifest:
    digest: str
    media_type: str
    content: bytes
    repository_id: int = 0


def _refuse_archived(row: Any, repo_name: str, reference: str) -> None:
    """ImageArchived for a manifest in the archive storage class (pulls, scans, replication
    and BatchGetImage refuse it alike)."""
    if row.archive_status == ARCHIVED:
        raise ImageArchived(
            f"the image {row.digest} in repository '{repo_name}' is archived and cannot be "
            "pulled; restore it with UpdateImageStorageClass (targetStorageClass STANDARD)",
            detail={"reference": reference, "digest": row.digest},
        )


def _named(refs: Sequence[ImageRef], results: list[Any], tagged: dict[str, str]) -> dict[int, str]:
    """The digest each checked reference of a batch names (by position); a reference that
    names none gets its error in `results`."""
    named: dict[int, str] = {}
    for i, ref in enumerate(refs):
        if results[i] is None:
            try:
                named[i] = named_digest(ref, tagged)
            except DomainError as exc:
                results[i] = exc
    return named


def _check_reference(reference: str) -> None:
    if is_digest(reference):
        parse_digest(reference)
    else:
        validate_tag(reference)


class ManifestService(ManifestPush):
    """Manifests and tags: the pushes (`registry.push`) and the reads."""

    def __init__(
        self,
        db: Database,
        max_manifest_bytes: int,
        hooks: Hooks | None = None,
        encryption: Encryption | None = None,
    ) -> None:
        super().__init__(db, max_manifest_bytes, hooks, encryption)
        self._background: set[asyncio.Task[None]] = set()
        self.pull_exclusions = PullTimeExclusions(db)
        # (repository id, digest) -> when this process last recorded its pull time.
        self._recorded: dict[tuple[int, str], float] = {}

    async def get(
        self, repo_registry_id: str, repo_name: str, reference: str, puller: str | None = None
    ) -> Manifest:
        """A manifest by tag or digest in one indexed query (repository included), or
        ImageArchived when it is in the archive storage class (pulls, scans, replication). A
        reference that is neither a valid tag nor a valid digest names nothing: ImageNotFound,
        as Distribution and Zot answer a GET for it (a PUT still refuses such a tag). A pull
        by `puller` (a principal ARN) records the pull time unless the registry excludes it."""
        try:
            _check_reference(reference)
        except DomainError:
            raise ImageNotFound(detail={"reference": reference}) from None
        async with self.db.read_now() as conn:
            row = await records.for_pull(
                conn,
                repo_registry_id,
                repo_name,
                reference,
                by_digest=is_digest(reference),
                region=regions.current_key(),
            )
        return await self._served(repo_registry_id, repo_name, reference, row, puller)

    async def serve(self, found: PullLookup, puller: str | None = None) -> Manifest:
        """`get` of a pull lookup's row (`registry.pulls`): no statement of its own."""
        resource = found.policies.resource
        row = found.row if found.row.digest is not None else None
        return await self._served(
            resource.account_id, resource.name or "", found.reference, row, puller
        )

    async def _served(
        self, registry_id: str, repo_name: str, reference: str, row: Any, puller: str | None
    ) -> Manifest:
        if row is None:
            raise ImageNotFound(detail={"reference": reference})
        _refuse_archived(row, repo_name, reference)
        await self._record_pulls(registry_id, row.repository_id, [row], puller)
        content = row.content
        if key_id_of(row.encryption_type, row.kms_key) is not None:
            content = await opened(self.encryption, registry_id, row.digest, content)
        return Manifest(row.digest, row.media_type, content, row.repository_id)

    async def get_batch(
        self, repo: Repository, refs: Sequence[ImageRef], puller: str | None = None
    ) -> list[Manifest | DomainError]:
        """`get` for many images of one repository (BatchGetImage), each named by tag,
        digest or both: per reference, its manifest or the domain error `get` (or the
        reference's own check) gives. Two queries whatever the batch's size: the tags, then
        the manifests; the pulls are recorded as `get` records them."""
        results: list[Manifest | DomainError | None] = list(check_refs(refs))
        async with self.db.read() as conn:
            tags = [ref.tag for i, ref in enumerate(refs) if results[i] is None and ref.tag]
            tagged = await tag_records.digests_of(conn, repo.id, tags)
            named = _named(refs, results, tagged)
            rows = await records.many_for_pull(conn, repo.id, list(named.values()))
        return await self._batch_served(repo, results, named, rows, puller)

    async def serve_batch(
        self,
        repo: Repository,
        refs: Sequence[ImageRef],
        tagged: dict[str, str],
        rows: dict[str, Any],
        puller: str | None = None,
    ) -> list[Manifest | DomainError]:
        """`get_batch` on what the caller's statement read (`registry.ecrreads`): the digest
        of every existing tag of `refs`, and the manifest rows (`many_for_pull`'s columns) of
        every digest they name; no statement of its own."""
        results: list[Manifest | DomainError | None] = list(check_refs(refs))
        named = _named(refs, results, tagged)
        return await self._batch_served(repo, results, named, rows, puller)

    async def _batch_served(
        self,
        repo: Repository,
        results: list[Manifest | DomainError | None],
        named: dict[int, str],
        rows: dict[str, Any],
        puller: str | None,
    ) -> list[Manifest | DomainError]:
        pulled = []
        for i, digest in named.items():
            row = rows.get(digest)
            try:
                if row is None:
                    raise ImageNotFound(detail={"reference": digest})
                _refuse_archived(row, repo.name, digest)
            except DomainError as exc:
                results[i] = exc
                continue
            pulled.append(row)
        await self._record_pulls(repo.registry_id, repo.id, pulled, puller)
        opened_rows: dict[str, Manifest] = {}
        for row in pulled:
            if row.digest not in opened_rows:
                content = row.content
                if repo.kms_key_id is not None:
                    content = await opened(self.encryption, repo.registry_id, row.digest, content)
                opened_rows[row.digest] = Manifest(
                    row.digest, row.media_type, content, row.repository_id
                )
        for i, digest in named.items():
            if results[i] is None:
                results[i] = opened_rows[digest]
        return [result for result in results if result is not None]

    async def _record_pulls(
        self, registry_id: str, repository_id: int, rows: Sequence[Any], puller: str | None
    ) -> None:
        """Record the pull of the `rows` whose last record is older than the resolution, in
        the background. Exclusions are read only when a record is due (at most once per
        image per resolution), and before the answer, so an excluded pull leaves no write
        behind it."""
        now = time.time()
        stale = now - PULL_TIME_RESOLUTION
        due = sorted(
            {
                row.digest
                for row in rows
                if (row.last_pulled_at is None or row.last_pulled_at < stale)
                and self._recorded.get((repository_id, row.digest), stale) <= stale
            }
        )
        if due and not await self.pull_exclusions.excluded(registry_id, puller):
            # Remembered here too: the pulls of a burst that arrive before the write lands
            # neither read the exclusions nor write again.
            if len(self._recorded) > RECORDED_PULLS:
                self._recorded.clear()
            self._recorded.update(((repository_id, digest), now) for digest in due)
            self._spawn(self._record_pull(repository_id, due, now))

    async def list_tags(self, repo: Repository, last: str | None, limit: int | None) -> list[str]:
        """Tag names in lexical order after `last`: an index range scan, any repo size."""
        async with self.db.read_now() as conn:
            return await tag_records.list_names(conn, repo.id, last, limit)

    async def referrer_list(
        self,
        repo: Repository,
        digest: str,
        artifact_types: Sequence[str] = (),
        statuses: Sequence[str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[Referrer]:
        """Manifests whose subject is `digest` (see `registry.referrers`)."""
        return await list_referrers(
            self.db, self.encryption, repo, digest, artifact_types, statuses, after, limit
        )

    async def referrers(self, repo: Repository, digest: str, artifact_type: str | None) -> bytes:
        """The OCI image index of manifests whose subject is `digest`."""
        descriptors = []
        for found in await self.referrer_list(
            repo, digest, (artifact_type,) if artifact_type else ()
        ):
            entry: dict[str, Any] = {
                "mediaType": found.media_type,
                "digest": found.digest,
                "size": found.size,
            }
            if found.artifact_type:
                entry["artifactType"] = found.artifact_type
            if found.annotations:
                entry["annotations"] = found.annotations
            descriptors.append(entry)
        return json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        ).encode()

    async def count(self, repo: Repository) -> int:
        async with self.db.read() as conn:
            return await records.count(conn, repo.id)

    # -- bookkeeping off the request path --------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _record_pull(self, repository_id: int, digests: list[str], when: float) -> None:
        try:
            async with self.db.write() as conn:
                await records.record_pull(conn, repository_id, digests, when)
        except Exception:  # a lost pull timestamp must never fail or slow a pull
            log.exception("could not record pull time of %s", ", ".join(digests))
            for digest in digests:  # the next pull tries again
                self._recorded.pop((repository_id, digest), None)
