"""What an accepted Event invocation is, and the settings that govern it.

An :class:`Event` carries its own state (:class:`EventState`), so every store keeps the same
facts: the queue and the dispatcher change an event, the store writes it down.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from ..errors import constraint_violation
from .destinations import DestinationConfig

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


class EventState(enum.StrEnum):
    """Where an event is in its life. The first three are unfinished: a restart delivers them
    (a RUNNING event was cut short by the stop, so it runs again)."""

    PENDING = "pending"  # accepted, never attempted yet (or attempted only to be throttled)
    RUNNING = "running"  # an attempt is in progress
    RETRYING = "retrying"  # waiting for its next attempt after a function error or a throttle
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # given up, no dead-letter queue to send it to
    DEAD_LETTERED = "dead-lettered"  # given up, and written to the function's dead-letter queue

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({EventState.SUCCEEDED, EventState.FAILED, EventState.DEAD_LETTERED})


def _check(member: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise constraint_violation(value, member, "Member must be an integer")
    if value < low:
        raise constraint_violation(value, member, f"Member must have value greater than or equal to {low}")
    if value > high:
        raise constraint_violation(value, member, f"Member must have value less than or equal to {high}")


@dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    """A function's FunctionEventInvokeConfig: retries after an error, the maximum age, and
    where records of successes and failures go."""

    maximum_retry_attempts: int = MAX_RETRY_ATTEMPTS
    maximum_event_age_s: int = MAX_EVENT_AGE_S
    last_modified: float = field(default_factory=time.time)
    destinations: DestinationConfig = field(default_factory=DestinationConfig)

    def __post_init__(self) -> None:
        _check("maximumRetryAttempts", self.maximum_retry_attempts, 0, MAX_RETRY_ATTEMPTS)
        _check("maximumEventAgeInSeconds", self.maximum_event_age_s, MIN_EVENT_AGE_S, MAX_EVENT_AGE_S)


DEFAULT_EVENT_INVOKE_CONFIG = EventInvokeConfig(last_modified=0.0)


def config_key(function_name: str, qualifier: str | None = None) -> str:
    """Where the FunctionEventInvokeConfig of a function, version or alias is kept: Lambda
    keeps one per qualifier, and an unqualified one is $LATEST's."""
    return function_name if qualifier in (None, "$LATEST") else f"{function_name}:{qualifier}"


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
    state: EventState = EventState.PENDING
    # The last attempt's response (the function's payload) and its error type, if it ran:
    # what a destination record or a dead letter reports once the event is given up.
    response: bytes | None = None
    error_type: str | None = None
    # The version the last attempt ran on (an alias resolves to one); kept in memory only: after
    # a restart the record names the version the qualifier resolves to then.
    executed_version: str | None = None

    @property
    def age_s(self) -> float:
        return time.time() - self.received_at

    @property
    def invocations(self) -> int:
        """Attempts that reached the function (Lambda's approximateInvokeCount)."""
        return self.attempts + (1 if self.state is EventState.SUCCEEDED else 0)
