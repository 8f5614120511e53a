"""One serving process: the aiohttp application, its services, and the job scheduler (the
start-up preparation that runs once before any worker is `cargobay.startup`).

Only processes that serve import this module: the supervisor in `server.py` stays small."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl

from aiohttp import web

from cargobay import gctune, logs, malloc
from cargobay.app import build_app
from cargobay.audit import record as audit_record
from cargobay.config import Settings
from cargobay.connections import ConnectionGuard, GuardedSite
from cargobay.events import jobs as event_jobs
from cargobay.jobs.leases import Scheduler
from cargobay.metadata.leases import node_holder
from cargobay.registry.services import Services
from cargobay.schedule import periodic_jobs, task_runner
from cargobay.sharedport import SharedPort
from cargobay.storage import direct


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context


# How much of a request body aiohttp buffers before it stops reading the socket. Its 64 KiB
# default pauses and resumes the socket (two epoll_ctl calls) every 128 KiB of an upload;
# 512 KiB measured faster on 1 GiB uploads, and with malloc.TRIM_BYTES still kept the page
# faults away (at 1 MiB, an upload's live buffers outgrew the trim threshold).
READ_BUFSIZE = 512 * 1024


async def _run_worker(
    settings: Settings, reuse_port: bool, slot: int, shared: SharedPort | None = None
) -> None:
    # The same holder id as the worker this one replaces, so it takes over that one's leases
    # (uploads a crash interrupted) at once.
    services = Services.build(settings, holder=node_holder(settings.data_dir, slot))
    app = build_app(services)
    guard = ConnectionGuard(
        max_per_ip=settings.max_connections_per_ip,
        header_timeout=settings.header_timeout_seconds,
        body_idle_timeout=settings.body_idle_timeout_seconds,
        trusted_proxies=settings.trusted_proxies,
    )
    # Upload buffers stay in the heap while uploads last, not for good.
    trimmer = malloc.Trimmer(before=[direct.release_staging]) if malloc.tuned() else None
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access"),
        handle_signals=False,
        read_bufsize=READ_BUFSIZE,
        keepalive_timeout=settings.keepalive_timeout_seconds,
    )
    await runner.setup()
    # The guard's and the trimmer's bookkeeping in the server's own request handler, around
    # the application's (cheaper per request than aiohttp middlewares: ConnectionGuard.wrap).
    server = runner.server
    assert server is not None
    server.request_handler = guard.wrap(server.request_handler, trimmer)
    site = GuardedSite(
        runner,
        guard,
        host=settings.host,
        port=settings.port,
        ssl_context=_ssl_context(settings),
        reuse_port=reuse_port,
        backlog=1024,
        shared=shared,
        slot=slot,
    )
    await site.start()
    guard.start()
    scheduler = tasks = deliverer = None
    if settings.jobs_enabled:
        scheduler = Scheduler(services.db, periodic_jobs(services), settings.jobs_tick_seconds)
        scheduler.start()
        tasks = task_runner(services)
        tasks.start()
        deliverer = event_jobs.deliverer(settings, services.db)
        deliverer.start()
    gctune.tune()  # everything start-up made lives as long as the worker
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if scheduler is not None:
        await scheduler.stop()
    if tasks is not None:
        await tasks.stop()
    if deliverer is not None:
        await deliverer.stop()
    await audit_record.close_all()  # write the buffered audit records
    await guard.stop()
    await runner.cleanup()


def worker_main(
    settings: Settings, reuse_port: bool, slot: int = 0, shared: SharedPort | None = None
) -> None:
    """Serve until SIGTERM; `slot` is this worker's place under the supervisor (0 to n-1)."""
    malloc.tune()
    logs.setup(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_worker(settings, reuse_port, slot, shared))
