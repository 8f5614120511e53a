"""The credentials generation: one row every process reads before trusting a remembered key.

Every change that can make a remembered access key wrong (a key deactivated, re-activated or
deleted, a user deleted, the administrator key re-installed) writes a new random value to the
`credentials-epoch` row of `server_keys`, in the same transaction as the change. A process
remembers a key's row together with the generation it read *before* reading the row, and uses
it only while the generation is still that value. So a deactivated key is refused by every
worker and node from the first request after the change commits, and a remembered row costs one
tiny indexed read instead of the join of `access_keys` and `users`.

The read is `metadata.generations`' (a few microseconds on a SQLite file; on PostgreSQL one
primary-key SELECT). Nothing here caches a decision: the signature is still checked, and
authorization still runs, on every request.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from cargobay.metadata import generations
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database

EPOCH_KEY = "credentials-epoch"

T = TypeVar("T")


class Generation(generations.GenerationReader):
    """Reads the current credentials generation (None before any change was ever made)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, EPOCH_KEY)


async def bump(conn: Conn) -> None:
    """Start a new generation, inside the caller's write transaction (see the module's note)."""
    await generations.bump(conn, EPOCH_KEY)


class Remembered(Generic[T]):
    """A bounded LRU of values per access key id, each valid only in the generation it was read
    in. Holds what was read from the database (a key's row), never whether a request was
    allowed."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str | None, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key_id: str, generation: str | None) -> T | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if entry[0] != generation:
            del self._entries[key_id]
            return None
        self._entries.move_to_end(key_id)
        return entry[1]

    def peek(self, key_id: str) -> T | None:
        """The value last put for the key, in whatever generation (kept, not moved)."""
        entry = self._entries.get(key_id)
        return None if entry is None else entry[1]

    def put(self, key_id: str, generation: str | None, value: T) -> None:
        self._entries[key_id] = (generation, value)
        self._entries.move_to_end(key_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, *key_ids: str) -> None:
        for key_id in key_ids:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        self._entries.clear()
