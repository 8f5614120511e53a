"""Random request and event ids in the form AWS gives them (a version 4 UUID's text).

`str(uuid.uuid4())` builds a `UUID` object (an int, range checks, then the text from the int);
every AWS API call makes two such ids (its request id, its audit record's event id). The same
16 random bytes with the same version and variant bits, formatted straight from their hex,
cost about a quarter as much and are indistinguishable to a reader.

The random bytes come from `os.urandom` as `uuid4` takes them, but for 256 ids at a time:
one system call each, not one per id. The ids not yet handed out are dropped in a forked
child (`os.register_at_fork`), so two workers never share one; `list.pop` hands each out once
whatever thread asks.
"""

from __future__ import annotations

import os

_BATCH = 256
_ready: list[bytes] = []


def _refill() -> None:
    pool = os.urandom(16 * _BATCH)
    _ready.extend([pool[i : i + 16] for i in range(0, len(pool), 16)])


def _forget() -> None:
    _ready.clear()


os.register_at_fork(after_in_child=_forget)


def random16() -> bytes:
    """16 random bytes from the operating system's generator (drawn `_BATCH` at a time): the
    random part of every request id and audit event id (`audit.cloudtrail.new_event_id`)."""
    try:
        return _ready.pop()
    except IndexError:
        _refill()
        return _ready.pop()


def new_id() -> str:
    """A random UUID (version 4, RFC 4122 variant), as `str(uuid.uuid4())` writes it."""
    raw = bytearray(random16())
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant 10xx
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
