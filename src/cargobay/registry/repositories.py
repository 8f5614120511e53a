"""Repositories: lookup, creation on first push, and the catalog."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import insert_ignore
from cargobay.oci.errors import NameUnknown
from cargobay.oci.names import validate_name


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    registry_id: str
    name: str
    created_at: float
    tag_mutability: str = "MUTABLE"

    @property
    def immutable_tags(self) -> bool:
        return self.tag_mutability == "IMMUTABLE"


_COLUMNS = (
    schema.repositories.c.id,
    schema.repositories.c.registry_id,
    schema.repositories.c.name,
    schema.repositories.c.created_at,
    schema.repositories.c.tag_mutability,
)


class RepositoryService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def find(self, registry_id: str, name: str) -> Repository | None:
        r = schema.repositories
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(*_COLUMNS).where(r.c.registry_id == registry_id, r.c.name == name)
                )
            ).first()
        return None if row is None else Repository(*row)

    async def get(self, registry_id: str, name: str) -> Repository:
        validate_name(name)
        repo = await self.find(registry_id, name)
        if repo is None:
            raise NameUnknown(detail={"name": name})
        return repo

    async def create(
        self, registry_id: str, name: str, *, tag_mutability: str = "MUTABLE"
    ) -> tuple[Repository, bool]:
        """Create a repository; returns it and whether this call created it."""
        validate_name(name)
        async with self.db.write() as conn:
            result = await insert_ignore(
                conn,
                schema.repositories,
                registry_id=registry_id,
                name=name,
                created_at=time.time(),
                tag_mutability=tag_mutability,
                scan_on_push=False,
                encryption_type="AES256",
            )
        repo = await self.find(registry_id, name)
        assert repo is not None
        return repo, bool(result.rowcount)

    async def get_for_push(self, registry_id: str, name: str, create_on_push: bool) -> Repository:
        validate_name(name)
        repo = await self.find(registry_id, name)
        if repo is not None:
            return repo
        if not create_on_push:
            raise NameUnknown(detail={"name": name})
        return (await self.create(registry_id, name))[0]

    async def list_names(self, registry_id: str, last: str | None, limit: int | None) -> list[str]:
        """Names in lexical order after `last`; one indexed range scan."""
        r = schema.repositories
        query = select(r.c.name).where(r.c.registry_id == registry_id).order_by(r.c.name)
        if last:
            query = query.where(r.c.name > last)
        if limit is not None:
            query = query.limit(limit)
        async with self.db.read() as conn:
            return [row.name for row in await conn.execute(query)]
