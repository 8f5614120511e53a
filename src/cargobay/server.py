"""`cargobay serve`: prepare the data directory and database once, then run one worker process
per core, each with its own event loop and database pool, all accepting on the same port
(SO_REUSEPORT lets the kernel spread connections). A worker that dies is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import ssl
import time

from aiohttp import web

from cargobay import logs
from cargobay.app import build_app
from cargobay.config import Settings
from cargobay.iam.bootstrap import ensure_admin
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.secrets import load_box
from cargobay.jobs.leases import Scheduler
from cargobay.jobs.schedule import periodic_jobs
from cargobay.metadata.db import Database, SchemaOutOfDate
from cargobay.registry.services import Services

log = logging.getLogger("cargobay")


async def prepare(settings: Settings) -> None:
    """Create the data directory, schema and administrator credential (idempotent). Raises
    SchemaOutOfDate when the schema is behind and may not be upgraded here."""
    from cargobay.metadata import migrations  # Alembic: loaded only where schemas change

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    await migrations.ensure(settings.database_url, upgrade_schema=settings.upgrade_on_start)
    db = Database(settings.database_url)
    try:
        store = CredentialStore(db, load_box(settings.secret_key, settings.data_dir))
        await ensure_admin(
            store,
            settings.account_id,
            settings.credentials_file,
            settings.admin_access_key_id,
            settings.admin_secret_access_key,
        )
    finally:
        await db.dispose()


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context


async def _run_worker(settings: Settings, reuse_port: bool) -> None:
    services = Services.build(settings)
    app = build_app(services)
    runner = web.AppRunner(
        app, access_log=logging.getLogger("aiohttp.access"), handle_signals=False
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.host,
        settings.port,
        ssl_context=_ssl_context(settings),
        reuse_port=reuse_port,
        backlog=1024,
    )
    await site.start()
    scheduler = None
    if settings.jobs_enabled:
        scheduler = Scheduler(services.db, periodic_jobs(services), settings.jobs_tick_seconds)
        scheduler.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if scheduler is not None:
        await scheduler.stop()
    await runner.cleanup()


def worker_main(settings: Settings, reuse_port: bool) -> None:
    logs.setup(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_worker(settings, reuse_port))


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
            asyncio.run(prepare(settings))
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
        worker_main(settings, reuse_port=False)
        return
    _supervise(settings, count)


def _supervise(settings: Settings, count: int) -> None:
    context = multiprocessing.get_context("fork")
    stopping = False
    workers: list[multiprocessing.process.BaseProcess] = []

    def start() -> multiprocessing.process.BaseProcess:
        proc = context.Process(target=worker_main, args=(settings, True), daemon=True)
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
    workers.extend(start() for _ in range(count))
    while not stopping:
        time.sleep(0.5)
        for i, proc in enumerate(workers):
            if not proc.is_alive() and not stopping:
                log.error("worker %s exited with %s; starting a new one", proc.pid, proc.exitcode)
                workers[i] = start()
    deadline = time.monotonic() + 15
    for proc in workers:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
