"""Connection limits of the HTTP server: a deadline for the first request head, and a cap on
open connections.

    accept ─► over max_connections? ─► closed at once (the client sees the connection end,
       │                               instead of waiting in the kernel's backlog)
       └─► header timer (header_timeout_s) ─► fires before the first request head is complete?
                                               ─► closed (slowloris: a few bytes, then nothing)
    after each response: aiohttp's keep-alive timer (keepalive_timeout_s) closes a connection
    that stays idle, or sends only part of its next request head, that long.

aiohttp has no header-read timeout of its own. This one costs a timer per connection and
nothing per request: it hooks the ``web.Server``'s ``connection_made`` / ``connection_lost``
(every connection reports both to its server) and, when the timer fires, reads aiohttp's
count of the connection's parsed request heads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("lambda_scheduler.server")

_Hook = Callable[..., None]
_WARN_EVERY_S = 10.0


class ConnectionGuard:
    """Installed on one ``web.Server`` by :func:`guard`; ``open`` and the two counters are
    for tests and logs."""

    def __init__(self, server: web.Server, header_timeout_s: float, max_connections: int) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.refused = 0  # connections closed at once: over the cap
        self.timed_out = 0  # connections closed for not sending a request head in time
        self._timers: dict[RequestHandler, asyncio.TimerHandle] = {}
        self._made: _Hook = server.connection_made
        self._lost: _Hook = server.connection_lost
        self._warned_at = 0.0
        # Instance attributes win over the class's methods: every connection now passes here.
        server.connection_made = self._connection_made  # type: ignore[method-assign]
        server.connection_lost = self._connection_lost  # type: ignore[method-assign]

    @property
    def open(self) -> int:
        return len(self._timers)

    def _connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        if len(self._timers) >= self.max_connections:
            self.refused += 1
            self._warn(f"over --max-connections {self.max_connections}: closed a new connection")
            handler.force_close()  # aiohttp then starts no request loop on it
            return
        loop = asyncio.get_running_loop()
        self._timers[handler] = loop.call_later(self.header_timeout_s, self._deadline, handler)

    def _connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        timer = self._timers.pop(handler, None)
        if timer is not None:
            timer.cancel()
        self._lost(handler, exc)

    def _deadline(self, handler: RequestHandler) -> None:
        # aiohttp counts every request head it has parsed on a connection; the attribute is
        # private, so an aiohttp without it leaves connections alone rather than closing them.
        if getattr(handler, "_request_count", 1) == 0:
            self.timed_out += 1
            log.debug("closed a connection that sent no complete request head in %gs", self.header_timeout_s)
            handler.force_close()
        # The entry stays until connection_lost, so the cap counts the connection until then;
        # the fired handle costs nothing more.

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning("%s (%d so far)", message, self.refused)


def guard(server: web.Server, header_timeout_s: float, max_connections: int) -> ConnectionGuard:
    """Apply the limits to every connection ``server`` accepts from now on."""
    return ConnectionGuard(server, header_timeout_s, max_connections)
