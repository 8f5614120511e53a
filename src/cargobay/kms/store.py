"""The KMS tables: finding a key by any of its names, and its material versions.

Every lookup reads the key's row, so a state change (disable, schedule deletion) made by any
worker or node applies to the next operation everywhere. Only opened material is cached in
process, keyed by (key id, version): material never changes once written, and a destroyed
key's row is gone, so the cache can never make a shredded key usable again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cargobay.kms.errors import NotFoundException
from cargobay.kms.model import KeyRecord, KeyRef, alias_arn, key_arn
from cargobay.metadata import schema

K, M, A = schema.kms_keys, schema.kms_key_materials, schema.kms_aliases


async def find_key(conn: Any, ref: KeyRef) -> KeyRecord:
    """The key a parsed KeyId names, or NotFoundException worded as AWS words it."""
    if ref.alias is not None:
        row = (
            await conn.execute(
                select(K)
                .select_from(K.join(A, A.c.key_id == K.c.id))
                .where(
                    A.c.account_id == ref.account_id,
                    A.c.region == ref.region,
                    A.c.name == ref.alias,
                )
            )
        ).first()
        if row is None:
            arn = alias_arn(ref.region, ref.account_id, ref.alias)
            raise NotFoundException(f"Alias {arn} is not found.")
        return KeyRecord.from_row(row)
    assert ref.key_id is not None
    row = (
        await conn.execute(
            select(K).where(
                K.c.id == ref.key_id, K.c.account_id == ref.account_id, K.c.region == ref.region
            )
        )
    ).first()
    if row is None:
        raise NotFoundException(
            f"Key '{key_arn(ref.region, ref.account_id, ref.key_id)}' does not exist"
        )
    return KeyRecord.from_row(row)


async def find_key_by_id(conn: Any, key_id: str) -> KeyRecord | None:
    row = (await conn.execute(select(K).where(K.c.id == key_id))).first()
    return None if row is None else KeyRecord.from_row(row)


async def material_row(conn: Any, key_id: str, version: int) -> Any:
    return (
        await conn.execute(
            select(M.c.sealed, M.c.material_id, M.c.public_key).where(
                M.c.key_id == key_id, M.c.version == version
            )
        )
    ).first()


async def current_material_id(conn: Any, key: KeyRecord) -> str | None:
    row = await material_row(conn, key.id, key.current_version)
    return None if row is None else row.material_id


class MaterialCache:
    """Opened material per (key id, version), bounded; see the module docstring."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._items: dict[tuple[str, int], bytes] = {}

    def get(self, key_id: str, version: int) -> bytes | None:
        return self._items.get((key_id, version))

    def put(self, key_id: str, version: int, material: bytes) -> None:
        if len(self._items) >= self._limit:
            self._items.pop(next(iter(self._items)))
        self._items[(key_id, version)] = material

    def forget(self, key_id: str) -> None:
        for item in [k for k in self._items if k[0] == key_id]:
            del self._items[item]
