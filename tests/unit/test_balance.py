"""Connections spread over workers sharing one listening socket (`cargobay.balance`): each
worker takes a connection only while no other holds fewer, and a worker that is not
accepting (its slot vacant) holds none back."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cargobay.balance import Acceptor
from cargobay.sharedport import Counts, listen


class _Held(asyncio.Protocol):
    """A connection a worker holds until the test ends."""

    def __init__(self, held: list[asyncio.BaseTransport]) -> None:
        self.held = held

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.held.append(transport)


def test_counts_name_the_least_busy_and_ignore_vacant_slots() -> None:
    counts = Counts(3)
    counts.set(0, 4)
    assert counts.mine_is_least(0)  # slots 1 and 2 are vacant
    counts.set(1, 2)
    assert not counts.mine_is_least(0)
    assert counts.mine_is_least(1)
    counts.set(0, 2)
    assert counts.mine_is_least(0) and counts.mine_is_least(1)  # a tie: both accept
    counts.vacate(1)
    assert counts.mine_is_least(0)


async def _connect_all(port: int, how_many: int, accepted: list[list[asyncio.BaseTransport]]):
    clients = []
    for expected in range(1, how_many + 1):
        reader_writer = await asyncio.open_connection("127.0.0.1", port)
        clients.append(reader_writer[1])
        for _ in range(500):  # until a worker has taken it
            if sum(len(held) for held in accepted) == expected:
                break
            await asyncio.sleep(0.01)
    return clients


def test_two_workers_take_turns_and_end_even() -> None:
    async def scenario() -> tuple[int, int]:
        sock = listen("127.0.0.1", 0)
        assert sock is not None
        port = sock.getsockname()[1]
        counts = Counts(2)
        held: list[list[asyncio.BaseTransport]] = [[], []]
        acceptors = [
            Acceptor(
                sock if slot == 0 else sock.dup(),  # as two processes would: two descriptors
                counts,
                slot,
                lambda slot=slot: _Held(held[slot]),
                lambda slot=slot: len(held[slot]),
            )
            for slot in (0, 1)
        ]
        for acceptor in acceptors:
            acceptor.start()
        clients = await _connect_all(port, 10, held)
        split = len(held[0]), len(held[1])
        for acceptor in acceptors:
            acceptor.close()
        for writer in clients:
            writer.close()
        for transports in held:
            for transport in transports:
                transport.close()
        for acceptor in acceptors:
            acceptor.sock.close()
        return split

    assert asyncio.run(scenario()) == (5, 5)


def test_a_worker_alone_takes_every_connection() -> None:
    """The other slot is vacant (its worker starting or dead): nothing waits for it."""

    async def scenario() -> int:
        sock = listen("127.0.0.1", 0)
        assert sock is not None
        counts = Counts(2)
        held: list[list[asyncio.BaseTransport]] = [[], []]
        acceptor = Acceptor(sock, counts, 0, lambda: _Held(held[0]), lambda: len(held[0]))
        acceptor.start()
        clients = await _connect_all(sock.getsockname()[1], 6, held)
        taken = len(held[0])
        acceptor.close()
        for writer in clients:
            writer.close()
        for transport in held[0]:
            transport.close()
        sock.close()
        return taken

    assert asyncio.run(scenario()) == 6


def test_listen_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(OSError):
            listen("127.0.0.1", taken.getsockname()[1])


def test_a_host_of_several_addresses_gets_no_shared_socket() -> None:
    """All interfaces ("" : IPv4 and IPv6) or a name with several addresses: the workers
    bind their own sockets, as before."""
    assert listen("", 0) is None or not socket.has_ipv6
