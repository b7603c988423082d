"""Admission: account and reserved concurrency, and the per-function scaling rate.

Every invocation passes ``Admission.admit`` before it touches a pool, and is refused at once
(429, with Lambda's reason) when the function's reserved concurrency, or the account's
unreserved pool, is full. Counting is synchronous and happens on the event
loop, so no lock is needed and no invocation can slip past a limit.
"""

from __future__ import annotations

import time
from typing import Protocol

from .. import errors
from ..config import SchedulerConfig
from ..errors import InvalidParameterValue, Throttled


class AdmissionGate(Protocol):
    """A limit kept outside this process (a cluster's shared ledger), asked before the local
    admission: ``enter`` raises Throttled or returns a ticket that ``leave`` hands back."""

    async def enter(self, function_name: str, reserved: int | None, unreserved_capacity: int) -> object: ...

    def leave(self, ticket: object) -> None: ...


class ScalingBucket:
    """New environments a function may still start: ``limit`` per ``window_s``, refilled
    continuously and never above ``limit`` (Lambda's allowance does not accumulate)."""

    __slots__ = ("limit", "rate", "stamp", "tokens")

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = float(limit)
        self.rate = limit / window_s
        self.tokens = float(limit)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.limit, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class FunctionAdmission:
    """One function's admission state; it outlives the function's configurations (and
    pools), so an update keeps its in-flight count and its scaling allowance."""

    __slots__ = ("bucket", "in_flight", "reserved")

    def __init__(self, bucket: ScalingBucket) -> None:
        self.in_flight = 0
        self.reserved: int | None = None
        self.bucket = bucket  # the pool asks it (pool.ScaleAllowance) before a cold start


class Admission:
    def __init__(self, settings: SchedulerConfig) -> None:
        self.settings = settings
        self.in_flight = 0  # account-wide concurrent executions
        self.unreserved_in_flight = 0
        self.reserved_total = 0  # sum of every function's reserved concurrency

    @property
    def unreserved_capacity(self) -> int:
        return self.settings.account_concurrency - self.reserved_total

    def admit(self, fn: FunctionAdmission) -> bool:
        """Count one invocation in, or raise Throttled. Returns whether it drew from the
        unreserved pool, to be handed back to ``release``."""
        reserved = fn.reserved
        if reserved is not None:
            if fn.in_flight >= reserved:
                raise Throttled(errors.RESERVED_LIMIT)
            unreserved = False
        else:
            if self.unreserved_in_flight >= self.unreserved_capacity:
                raise Throttled(errors.ACCOUNT_LIMIT)
            self.unreserved_in_flight += 1
            unreserved = True
        fn.in_flight += 1
        self.in_flight += 1
        return unreserved

    def available(self, fn: FunctionAdmission) -> int:
        """How many more invocations of ``fn`` ``admit`` would let in now: its reserved
        concurrency left, or the account's unreserved pool left (the scaling rate is not
        counted: it limits new environments, not invocations)."""
        if fn.reserved is not None:
            return max(0, fn.reserved - fn.in_flight)
        return max(0, self.unreserved_capacity - self.unreserved_in_flight)

    def release(self, fn: FunctionAdmission, unreserved: bool) -> None:
        fn.in_flight -= 1
        self.in_flight -= 1
        if unreserved:
            self.unreserved_in_flight -= 1

    def check_reserved(self, fn: FunctionAdmission, value: int | None) -> None:
        """Refuse a reservation that would leave less than the minimum unreserved."""
        if value is None:
            return
        others = self.reserved_total - (fn.reserved or 0)
        room = self.settings.account_concurrency - self.settings.unreserved_floor - others
        if value > room:
            raise InvalidParameterValue(
                f"Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{self.settings.unreserved_floor}]."
            )

    def set_reserved(self, fn: FunctionAdmission, value: int | None) -> None:
        self.check_reserved(fn, value)
        self.reserved_total += (value or 0) - (fn.reserved or 0)
        fn.reserved = value


def scale_throttle(fn: FunctionAdmission) -> Throttled:
    reason = errors.RESERVED_RATE_LIMIT if fn.reserved is not None else errors.RATE_LIMIT
    return Throttled(reason)
