"""Which nodes are alive: each puts a heartbeat under its name in a KV bucket every
BEAT_EVERY_S, and watches the bucket. A node is live while its last heartbeat arrived less
than NODE_TTL_S ago, so every other node sees a killed or cut-off one gone within NODE_TTL_S
(the bucket's TTL removes its key too). GET /cluster lists them.

The watch, not a listing of keys: heartbeats rewrite their keys every second, and a listing
taken while a key is rewritten can miss it. A node that sees none of its own heartbeats for
NODE_TTL_S (NATS restarted) watches again."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import nats.errors
import nats.js.errors
from aiohttp import web
from nats.js import api
from nats.js.kv import KeyValue

from ..engine.scheduler import Scheduler
from .link import NODE_BUCKET, ClusterLink, cancel

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
        # By node: when (loop time) its last heartbeat arrived, and what it said.
        self._seen: dict[str, tuple[float, dict[str, Any]]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self.details: Callable[[], dict[str, Any]] = dict  # more of this node's state to publish

    def live(self) -> set[str]:
        now = asyncio.get_running_loop().time()
        return {node for node, (at, _) in self._seen.items() if now - at < NODE_TTL_S}

    async def open(self) -> None:
        self._kv = await self.link.js.create_key_value(api.KeyValueConfig(bucket=NODE_BUCKET, ttl=NODE_TTL_S))
        self._watcher = asyncio.ensure_future(self._watch())

    async def start(self) -> None:
        """Beat from now on (the node listens: its URL is known)."""
        await self.beat()
        self._task = asyncio.ensure_future(self._run())

    async def alive(self, names: set[str]) -> set[str]:
        """Which of ``names`` have a heartbeat in the bucket now (asked, not watched: for a
        decision that must not rest on a heartbeat still on its way)."""
        assert self._kv is not None
        found = set()
        for name in names:
            try:
                await self._kv.get(name)
            except nats.js.errors.KeyNotFoundError:
                continue
            found.add(name)
        return found

    async def _watch(self) -> None:
        assert self._kv is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                watcher = await self._kv.watchall()
                while True:
                    entry = await watcher.updates(timeout=NODE_TTL_S)  # type: ignore[no-untyped-call]
                    if entry is None:
                        continue  # the end of what the bucket held when the watch began
                    if entry.operation is not None or not entry.value:
                        self._seen.pop(entry.key, None)  # deleted (a node that stopped) or purged
                    else:
                        self._seen[entry.key] = (loop.time(), json.loads(entry.value))
            except asyncio.CancelledError:
                raise
            except (nats.errors.Error, ValueError) as exc:
                # No heartbeat at all for NODE_TTL_S, not even this node's: watch again.
                log.debug("heartbeat watch: %s", exc)
                await asyncio.sleep(0.25)

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
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS away for a moment: the next beat tries again
                log.debug("heartbeat: %s", exc)

    def nodes(self) -> list[dict[str, Any]]:
        """Every node with a live heartbeat, by name: its last heartbeat."""
        live = self.live()
        return [record for node, (_, record) in sorted(self._seen.items()) if node in live]

    async def stop(self) -> None:
        tasks = (self._task, self._watcher)
        self._task = self._watcher = None
        await cancel(*tasks)
        if self._kv is not None:
            try:
                await self._kv.delete(self.link.node)  # leaving: the others see it gone at once
            except Exception as exc:  # noqa: BLE001 - leaving anyway: the TTL removes it
                log.debug("heartbeat delete: %s", exc)


HEARTBEAT = web.AppKey("cluster_heartbeat", Heartbeat)


async def get_cluster(request: web.Request) -> web.Response:
    heartbeat = request.app[HEARTBEAT]
    nodes = heartbeat.nodes()
    return web.json_response({"node": heartbeat.link.node, "self": heartbeat.record(), "nodes": nodes})


def add_routes(app: web.Application, heartbeat: Heartbeat) -> None:
    app[HEARTBEAT] = heartbeat
    app.router.add_get("/cluster", get_cluster)
