"""Online garbage collection: reclaim blobs no manifest references, while pushes go on.

Reference tracking lives in the database (`manifest_references`, `repository_blobs`), so GC is a
set of indexed queries, never a storage walk, and needs no read-only mode. A run reads only the
queue of candidates (`gc_queue`, jobs/gc_queue.py) that every path linking a blob or removing
a link or reference writes; `full` sweeps every table first. See docs/gc.md for the race
analysis; in short (the same conditions either way):

1. A repository link (`repository_blobs`) older than the grace period that no manifest of that
   repository references is removed. The removal re-checks the references inside its own write
   transaction after locking the link, and a manifest PUT checks its links inside its own write
   transaction, so one of the two always sees the other: the manifest is refused with
   MANIFEST_BLOB_UNKNOWN, or the link survives.
2. A blob row older than the grace period with no link and no reference left is deleted in a
   write transaction that re-checks both, and its bytes are deleted before that transaction
   commits (an orphan row is invisible, so a crash in between exposes nothing).
3. Upload sessions idle longer than their expiry are cancelled and their data dropped.
4. Encrypted copies (`blob_copies`, one per digest and KMS key) older than the grace period
   that no repository under that key links any more (so also every copy whose blob row step 2
   removed) are deleted the same way as blobs: the row re-checked and the bytes deleted inside
   one transaction. An upload that reuses an existing copy refreshes its time first and checks
   the copy is still there after linking, as uploads of plain blobs do. A copy under a
   destroyed key is unreadable by design and goes the same way once unlinked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import and_, exists, select, tuple_

from cargobay.jobs import gc_queue
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.storage import BlobStore

log = logging.getLogger("cargobay.gc")
BATCH = 500
ROWS_PER_WRITE = 32
DIGESTS_SHOWN = 100  # the report names this many digests; memory stays flat in the garbage


@dataclass
class GcReport:
    dry_run: bool
    links_removed: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    uploads_expired: int = 0
    copies_deleted: int = 0
    full: bool = False  # a sweep of every table, not only the queue
    queued: int = 0  # queue entries taken
    digests: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["digests"] = data["digests"][:DIGESTS_SHOWN]
        return data


def _unreferenced_link(now_cutoff: float):
    rb, mr = schema.repository_blobs, schema.manifest_references
    referenced = exists().where(
        mr.c.repository_id == rb.c.repository_id, mr.c.target_digest == rb.c.digest
    )
    return and_(rb.c.created_at < now_cutoff, ~referenced)


def _orphan_blob(now_cutoff: float):
    b, rb, mr = schema.blobs, schema.repository_blobs, schema.manifest_references
    return and_(
        b.c.created_at < now_cutoff,
        ~exists().where(rb.c.digest == b.c.digest),
        ~exists().where(mr.c.target_digest == b.c.digest),
    )


def _orphan_copy(now_cutoff: float):
    c, rb, r = schema.blob_copies, schema.repository_blobs, schema.repositories
    linked_under_key = exists().where(
        rb.c.digest == c.c.digest,
        r.c.id == rb.c.repository_id,
        r.c.encryption_type != "AES256",
        r.c.kms_key.endswith(c.c.key_id),
    )
    return and_(c.c.created_at < now_cutoff, ~linked_under_key)


async def _sweep(
    db: Database,
    table: Any,
    key: tuple[Any, ...],
    condition: Any,
    *,
    extra: tuple[Any, ...] = (),
    deleted: Callable[[Any], Awaitable[None]] | None = None,
) -> int:
    """Delete, batch by batch, the rows of `table` that match `condition`, in write
    transactions of up to ROWS_PER_WRITE rows that lock the rows (by their `key` columns) and
    delete those that still match: a fresh statement (and, on PostgreSQL, a fresh snapshot
    after the lock). `deleted(row)` (the key and `extra` columns) runs inside that transaction
    for each row it deleted, before it commits. Returns how many rows went. (Two statements
    and a commit per row cost about 1 ms per garbage blob; two statements per few dozen rows
    hold the writer for a few ms.)

    The candidates are read in key order, each batch after the last key of the one before, so
    one sweep reads the table once: time grows with the table once and with the garbage, not
    with their product (re-reading from the start skipped over every live row again per batch).
    A row that becomes garbage behind the cursor waits for the next run."""
    total = 0
    after: Any = None
    position = tuple_(*key) if len(key) > 1 else key[0]
    while True:
        query = select(*key, *extra).where(condition).order_by(*key).limit(BATCH)
        if after is not None:
            query = query.where(position > (tuple_(*after) if len(key) > 1 else after[0]))
        async with db.read() as conn:
            candidates = (await conn.execute(query)).all()
        if not candidates:
            return total
        after = tuple(candidates[-1])[: len(key)]
        for start in range(0, len(candidates), ROWS_PER_WRITE):
            chunk = candidates[start : start + ROWS_PER_WRITE]
            keys = [tuple(row)[: len(key)] for row in chunk]
            match = position.in_(keys if len(key) > 1 else [k[0] for k in keys])
            async with db.write() as conn:
                await conn.execute(select(key[0]).where(match).with_for_update())  # not SQLite
                statement = table.delete().where(match, condition).returning(*key)
                gone = {tuple(r) for r in await conn.execute(statement)}
                for row, row_key in zip(chunk, keys, strict=True):
                    if row_key in gone:
                        total += 1
                        if deleted is not None:
                            await deleted(row)
        if len(candidates) < BATCH:
            return total


async def collect(
    db: Database,
    store: BlobStore,
    *,
    grace: float,
    upload_expiry: float,
    dry_run: bool = False,
    now: float | None = None,
    full: bool = False,
) -> GcReport:
    """One GC run: from the queue of candidates (`gc_queue`), or, with `full`, a sweep of
    every table first (for garbage from before the queue, and as a safety net)."""
    now = time.time() if now is None else now
    cutoff = now - grace
    report = GcReport(dry_run=dry_run, full=full)
    u = schema.uploads

    if dry_run:
        await _dry_run(db, cutoff, report, full=full)
        async with db.read() as conn:
            report.uploads_expired = len(
                (
                    await conn.execute(select(u.c.id).where(u.c.updated_at < now - upload_expiry))
                ).all()
            )
        return report

    # 2. Blobs with neither links nor references. The bytes go inside the transaction that
    #    deletes the row: an upload of the same digest that skipped writing because the bytes
    #    were there records its row after this commit and then finds the bytes gone, so it
    #    fails cleanly instead of exposing a blob without bytes. A crash after the bytes went
    #    leaves only an orphan row nothing can see, which the next run removes.

    async def blob_gone(digest: str, row: Any) -> None:
        await store.delete(digest)
        report.blobs_deleted += 1
        report.bytes_freed += int(row.size)
        if len(report.digests) < DIGESTS_SHOWN:
            report.digests.append(digest)

    async def copy_gone(digest: str, row: Any) -> None:
        # Here, not at the top: a deployment without KMS repositories never loads it.
        from cargobay.storage.encrypted import stored_address

        address = stored_address(digest, row.key_id)
        report.bytes_freed += await store.stat(address) or 0
        await store.delete(address)
        report.copies_deleted += 1

    if full:
        rb, b, c = schema.repository_blobs, schema.blobs, schema.blob_copies
        # 1. Links nothing references any more.
        report.links_removed += await _sweep(
            db, rb, (rb.c.repository_id, rb.c.digest), _unreferenced_link(cutoff)
        )
        await _sweep(
            db,
            b,
            (b.c.digest,),
            _orphan_blob(cutoff),
            extra=(b.c.size,),
            deleted=lambda row: blob_gone(row.digest, row),
        )
        # 4. Encrypted copies no repository under their key links.
        await _sweep(
            db,
            c,
            (c.c.digest, c.c.key_id),
            _orphan_copy(cutoff),
            deleted=lambda row: copy_gone(row.digest, row),
        )

    # The queue: every candidate the delete, upload and mount paths wrote (after a full sweep,
    # what is left of it, so the queue does not grow).
    report.queued, links = await gc_queue.drain(
        db,
        cutoff,
        {"link": _unreferenced_link, "blob": _orphan_blob, "copy": _orphan_copy},
        blob_gone=blob_gone,
        copy_gone=copy_gone,
        batch=BATCH,
        per_write=ROWS_PER_WRITE,
    )
    report.links_removed += links

    # 3. Abandoned upload sessions.
    async with db.read() as conn:
        stale = [
            row.id
            for row in await conn.execute(
                select(u.c.id).where(u.c.updated_at < now - upload_expiry)
            )
        ]
    for upload_id in stale:
        async with db.write() as conn:
            result = await conn.execute(
                u.delete().where(u.c.id == upload_id, u.c.updated_at < now - upload_expiry)
            )
        if result.rowcount:
            await store.upload_delete(upload_id)
            report.uploads_expired += 1
    expire = getattr(store, "expire_uploads", None)
    if expire is not None:
        await expire(now - upload_expiry)

    log.info(
        "gc%s freed %d bytes in %d blobs, removed %d unused links and %d stale uploads",
        " --full" if full else "",
        report.bytes_freed,
        report.blobs_deleted,
        report.links_removed,
        report.uploads_expired,
    )
    return report


async def _dry_run(db: Database, cutoff: float, report: GcReport, *, full: bool) -> None:
    """What a run would free: blobs whose every link would go, with no reference; without
    `full`, among the queued candidates only."""
    rb, b, c = schema.repository_blobs, schema.blobs, schema.blob_copies
    links = _unreferenced_link(cutoff)
    blobs = and_(b.c.created_at < cutoff, ~exists().where(rb.c.digest == b.c.digest, ~links))
    blobs = and_(blobs, ~exists().where(schema.manifest_references.c.target_digest == b.c.digest))
    copies = _orphan_copy(cutoff)
    if not full:
        queued = gc_queue.queued_digests(cutoff)
        links = and_(links, gc_queue.queued_pair(cutoff))
        blobs = and_(blobs, b.c.digest.in_(queued))
        copies = and_(copies, c.c.digest.in_(queued))
    async with db.read() as conn:
        report.links_removed = len((await conn.execute(select(rb.c.digest).where(links))).all())
        rows = (await conn.execute(select(b.c.digest, b.c.size).where(blobs))).all()
        report.copies_deleted = len((await conn.execute(select(c.c.digest).where(copies))).all())
    report.blobs_deleted = len(rows)
    report.bytes_freed = sum(int(r.size) for r in rows)
    report.digests = [r.digest for r in rows[:DIGESTS_SHOWN]]
