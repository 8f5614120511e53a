"""`cargobay serve`: prepare the data directory and database once, then run one worker process
per core, each with its own event loop and database pool, all accepting from one listening
socket the supervisor made (`cargobay.balance` spreads the connections evenly). A worker that
dies is replaced.

The supervisor imports only the standard library and the settings: each worker imports the
application after it is forked. A supervisor that preloaded aiohttp and SQLAlchemy would carry
their ~40 MiB for nothing, since it never serves a request. For the same reason `cargobay
serve` execs `python -m cargobay.server` once it has the settings (handed over on a pipe): the
command line's modules (click, every command group) would otherwise stay in the supervisor and
in every worker forked from it, about 8 MiB resident in each of the three processes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import time

from cargobay import logs
from cargobay.config import Settings
from cargobay.metadata.errors import SchemaOutOfDate
from cargobay.sharedport import Counts, SharedPort, listen

log = logging.getLogger("cargobay")


def _worker(
    settings: Settings, reuse_port: bool, slot: int = 0, shared: SharedPort | None = None
) -> None:
    # The fork inherited the supervisor's handlers, which would only note a SIGTERM and let a
    # worker still starting up run on until the supervisor's 15-second SIGKILL. Until the
    # worker's event loop takes over these signals (worker.py), they end it at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from cargobay.worker import worker_main

    worker_main(settings, reuse_port, slot, shared)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _prepare_in_child(settings: Settings) -> None:
    """Run `prepare` in a short-lived child process, so the supervisor and the workers it
    forks never carry Alembic and the migration machinery in memory."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        try:
            from cargobay.startup import prepare_sync

            prepare_sync(settings)
        except SchemaOutOfDate as exc:
            send.send(("schema", str(exc)))
        except BaseException as exc:
            send.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            send.send(("ok", ""))

    proc = context.Process(target=child)
    proc.start()
    outcome = receive.recv() if receive.poll(timeout=600) else ("error", "start-up timed out")
    proc.join()
    kind, message = outcome
    if kind == "schema":
        raise SchemaOutOfDate(message)
    if kind != "ok":
        raise RuntimeError(f"start-up failed: {message}")


def serve(settings: Settings) -> None:
    logs.setup(settings.log_level)
    _prepare_in_child(settings)
    if settings.port == 0:
        from dataclasses import replace

        settings = replace(settings, port=_free_port(settings.host))
    scheme = "https" if settings.tls_cert else "http"
    count = settings.worker_count
    log.info(
        "cargobay listening on %s://%s:%d with %d worker%s (data in %s)",
        scheme,
        settings.host,
        settings.port,
        count,
        "" if count == 1 else "s",
        settings.data_dir.resolve(),
    )
    if count == 1:
        _worker(settings, reuse_port=False)
        return
    _supervise(settings, count)


def _supervise(settings: Settings, count: int) -> None:
    context = multiprocessing.get_context("fork")
    stopping = False
    workers: list[multiprocessing.process.BaseProcess] = []
    # One listening socket for all, connections spread by `cargobay.balance` (SO_REUSEPORT
    # only for a host name with several addresses).
    sock = listen(settings.host, settings.port)
    shared = SharedPort(sock, Counts(count)) if sock is not None else None

    def start(slot: int) -> multiprocessing.process.BaseProcess:
        # A replacement keeps its slot: it takes over the leases the dead worker held.
        if shared is not None:
            shared.counts.vacate(slot)
        args = (settings, shared is None, slot, shared)
        proc = context.Process(target=_worker, args=args, daemon=True)
        proc.start()
        return proc

    def shutdown(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers:
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    workers.extend(start(slot) for slot in range(count))
    while not stopping:
        time.sleep(0.5)
        for i, proc in enumerate(workers):
            if not proc.is_alive() and not stopping:
                log.error("worker %s exited with %s; starting a new one", proc.pid, proc.exitcode)
                workers[i] = start(i)
    deadline = time.monotonic() + 15
    for proc in workers:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()


def exec_supervisor(settings: Settings) -> None:
    """Replace this process with `python -m cargobay.server`, which serves `settings`.

    The settings travel pickled through a pipe whose read end the new program inherits (never
    a file or the command line: they may hold the deployment's secret key)."""
    data = pickle.dumps(settings)
    if len(data) > 60_000:  # more than a pipe holds before a reader drains it
        raise RuntimeError("settings too large to hand over")
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    os.set_inheritable(read, True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "cargobay.server", "--settings-fd", str(read)])


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--settings-fd":
        print(
            "usage: python -m cargobay.server --settings-fd N (run `cargobay serve`)",
            file=sys.stderr,
        )
        return 2
    with os.fdopen(int(argv[1]), "rb") as handover:
        settings = pickle.load(handover)  # our own parent wrote it, through a pipe
    try:
        serve(settings)
    except SchemaOutOfDate as exc:
        print(f"cargobay: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
