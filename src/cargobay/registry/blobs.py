"""Blobs as repositories see them: a blob is visible in a repository once linked to it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from cargobay.errors import BlobUnknown
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import insert_ignore, upsert
from cargobay.registry.repositories import Repository
from cargobay.storage import BlobStore


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: str
    size: int


class BlobService:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

    async def stat(self, repo: Repository, digest: str) -> BlobInfo:
        """Size of a blob linked to the repository, or BLOB_UNKNOWN."""
        b, rb = schema.blobs, schema.repository_blobs
        async with self.db.read_now() as conn:
            row = (
                await conn.execute(
                    select(b.c.size)
                    .join(rb, rb.c.digest == b.c.digest)
                    .where(rb.c.repository_id == repo.id, rb.c.digest == digest)
                )
            ).first()
        if row is None:
            raise BlobUnknown(detail={"digest": digest})
        return BlobInfo(digest, int(row.size))

    def local_path(self, digest: str) -> Path | None:
        return self.store.local_path(digest)

    async def link(self, repo: Repository, digest: str, size: int) -> None:
        """Record committed bytes and make them visible in the repository (idempotent)."""
        now = time.time()
        async with self.db.write() as conn:
            await insert_ignore(conn, schema.blobs, digest=digest, size=size, created_at=now)
            await insert_ignore(
                conn, schema.repository_blobs, repository_id=repo.id, digest=digest, created_at=now
            )

    async def mount(self, source: Repository, target: Repository, digest: str) -> BlobInfo | None:
        """Link a blob another repository holds; None when the source does not have it.

        The check and the link are one write transaction (the blob row locked on PostgreSQL),
        so garbage collection cannot remove the blob in between; re-mounting refreshes the
        link's time, restarting its grace period."""
        b, rb = schema.blobs, schema.repository_blobs
        async with self.db.write() as conn:
            query = (
                select(b.c.size)
                .join(rb, rb.c.digest == b.c.digest)
                .where(rb.c.repository_id == source.id, rb.c.digest == digest)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(read=True, of=b)
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            await upsert(
                conn,
                rb,
                ["repository_id", "digest"],
                repository_id=target.id,
                digest=digest,
                created_at=time.time(),
            )
        return BlobInfo(digest, int(row.size))

    async def unlink(self, repo: Repository, digest: str) -> None:
        """Remove a blob from a repository; garbage collection reclaims unused bytes later."""
        rb = schema.repository_blobs
        async with self.db.write() as conn:
            result = await conn.execute(
                rb.delete().where(rb.c.repository_id == repo.id, rb.c.digest == digest)
            )
        if not result.rowcount:
            raise BlobUnknown(detail={"digest": digest})
