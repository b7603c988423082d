"""``lambda-scheduler serve``: a Scheduler for a template's functions behind the Lambda API.

    cli.py ─► load_template ─► serve(): Scheduler + init_app ─► aiohttp site on host:port
                                  prints the URL when ready; SIGTERM / SIGINT ─► graceful stop
                                  --watch: watch.py reloads a function whose code changed
                                  --cluster: events on JetStream, heartbeats (scheduler/cluster/)

A stop closes the listening socket, stops the event dispatcher taking events, gives in-flight
invocations one drain budget, then ends the rest (the Scheduler shuts every environment down and
leaves no process behind). Accepted events live in the data dir's store across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from aiohttp import web

from . import connections, invocation_log, log_writer
from .api import init_app
from .api.keys import CATALOG, DISPATCHER, STATE
from .config import SchedulerConfig, ServerConfig
from .engine.scheduler import Scheduler
from .template import Template
from .watch import CodeWatcher

log = logging.getLogger("lambda_scheduler.server")

DATA_DIR_NAME = ".lambda-scheduler"


def url_of(runner: web.AppRunner, host: str) -> str:
    """The address actually bound (port 0 means the kernel chose one)."""
    port = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def setup_logging(level: str, stream: TextIO = sys.stderr) -> None:
    """Server messages with time and level; function logs exactly as Lambda writes them. Both
    go through one batching writer (log_writer.py) when ``stream`` has a file descriptor, so
    the lines logged within a tick cost one write."""
    server_format = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    function_format = logging.Formatter("%(message)s")
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    server_handler: logging.Handler
    function_handler: logging.Handler
    if fd is None:
        server_handler, function_handler = logging.StreamHandler(stream), logging.StreamHandler(stream)
    else:
        stream.flush()  # what was printed before goes out before what is batched
        writer = log_writer.install(fd)
        server_handler, function_handler = log_writer.BatchedHandler(writer), log_writer.BatchedHandler(writer)
    server_handler.setFormatter(server_format)
    function_handler.setFormatter(function_format)
    logging.basicConfig(level=level.upper(), handlers=[server_handler])
    function_log = logging.getLogger("lambda_scheduler.function")
    function_log.addHandler(function_handler)
    function_log.propagate = False
    if isinstance(function_handler, log_writer.BatchedHandler):
        invocation_log.write_directly(function_handler)


def make_runner(
    app: web.Application,
    server_config: ServerConfig,
    *,
    shutdown_timeout: float = 30.0,
    access_log: logging.Logger | None = None,
) -> web.AppRunner:
    """The runner of ``serve``, with its keep-alive limit (connections.py adds the others)."""
    return web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        access_log=access_log,
        keepalive_timeout=server_config.keepalive_timeout_s,
    )


async def start_site(runner: web.AppRunner, server_config: ServerConfig) -> connections.ConnectionGuard:
    """Set the runner up, guard its connections (header deadline, cap), start listening."""
    await runner.setup()
    assert runner.server is not None
    guarded = connections.guard(runner.server, server_config.header_timeout_s, server_config.max_connections)
    site = web.TCPSite(runner, server_config.host, server_config.port)
    await site.start()
    return guarded


def settings_for(
    template: Template, scheduler_config: SchedulerConfig, data_dir: Path | None = None
) -> SchedulerConfig:
    """The settings to serve ``template`` with: its folder (and the data dir, which holds every
    function's events) is a private root of every environment's view, so a function sees
    nothing of it but its own code and layers."""
    private = [str(template.path.parent)]
    if data_dir is not None:
        private.append(str(data_dir))
    return scheduler_config.replace(private_paths=(*scheduler_config.private_paths, *private))


def data_dir_for(template: Template, server_config: ServerConfig) -> Path:
    """``--data-dir``, or ``.lambda-scheduler/`` beside the template (as ``sam`` keeps ``.aws-sam/``)."""
    if server_config.data_dir is not None:
        return Path(server_config.data_dir).resolve()
    return template.path.parent / DATA_DIR_NAME


# aiohttp's own shutdown, once the Scheduler has answered every invocation: only responses
# already written are still being sent, so it needs a moment, not the drain budget again.
HTTP_SHUTDOWN_S = 0.5


async def serve(
    template: Template,
    scheduler_config: SchedulerConfig,
    server_config: ServerConfig,
    ready: Callable[[str], None],
    load: Callable[[], Template] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT. ``ready(url)`` is called once requests are accepted.

    One drain budget: on the first signal the listener closes, no Event is accepted, and the
    invocations in flight get ``drain_timeout_s`` in all; those still running are then ended
    (their clients get a 503 ServiceException) and every environment is shut down. Queued
    events stay in the store. A second signal exits at once.

    With ``server_config.watch``, code changes reload functions (watch.py) and ``load`` reads
    the template again when it changes (None: a change is only reported)."""
    data_dir = data_dir_for(template, server_config)
    server_config = server_config.replace(data_dir=data_dir)
    scheduler = Scheduler(
        template.functions,
        config=settings_for(template, scheduler_config, data_dir),
        after_start=template.publish,
    )
    cluster = None
    if server_config.cluster is not None:
        from .cluster.node import ClusterNode  # nats-py: needed only in cluster mode

        cluster = await ClusterNode.join(server_config.cluster, server_config.node_name, scheduler)
    app = init_app(
        scheduler,
        server_config,
        event_configs=template.event_configs_by_qualifier(),
        dead_letters=template.dead_letters,
        event_queue=None if cluster is None else cluster.queue,
    )
    if cluster is not None:
        cluster.attach(app)
    access_log = logging.getLogger("aiohttp.access") if server_config.log_level == "debug" else None
    runner = make_runner(app, server_config, shutdown_timeout=HTTP_SHUTDOWN_S, access_log=access_log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if server_config.watch:
        written = [p for p in (data_dir, server_config.log_dir, server_config.code_store_dir) if p is not None]
        watcher = CodeWatcher(scheduler, template, load=load, exclude=written, reloaded=_new_code(app, scheduler))
    try:
        await start_site(runner, server_config)
        if watcher is not None:
            watcher.start()
        if cluster is not None:
            await cluster.listening(url_of(runner, server_config.host))
        ready(url_of(runner, server_config.host))
        await stop.wait()
        log_writer.flush_installed()  # what was logged before the signal reaches the sink now
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _exit_now, sig)
        log.info("stopping: in-flight invocations get %g s", scheduler_config.drain_timeout_s)
        for site in list(runner.sites):
            await site.stop()  # no new connections; open ones get 503s from here on
        app[STATE].stopping = True
        await app[DISPATCHER].halt()
        await scheduler.stop(drain_timeout=scheduler_config.drain_timeout_s)
    finally:
        if watcher is not None:
            watcher.close()
        await runner.cleanup()
        await scheduler.stop(drain_timeout=0)  # in case setup failed before the application owned it
        if cluster is not None:
            await cluster.leave()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _new_code(app: web.Application, scheduler: Scheduler) -> Callable[[str], None]:
    """What a reload by --watch changes in what the API reports, as UpdateFunctionCode would:
    CodeSha256 and CodeSize (hashed again when next asked), RevisionId, LastModified."""

    def changed(name: str) -> None:
        status = scheduler.functions.get(name)
        if status is not None:
            record = app[CATALOG].record(status)
            record.code = None
            record.touch()

    return changed


def _exit_now(sig: int) -> None:
    """A second signal: the operator does not want to wait. Environments die with the
    process (parent-death signals); its cgroups and code-store folder are left behind."""
    log.warning("%s again: exiting at once", signal.Signals(sig).name)
    logging.shutdown()
    os._exit(128 + sig)
