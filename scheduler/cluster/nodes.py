"""Which nodes are alive: each puts a heartbeat under its name in a KV bucket every
BEAT_EVERY_S; the bucket's TTL removes the key of a node that stopped beating (killed, cut
off), so every other node sees it gone within NODE_TTL_S. GET /cluster lists them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import nats.js.errors
from aiohttp import web
from nats.js import api
from nats.js.kv import KeyValue

from ..engine.scheduler import Scheduler
from .link import NODE_BUCKET, ClusterLink

log = logging.getLogger("lambda_scheduler.cluster")

BEAT_EVERY_S = 1.0
NODE_TTL_S = 5.0


class Heartbeat:
    def __init__(self, link: ClusterLink, scheduler: Scheduler) -> None:
        self.link = link
        self.scheduler = scheduler
        self.url: str | None = None  # the node's API address, once it listens
        self.started_at = time.time()
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self._live: set[str] = set()  # nodes with a heartbeat at the last look
        self.details: Callable[[], dict[str, Any]] = dict  # more of this node's state to publish

    def live(self) -> set[str]:
        return self._live

    async def open(self) -> None:
        self._kv = await self.link.js.create_key_value(api.KeyValueConfig(bucket=NODE_BUCKET, ttl=NODE_TTL_S))
        await self.refresh()

    async def start(self) -> None:
        """Beat from now on (the node listens: its URL is known)."""
        await self.beat()
        self._task = asyncio.ensure_future(self._run())

    async def refresh(self) -> None:
        assert self._kv is not None
        try:
            self._live = set(await self._kv.keys())
        except nats.js.errors.NoKeysError:
            self._live = set()

    def record(self) -> dict[str, Any]:
        statuses = list(self.scheduler.functions.values())
        return {
            "node": self.link.node,
            "url": self.url,
            "started_at": self.started_at,
            "beat_at": time.time(),
            "in_flight": sum(s.in_flight for s in statuses),
            "functions": sorted(s.name for s in statuses),
            **self.details(),
        }

    async def beat(self) -> None:
        assert self._kv is not None
        await self._kv.put(self.link.node, json.dumps(self.record()).encode())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(BEAT_EVERY_S)
            try:
                await self.beat()
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS away for a moment: the next beat tries again
                log.debug("heartbeat: %s", exc)

    async def nodes(self) -> list[dict[str, Any]]:
        """Every node with a live heartbeat, by name."""
        assert self._kv is not None
        try:
            keys = await self._kv.keys()
        except nats.js.errors.NoKeysError:
            return []
        found = []
        for key in sorted(keys):
            try:
                entry = await self._kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue  # expired between the listing and the read
            if entry.value:
                found.append(json.loads(entry.value))
        return found

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._kv is not None:
            try:
                await self._kv.delete(self.link.node)  # leaving: the others see it gone at once
            except Exception as exc:  # noqa: BLE001 - leaving anyway: the TTL removes it
                log.debug("heartbeat delete: %s", exc)


HEARTBEAT = web.AppKey("cluster_heartbeat", Heartbeat)


async def get_cluster(request: web.Request) -> web.Response:
    heartbeat = request.app[HEARTBEAT]
    nodes = await heartbeat.nodes()
    return web.json_response({"node": heartbeat.link.node, "self": heartbeat.record(), "nodes": nodes})


def add_routes(app: web.Application, heartbeat: Heartbeat) -> None:
    app[HEARTBEAT] = heartbeat
    app.router.add_get("/cluster", get_cluster)
