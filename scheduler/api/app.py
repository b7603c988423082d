"""The aiohttp application: ``init_app(scheduler, settings)``, used by the server and the tests.

    request ─► front (front.py, the one middleware: request id; errors → Lambda's responses)
            │    ─► guard (guard.py: refuse a foreign Host or Origin — what browser pages send)
            │    ─► sigv4 (auth.py: only with --auth sigv4; no check at all otherwise)
            ─► health · invoke · functions · versions · concurrency · event_config  (one module per group)
            ─► GET /metrics (observability.py: Prometheus text from the server's own registry)

Background resources are owned by ``cleanup_ctx``, started in this order and stopped in the
reverse: the observers (metrics, log directory, lifecycle log; observability.py), the code
store (its folder), the Scheduler (started if it is not yet, and stopped: the application
owns it from here on), and the event dispatcher. On shutdown,
``on_shutdown`` marks the server as stopping first, so health answers 503 and no new Event is
accepted while in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from aiohttp import web

from ..config import ServerConfig
from ..engine.scheduler import Scheduler
from ..events import EventDispatcher, EventInvokeConfig, EventQueue, EventStore, MemoryEventStore, SqliteEventStore
from . import concurrency, event_config, event_list, functions, health, invoke, observability, versions
from .catalog import Catalog
from .codestore import CodeStore
from .front import front_middleware
from .guard import add_cors
from .keys import CATALOG, CODE_STORE, DISPATCHER, EVENT_QUEUE, REFUSALS, SCHEDULER, SETTINGS, STATE, ServerState
from .observability import OBSERVABILITY, Observability
from .refusals import Refusals

log = logging.getLogger("lambda_scheduler.events")


def init_app(
    scheduler: Scheduler,
    settings: ServerConfig | None = None,
    *,
    event_configs: Mapping[str, EventInvokeConfig] | None = None,
    event_store: EventStore | None = None,
    event_queue: EventQueue | None = None,
    dead_letters: Mapping[str, str] | None = None,
) -> web.Application:
    """The Lambda API over ``scheduler``. ``event_configs`` and ``dead_letters`` (function →
    DeadLetterConfig.TargetArn) are initial per-function Event settings (from a template);
    ``event_store`` replaces the store ``settings.data_dir`` chooses (SQLite there; in memory
    without one); ``event_queue`` replaces the queue itself (a cluster node's, on JetStream)."""
    settings = settings or ServerConfig()
    # Bodies are read by params.read_body under each operation's own limit; this only keeps
    # aiohttp's default (1 MiB) out of the way.
    refusals = Refusals()
    app = web.Application(
        middlewares=[front_middleware(settings, refusals)], client_max_size=functions.CODE_REQUEST_LIMIT + 1
    )
    add_cors(app, settings)
    app[REFUSALS] = refusals
    data_dir = None if settings.data_dir is None else Path(settings.data_dir).resolve()
    if event_queue is not None:
        queue = event_queue
    else:
        queue = EventQueue(event_store if event_store is not None else _store(data_dir))
    app[SCHEDULER] = scheduler
    app[SETTINGS] = settings
    app[STATE] = ServerState()
    app[CATALOG] = Catalog(scheduler.settings.account_id)
    app[CODE_STORE] = CodeStore(settings.code_store_dir)
    app[EVENT_QUEUE] = queue
    app[DISPATCHER] = EventDispatcher(
        scheduler, queue, settings, event_configs, dead_letters=dead_letters, data_dir=data_dir
    )
    # Observers are attached now, so the Scheduler's first environments are seen.
    app[OBSERVABILITY] = observed = Observability(scheduler, settings, queue)
    app.cleanup_ctx.extend([observed.lifetime, _code_store, _scheduler, _dispatcher])
    app.on_shutdown.append(_mark_stopping)
    for module in (health, invoke, functions, versions, concurrency, event_config, event_list):
        app.add_routes(module.routes)
    if settings.metrics:
        app.add_routes(observability.routes)  # GET /metrics (Prometheus)
    return app


def _store(data_dir: Path | None) -> EventStore:
    if data_dir is None:
        return MemoryEventStore()
    # The events hold every function's payloads: only the server's user may read them.
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    return SqliteEventStore(data_dir / "events.sqlite3")


async def _code_store(app: web.Application) -> AsyncIterator[None]:
    store = app[CODE_STORE]
    store.open()
    try:
        yield
    finally:
        store.close()  # after the Scheduler stopped: no environment uses the code any more


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    scheduler = app[SCHEDULER]
    await scheduler.start()
    for name in scheduler.functions:
        for fn in scheduler.versions(name):
            app[CATALOG].record(fn)  # LastModified of a template's functions: when they were loaded
    try:
        yield
    finally:
        await scheduler.stop()


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    """The event store is opened here, before the first request: every event it holds
    unfinished (pending, retrying, or running when a server stopped) is delivered again."""
    queue, dispatcher = app[EVENT_QUEUE], app[DISPATCHER]
    recovered = await queue.open()
    if recovered:
        log.info("%d unfinished event invocations found in the store; delivering them", recovered)
    dispatcher.start()
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        try:
            await dispatcher.stop(loop.time() + app[SCHEDULER].settings.drain_timeout_s)
        finally:
            await queue.close()


async def _mark_stopping(app: web.Application) -> None:
    app[STATE].stopping = True
