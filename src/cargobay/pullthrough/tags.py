"""When a cached tag is asked of the upstream again: at most once per
`pull_through_recheck_seconds` (a row per repository and tag records the last check), and,
after a failed check, not before the upstream's Retry-After (at most a minute)."""

from __future__ import annotations

import time

from sqlalchemy import select

from cargobay.config import Settings
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert
from cargobay.registry.repositories import Repository

# After a failed tag re-check, how long the cached copy is served before asking again.
RETRY_SECONDS = 60.0


class TagChecks:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def fresh(self, repo: Repository | None, tag: str) -> bool:
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

    async def back_off(self, repo: Repository | None, tag: str, exc: Exception) -> None:
        """After a failed re-check, the cached copy is served without asking the upstream
        again for a while (its Retry-After, else at most a minute): an upstream that times
        out must not slow every pull down."""
        interval = self.settings.pull_through_recheck_seconds
        wait = getattr(exc, "retry_after", None) or RETRY_SECONDS
        await self.checked(repo, tag, time.time() - interval + min(wait, interval))

    async def checked(self, repo: Repository | None, tag: str, when: float | None = None) -> None:
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
