"""``lambda-scheduler serve``: a Scheduler for a template's functions behind the Lambda API.

    cli.py ─► load_template ─► serve(): Scheduler + init_app ─► aiohttp site on host:port
                                  prints the URL when ready; SIGTERM / SIGINT ─► graceful stop

A stop closes the listening socket, lets in-flight requests finish (up to the drain timeout),
stops the event dispatcher, then the Scheduler, which shuts every environment down and leaves
no process behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from typing import TextIO

from aiohttp import web

from . import connections
from .api import init_app
from .config import SchedulerConfig, ServerConfig
from .scheduler import Scheduler
from .template import Template

log = logging.getLogger("lambda_scheduler.server")


def url_of(runner: web.AppRunner, host: str) -> str:
    """The address actually bound (port 0 means the kernel chose one)."""
    port = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def setup_logging(level: str, stream: TextIO = sys.stderr) -> None:
    """Server messages with time and level; function logs exactly as Lambda writes them."""
    logging.basicConfig(level=level.upper(), stream=stream, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    function_log = logging.getLogger("lambda_scheduler.function")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    function_log.addHandler(handler)
    function_log.propagate = False


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


def settings_for(template: Template, scheduler_config: SchedulerConfig) -> SchedulerConfig:
    """The settings to serve ``template`` with: its folder is a private root of every
    environment's view, so a function sees nothing of it but its own code and layers."""
    return scheduler_config.replace(private_paths=(*scheduler_config.private_paths, str(template.path.parent)))


async def serve(
    template: Template,
    scheduler_config: SchedulerConfig,
    server_config: ServerConfig,
    ready: Callable[[str], None],
) -> None:
    """Serve until SIGTERM or SIGINT. ``ready(url)`` is called once requests are accepted."""
    scheduler = Scheduler(template.functions, config=settings_for(template, scheduler_config))
    app = init_app(scheduler, server_config, event_configs=template.event_configs)
    access_log = logging.getLogger("aiohttp.access") if server_config.log_level == "debug" else None
    runner = make_runner(app, server_config, shutdown_timeout=scheduler_config.drain_timeout_s, access_log=access_log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await start_site(runner, server_config)
        ready(url_of(runner, server_config.host))
        await stop.wait()
        log.info("stopping: finishing in-flight invocations")
    finally:
        await runner.cleanup()
        await scheduler.stop()  # in case setup failed before the application owned it
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
