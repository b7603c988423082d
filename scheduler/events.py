"""The queue of accepted Event (asynchronous) invocations, behind a small store interface.

    POST …/invocations (Event) ─► 202 ─► EventQueue.put ─► EventStore
                                                            │ take (when due)
    dispatcher.EventDispatcher ◄────────────────────────────┘
        └─► Scheduler.invoke ─► ack | retry_later (function error, timeout, throttle) | drop

Lambda puts an accepted event on an internal queue and answers 202 at once; the event is
retried after a function error or a timeout, and dropped when it is older than the function's
MaximumEventAgeInSeconds. An :class:`EventStore` only keeps events: put, take
the next one that is due (it stays leased until acked or returned), ack, retry later, size. The
in-memory store here loses its events on a restart; a durable store (SQLite) implements the
same five methods. :class:`EventQueue` wraps a store with the counters the metrics read.
"""

from __future__ import annotations

import abc
import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field

from .errors import constraint_violation

# Bounds of PutFunctionEventInvokeConfig.
MAX_RETRY_ATTEMPTS = 2
MIN_EVENT_AGE_S = 60
MAX_EVENT_AGE_S = 21_600

# Why an event left the queue without a success; Lambda's destination conditions where it has one.
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"
ZERO_RESERVED_CONCURRENCY = "ZeroReservedConcurrency"
FUNCTION_DELETED = "FunctionDeleted"
INTERNAL_ERROR = "InternalError"


def _check(member: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise constraint_violation(value, member, "Member must be an integer")
    if value < low:
        raise constraint_violation(value, member, f"Member must have value greater than or equal to {low}")
    if value > high:
        raise constraint_violation(value, member, f"Member must have value less than or equal to {high}")


@dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    """A function's FunctionEventInvokeConfig: retries after an error, and the maximum age."""

    maximum_retry_attempts: int = MAX_RETRY_ATTEMPTS
    maximum_event_age_s: int = MAX_EVENT_AGE_S
    last_modified: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        _check("maximumRetryAttempts", self.maximum_retry_attempts, 0, MAX_RETRY_ATTEMPTS)
        _check("maximumEventAgeInSeconds", self.maximum_event_age_s, MIN_EVENT_AGE_S, MAX_EVENT_AGE_S)


DEFAULT_EVENT_INVOKE_CONFIG = EventInvokeConfig(last_modified=0.0)


@dataclass(slots=True)
class Event:
    """One accepted Event invocation. Times are wall-clock (epoch seconds), so that a durable
    store can keep them across a restart. ``request_id`` stays the same on every attempt, as
    on Lambda, and is the handler's ``context.aws_request_id``."""

    request_id: str
    function_name: str
    qualifier: str | None
    payload: bytes
    received_at: float = field(default_factory=time.time)
    attempts: int = 0  # invocations that ran and ended in a function error or timeout
    throttles: int = 0  # invocations refused at admission (do not count as attempts)
    due: float = 0.0

    @property
    def age_s(self) -> float:
        return time.time() - self.received_at


class EventStore(abc.ABC):
    """Where accepted events wait. Delivery is at least once: an event taken and never
    acknowledged may be delivered again (a durable store does so after a restart)."""

    @abc.abstractmethod
    async def put(self, event: Event) -> None:
        """Keep a new event; it is due at once."""

    @abc.abstractmethod
    async def take(self) -> Event:
        """Wait for the next due event and lease it until ``ack`` or ``retry_later``."""

    @abc.abstractmethod
    async def ack(self, event: Event) -> None:
        """The event is finished (delivered, or given up): forget it."""

    @abc.abstractmethod
    async def retry_later(self, event: Event, delay_s: float) -> None:
        """Return a leased event, with its updated counts, to be taken after ``delay_s``."""

    @abc.abstractmethod
    def size(self) -> int:
        """Events held: waiting or leased."""

    @abc.abstractmethod
    def oldest_received_at(self) -> float | None:
        """When the oldest event held was received (epoch seconds), or None if empty."""


class MemoryEventStore(EventStore):
    """Events in a heap ordered by due time; lost when the process ends."""

    def __init__(self) -> None:
        self._waiting: list[tuple[float, int, Event]] = []
        self._leased: dict[str, Event] = {}
        self._seq = itertools.count()  # ties in due time go first in, first out
        self._changed = asyncio.Event()

    def _push(self, event: Event) -> None:
        heapq.heappush(self._waiting, (event.due, next(self._seq), event))
        self._changed.set()

    async def put(self, event: Event) -> None:
        event.due = event.received_at
        self._push(event)

    async def take(self) -> Event:
        while True:
            wait: float | None = None
            if self._waiting:
                wait = self._waiting[0][0] - time.time()
                if wait <= 0:
                    event = heapq.heappop(self._waiting)[2]
                    self._leased[event.request_id] = event
                    return event
            self._changed.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def ack(self, event: Event) -> None:
        self._leased.pop(event.request_id, None)

    async def retry_later(self, event: Event, delay_s: float) -> None:
        self._leased.pop(event.request_id, None)
        event.due = time.time() + delay_s
        self._push(event)

    def size(self) -> int:
        return len(self._waiting) + len(self._leased)

    def oldest_received_at(self) -> float | None:
        times = [e.received_at for _, _, e in self._waiting]
        times.extend(e.received_at for e in self._leased.values())
        return min(times, default=None)


class EventQueue:
    """The event queue as the API, the dispatcher and the metrics see it: a store, plus
    counters of what went through it."""

    def __init__(self, store: EventStore | None = None) -> None:
        self.store = store if store is not None else MemoryEventStore()
        self.received = 0
        self.succeeded = 0
        self.retries = 0  # re-queued after a function error or timeout
        self.throttle_retries = 0  # re-queued after a throttle
        self.dropped = 0
        self.dropped_by_reason: dict[str, int] = {}

    @property
    def depth(self) -> int:
        return self.store.size()

    @property
    def oldest_age_s(self) -> float:
        """Age of the oldest event not yet finished; 0 when the queue is empty."""
        oldest = self.store.oldest_received_at()
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    async def put(self, event: Event) -> None:
        await self.store.put(event)
        self.received += 1

    async def take(self) -> Event:
        return await self.store.take()

    async def ack(self, event: Event) -> None:
        await self.store.ack(event)
        self.succeeded += 1

    async def retry_later(self, event: Event, delay_s: float, *, throttled: bool = False) -> None:
        await self.store.retry_later(event, delay_s)
        if throttled:
            self.throttle_retries += 1
        else:
            self.retries += 1

    async def drop(self, event: Event, reason: str) -> None:
        await self.store.ack(event)
        self.dropped += 1
        self.dropped_by_reason[reason] = self.dropped_by_reason.get(reason, 0) + 1

    def stats(self) -> dict[str, object]:
        return {
            "depth": self.depth,
            "oldest_age_s": round(self.oldest_age_s, 3),
            "received": self.received,
            "succeeded": self.succeeded,
            "retries": self.retries,
            "throttle_retries": self.throttle_retries,
            "dropped": self.dropped,
            "dropped_by_reason": dict(self.dropped_by_reason),
        }
