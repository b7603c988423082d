"""One node's part in the cluster, as ``serve`` starts and stops it: the link, the queue on
JetStream, the heartbeat and GET /cluster."""

from __future__ import annotations

import logging

from aiohttp import web

from ..api.keys import DISPATCHER
from ..api.observability import OBSERVABILITY
from ..engine.scheduler import Scheduler
from . import nodes
from .events import ClusterEventQueue
from .forward import WarmRouter
from .limits import ClusterLimits
from .link import ClusterLink
from .registry import Registry

log = logging.getLogger("lambda_scheduler.cluster")


class ClusterNode:
    def __init__(self, link: ClusterLink, scheduler: Scheduler) -> None:
        self.link = link
        self.scheduler = scheduler
        self.queue = ClusterEventQueue(link, scheduler)
        self.heartbeat = nodes.Heartbeat(link, scheduler)
        self.limits = ClusterLimits(link, self.heartbeat)
        self.registry = Registry(link, scheduler)
        self.router = WarmRouter(link, scheduler, self.heartbeat, self.queue.holds)
        self.heartbeat.details = lambda: {
            "warm": self.router.warm,
            "forwarded": self.router.forwarded,
            "served": self.router.served,
            "declined": self.router.declined,
        }

    @classmethod
    async def join(cls, url: str, node: str | None, scheduler: Scheduler) -> ClusterNode:
        """Connect, and share the limits from the first invocation on."""
        link = await ClusterLink.connect(url, node)
        joined = cls(link, scheduler)
        await joined.heartbeat.open()
        await joined.limits.start()
        await joined.registry.open()
        scheduler.gate = joined.limits
        scheduler.router = joined.router
        log.info("node %s joined the cluster at %s", link.node, url)
        return joined

    def attach(self, app: web.Application) -> None:
        """After init_app (made with ``event_queue=self.queue``): size pulls by its dispatcher."""
        self.queue.bind(app[DISPATCHER])
        nodes.add_routes(app, self.heartbeat)
        self.registry.bind(app)
        app.middlewares.append(self.registry.middleware)  # innermost: sees each answer as sent
        metrics = app[OBSERVABILITY].metrics
        if metrics is not None:
            metrics.const_labels["node"] = self.link.node  # one Prometheus tells the nodes apart

    async def listening(self, url: str) -> None:
        self.heartbeat.url = url
        await self.heartbeat.start()
        self.router.start()
        self.registry.start(url)

    async def leave(self) -> None:
        self.scheduler.gate = None
        self.scheduler.router = None
        await self.router.stop()
        await self.registry.stop()
        await self.limits.stop()
        await self.heartbeat.stop()
        await self.link.close()
