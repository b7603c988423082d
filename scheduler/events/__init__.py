"""Event (asynchronous) invocations: accepted with a 202, kept in a store, run by the dispatcher.

    POST …/invocations (Event) ─► EventQueue.put ─► EventStore.add (committed) ─► 202
    EventDispatcher ◄─ take (when due) ◄─ the queue's schedule
        └─► Scheduler.invoke ─► ack | retry_later | give up ─► destinations / dead-letter queue

| module | job |
|---|---|
| ``model`` | ``Event``, ``EventState``, ``EventInvokeConfig``, Lambda's bounds and reasons |
| ``store`` | the ``EventStore`` protocol and the in-memory store |
| ``sqlite`` | the durable store: SQLite in WAL mode, one writer thread, group commit |
| ``queue`` | ``EventQueue``: the schedule of due events, leases, counters |
| ``dispatcher`` | ``EventDispatcher``: capacity-aware delivery, Lambda's retry rules |
| ``destinations`` | invocation records, destination ARNs, local sinks for other services |
"""

from .destinations import DestinationConfig, DestinationKind, LocalSinks, invocation_record
from .dispatcher import EventDispatcher
from .model import (
    DEFAULT_EVENT_INVOKE_CONFIG,
    EVENT_AGE_EXCEEDED,
    FUNCTION_DELETED,
    INTERNAL_ERROR,
    MAX_EVENT_AGE_S,
    MAX_RETRY_ATTEMPTS,
    MIN_EVENT_AGE_S,
    RETRIES_EXHAUSTED,
    ZERO_RESERVED_CONCURRENCY,
    Event,
    EventInvokeConfig,
    EventState,
)
from .queue import EventQueue
from .sqlite import SqliteEventStore
from .store import EventStore, MemoryEventStore

__all__ = [
    "DEFAULT_EVENT_INVOKE_CONFIG",
    "EVENT_AGE_EXCEEDED",
    "FUNCTION_DELETED",
    "INTERNAL_ERROR",
    "MAX_EVENT_AGE_S",
    "MAX_RETRY_ATTEMPTS",
    "MIN_EVENT_AGE_S",
    "RETRIES_EXHAUSTED",
    "ZERO_RESERVED_CONCURRENCY",
    "DestinationConfig",
    "DestinationKind",
    "Event",
    "EventDispatcher",
    "EventInvokeConfig",
    "EventQueue",
    "EventState",
    "EventStore",
    "LocalSinks",
    "MemoryEventStore",
    "SqliteEventStore",
    "invocation_record",
]
