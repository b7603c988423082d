"""The event store interface, and the in-memory store.

A store only keeps events; the queue (queue.py) decides what is due. Every method is async so
a store may write to disk (sqlite.py) or, later, to a broker (a NATS JetStream stream in the
cluster mode) behind the same five calls. ``add`` returns once the event is durable, so the API
answers 202 only for an event that a crash cannot lose.
"""

from __future__ import annotations

import collections
from typing import Protocol

from .model import Event, EventState

# Finished events the in-memory store keeps for listing (GET /events); older ones are forgotten.
MEMORY_FINISHED_KEPT = 10_000


class EventStore(Protocol):
    async def open(self) -> list[Event]:
        """Start; return the unfinished events (pending, running, retrying) to deliver again."""
        ...

    async def add(self, event: Event) -> None:
        """Keep a new event; returns once it is committed."""
        ...

    async def save(self, event: Event) -> None:
        """Write an event's changed state, counts, due time and last response."""
        ...

    async def list(self, state: EventState | None = None, limit: int = 1000) -> list[Event]:
        """Events, newest first, optionally only those in ``state``."""
        ...

    async def close(self) -> None:
        """Finish pending writes and let go of the storage."""
        ...


class MemoryEventStore:
    """Events in a dict; lost when the process ends (``init_app`` without a data dir)."""

    def __init__(self) -> None:
        self._open: dict[str, Event] = {}
        self._finished: collections.OrderedDict[str, Event] = collections.OrderedDict()

    async def open(self) -> list[Event]:
        return list(self._open.values())

    async def add(self, event: Event) -> None:
        self._open[event.request_id] = event

    async def save(self, event: Event) -> None:
        if not event.state.finished:
            self._open[event.request_id] = event
            return
        self._open.pop(event.request_id, None)
        self._finished[event.request_id] = event
        self._finished.move_to_end(event.request_id)
        while len(self._finished) > MEMORY_FINISHED_KEPT:
            self._finished.popitem(last=False)

    async def list(self, state: EventState | None = None, limit: int = 1000) -> list[Event]:
        found = [*self._open.values(), *self._finished.values()]
        if state is not None:
            found = [e for e in found if e.state is state]
        found.sort(key=lambda e: e.received_at, reverse=True)
        return found[:limit]

    async def close(self) -> None:
        pass
