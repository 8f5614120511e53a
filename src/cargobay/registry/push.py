"""The push of a manifest, the one path every door and the registry's own pushes take: the
size limit, one parse and one hash, the reference checks under lock, tag immutability, and
the push hooks (events, replication, scans, signing), all in one write transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cargobay.errors import (
    ImageAlreadyExists,
    ImageDigestDoesNotMatch,
    ImageTagAlreadyExists,
    LayersNotFound,
    PayloadTooLarge,
    ReferencedImagesNotFound,
)
from cargobay.iam.principal import Principal
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.records import manifests as records
from cargobay.metadata.records import tags as tag_records
from cargobay.oci.digest import compute, parse_digest
from cargobay.oci.manifest import ParsedManifest, parse_manifest
from cargobay.oci.names import validate_tag
from cargobay.registry.encryption import Encryption, sealed_row
from cargobay.registry.hooks import CLIENT, Hooks, Pushed, ReplicaSource
from cargobay.registry.pushgroup import PushGroup
from cargobay.registry.repositories import Repository


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: str
    subject: str | None
    created: bool
    media_type: str


class ManifestPush:
    """`put_image` and its transaction's steps (`ManifestService` adds the reads)."""

    def __init__(
        self,
        db: Database,
        max_manifest_bytes: int,
        hooks: Hooks | None = None,
        encryption: Encryption | None = None,
    ) -> None:
        self.db = db
        self.max_manifest_bytes = max_manifest_bytes
        self.hooks = hooks or Hooks()
        self.encryption = encryption
        self._group = PushGroup(db)

    async def put_image(
        self,
        repo: Repository,
        payload: bytes,
        media_type: str | None,
        digest: str | None = None,
        tag: str | None = None,
        *,
        refuse_existing: bool = False,
        origin: str = CLIENT,
        lazy_blobs: bool = False,
        replica_of: ReplicaSource | None = None,
        pusher: Principal | None = None,
        parsed: ParsedManifest | None = None,
    ) -> PutResult:
        """Store a manifest exactly as pushed and point `tag` at it, in one transaction.

        The one push path of every door: the size limit is checked here and nowhere else, the
        payload is parsed once and hashed once (with `digest`'s algorithm when one is given),
        every reference is checked, and on an immutable repository a tag that names another
        manifest fails the whole call, leaving nothing behind. With `refuse_existing` (ECR's
        PutImage), the same manifest already under `tag` is ImageAlreadyExists, decided in the
        same transaction as the write. The push hooks (events, replication, scans) run inside
        that transaction too; `origin` tells them who pushed (replication does not chain), and
        `replica_of` where a replica from another deployment came from, `pusher` who pushed.
        With `lazy_blobs` (the pull-through cache), the blobs
        need not be linked yet: the cache fetches each from the upstream when it is first
        pulled; child manifests must still be stored first. `parsed`: what
        `parse_manifest(payload, media_type)` returned, when the caller parsed it already.
        """
        if len(payload) > self.max_manifest_bytes:
            raise PayloadTooLarge(
                f"manifest is {len(payload)} bytes; the limit is {self.max_manifest_bytes}",
                detail={"size": len(payload), "limit": self.max_manifest_bytes},
            )
        if tag is not None:
            validate_tag(tag)
        algorithm = parse_digest(digest).algorithm if digest is not None else "sha256"
        if parsed is None:
            parsed = parse_manifest(payload, media_type)
        actual = compute(payload, algorithm)
        if digest is not None and actual != digest:
            raise ImageDigestDoesNotMatch(
                f"manifest digest {actual} does not match the digest given, {digest}",
                detail={"digest": digest, "actual": actual},
            )
        annotations = json.dumps(parsed.annotations) if parsed.annotations else None
        stored, annotations = await sealed_row(self.encryption, repo, actual, payload, annotations)

        async def transaction(conn: Conn) -> PutResult:
            created, settings = await self._insert(
                conn, repo, actual, parsed, payload, stored, annotations, lazy_blobs
            )
            # A tag can name the manifest only if the repository held it already: a new
            # image needs no look at the tag (the raise undoes nothing, nothing was written).
            if (
                tag is not None
                and refuse_existing
                and not created
                and await tag_records.digest_of(conn, repo.id, tag) == actual
            ):
                raise ImageAlreadyExists(
                    f"Image with digest '{actual}' and tag '{tag}' already exists in the "
                    f"repository with name '{repo.name}' in registry with id "
                    f"'{repo.registry_id}'",
                    detail={"digest": actual, "tag": tag},
                )
            if tag is not None:
                await self._set_tag(conn, repo, tag, actual)
            subject = parsed.subject.digest if parsed.subject else None
            pushed = Pushed(
                repo,
                actual,
                tag,
                parsed.media_type,
                parsed.artifact_type,
                subject,
                created,
                origin,
                replica_of,
                pusher,
                # Built with what the blob check read, so the hooks need not copy the event.
                {} if settings is None else settings,
            )
            await self.hooks.pushed(conn, pushed, settings)
            return PutResult(actual, subject, created, parsed.media_type)

        # Answered only once the transaction holding it has committed (maybe shared with
        # this process's other pushes: `registry.pushgroup`).
        return await self._group.run(transaction)

    async def _insert(
        self,
        conn: Conn,
        repo: Repository,
        digest: str,
        parsed: ParsedManifest,
        payload: bytes,
        stored: bytes,
        annotations: str | None,
        lazy_blobs: bool = False,
    ) -> tuple[bool, Mapping[str, Any] | None]:
        """Insert the manifest row (`stored` and `annotations`: sealed under the repository's
        KMS key if it has one) and its references after checking they exist: whether the
        repository did not hold it yet, and the push hooks' settings when the blob check
        read them with the links (`Hooks.widened`; else None, and the hooks read them)."""
        blob_refs = {d.digest: d for d in parsed.blob_references()}
        child_refs = {d.digest: d for d in parsed.manifests}
        settings = None
        if blob_refs and not lazy_blobs:
            # Locked for share: GC either waits for this push or this push sees a link gone.
            hooks = self.hooks if self.hooks.push_reads else None
            rows = await records.linked_blob_rows(
                conn,
                repo.id,
                list(blob_refs),
                hooks.widened if hooks else None,
                hooks.settings_params(repo.registry_id) if hooks else None,
            )
            if rows and hooks:
                settings = hooks.settings_of(rows[0])
            present = {row.digest for row in rows}
            missing = [d for d in blob_refs if d not in present]
            if missing:
                raise LayersNotFound(
                    f"Layers with digests '{missing}' required for pushing image into "
                    f"repository with name '{repo.name}' in registry with id "
                    f"'{repo.registry_id}' do not exist",
                    detail={"digest": missing[0]},
                )
        if child_refs:
            present = await records.present(conn, repo.id, list(child_refs))
            missing = [d for d in child_refs if d not in present]
            if missing:
                raise ReferencedImagesNotFound(
                    f"manifest references an unknown manifest {missing[0]} in the repository "
                    f"with name '{repo.name}' in registry with id '{repo.registry_id}'",
                    detail={"digest": missing[0]},
                )
        # ECR's imageSizeInBytes: config + layers; for an index, its largest child image.
        image_size = sum(d.size for d in blob_refs.values())
        if child_refs:
            image_size = await records.largest_image(conn, repo.id, list(child_refs))
        created = await records.insert(
            conn,
            repo.id,
            digest,
            blobs=list(blob_refs),
            children=list(child_refs),
            media_type=parsed.media_type,
            artifact_type=parsed.artifact_type,
            subject_digest=parsed.subject.digest if parsed.subject else None,
            annotations=annotations,
            size=len(payload),
            image_size=image_size,
            content=stored,
        )
        return created, settings

    async def _set_tag(self, conn: Conn, repo: Repository, tag: str, digest: str) -> None:
        if repo.mutability.is_immutable(tag):
            # Insert-if-absent, then compare: two racing first pushes of one tag cannot both
            # win, on any backend.
            if await tag_records.insert_if_absent(conn, repo.id, tag, digest):
                return
            if await tag_records.digest_of(conn, repo.id, tag) != digest:
                raise ImageTagAlreadyExists(
                    f"The image tag '{tag}' already exists in the '{repo.name}' repository "
                    "and cannot be overwritten because the "
                    + ("repository" if repo.tag_mutability == "IMMUTABLE" else "tag")
                    + " is immutable.",
                    detail={"tag": tag},
                )
            return
        await tag_records.put(conn, repo.id, tag, digest)
