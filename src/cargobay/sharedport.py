"""The supervisor's half of `cargobay.balance`: the listening socket every worker inherits, and
the shared array where each worker publishes how many connections it holds. Standard library
only (the supervisor stays small)."""

from __future__ import annotations

import multiprocessing
import socket
from dataclasses import dataclass

BACKLOG = 1024
VACANT = 2**30  # a slot whose worker is not accepting (starting, stopping, dead)


def listen(host: str, port: int) -> socket.socket | None:
    """The listening socket every worker accepts from (made before they are forked); None
    when `host` names more than one address (the workers then bind their own, as asyncio
    does for such a host, with SO_REUSEPORT)."""
    found = {
        (family, address[:2])
        for family, _type, _proto, _name, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    }
    if len(found) != 1:
        return None
    ((family, address),) = found
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # as asyncio's create_server: IPv6 only
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Counts:
    """Each worker's open connections, in memory shared by the workers (one slot each). A slot
    is `VACANT` until its worker accepts: a worker starting, stopping or dead holds no
    connection back from the others."""

    def __init__(self, workers: int) -> None:
        self._slots = multiprocessing.get_context("fork").RawArray("i", [VACANT] * workers)

    def set(self, slot: int, value: int) -> None:
        self._slots[slot] = value

    def vacate(self, slot: int) -> None:
        self._slots[slot] = VACANT

    def mine_is_least(self, slot: int) -> bool:
        """True when no worker holds fewer connections than `slot` does."""
        slots = self._slots
        return slots[slot] <= min(slots)


@dataclass(frozen=True)
class SharedPort:
    """What the supervisor hands each worker it forks."""

    sock: socket.socket
    counts: Counts
