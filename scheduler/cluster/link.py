"""The connection to NATS that every cluster part shares, and the names it agrees on."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

log = logging.getLogger("lambda_scheduler.cluster")

# The stream of accepted Event invocations, one subject per function.
EVENT_STREAM = "LAMBDA_EVENTS"
EVENT_SUBJECT = "lambda.events"
# Heartbeats: a key per node, gone after NODE_TTL_S without a beat.
NODE_BUCKET = "lambda_nodes"
# How long a JetStream API call (publish, ack, KV put) may take before it counts as failed.
REQUEST_TIMEOUT_S = 5.0


async def cancel(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel a part's background tasks and wait until each has ended."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def default_node_name() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    return f"{host or 'node'}-{os.getpid()}"


def event_subject(function_name: str) -> str:
    """Lambda names ([A-Za-z0-9_-]) are valid subject tokens as they are."""
    return f"{EVENT_SUBJECT}.{function_name}"


@dataclass(slots=True)
class ClusterLink:
    """An open connection: ``nc`` for core NATS, ``js`` for JetStream."""

    url: str
    node: str
    nc: Client
    js: JetStreamContext

    @classmethod
    async def connect(cls, url: str, node: str | None = None) -> ClusterLink:
        name = node or default_node_name()

        async def disconnected() -> None:
            log.warning("node %s: lost the connection to NATS at %s; reconnecting", name, url)

        async def reconnected() -> None:
            log.warning("node %s: connected to NATS again", name)

        async def error(exc: Exception) -> None:
            log.debug("NATS client error: %s", exc)

        # Reconnect for ever: a NATS restart must not end the node; its work waits meanwhile.
        nc = await nats.connect(
            url.split(","),
            name=f"lambda-scheduler {name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=REQUEST_TIMEOUT_S,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        return cls(url=url, node=name, nc=nc, js=nc.jetstream(timeout=REQUEST_TIMEOUT_S))

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.close()
