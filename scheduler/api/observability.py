"""What the server attaches to its Scheduler to be watched: ``GET /metrics``, the log
directory and the lifecycle log.

    init_app ─► Observability(scheduler, settings, queue)
                  ├─ Metrics (its own registry) ◄── GET /metrics
                  ├─ LogDir            (--log-dir)
                  └─ LifecycleLog
                  all attached to scheduler.observers at once, detached on cleanup

The observers are attached when the application is made, so the provisioned Inits that
start with the Scheduler are counted. ``lifetime`` is the first of the application's
cleanup contexts: it checks the log directory before anything starts, and closes the files
only after the Scheduler has stopped, so the last environments' shutdowns are recorded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..config import ServerConfig
from ..engine.observer import Observer
from ..engine.scheduler import Scheduler
from ..events import EventQueue
from ..lifecycle_log import LifecycleLog
from ..logdir import LogDir
from ..metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("lambda_scheduler.server")
routes = web.RouteTableDef()


class Observability:
    def __init__(self, scheduler: Scheduler, settings: ServerConfig, queue: EventQueue) -> None:
        self.scheduler = scheduler
        self.metrics = Metrics(scheduler, queue) if settings.metrics else None
        self.log_dir = LogDir(settings.log_dir) if settings.log_dir is not None else None
        self.observers: list[Observer] = [LifecycleLog()]
        if self.metrics is not None:
            self.observers.append(self.metrics.observer)
        if self.log_dir is not None:
            self.observers.append(self.log_dir)
        for observer in self.observers:
            scheduler.observers.add(observer)

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        if self.log_dir is not None:
            self.log_dir.open()
            log.info("writing function logs under %s", self.log_dir.root)
        try:
            yield
        finally:
            members = self.scheduler.observers.members
            for observer in self.observers:
                if observer in members:
                    members.remove(observer)
            if self.log_dir is not None:
                await self.log_dir.close()


OBSERVABILITY = web.AppKey("observability", Observability)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text exposition format, version 0.0.4."""
    registry = request.app[OBSERVABILITY].metrics
    assert registry is not None  # the route exists only when metrics are on
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE})
