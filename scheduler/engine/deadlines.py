"""One loop timer for every pending Init and invocation deadline of a scheduler.

    Environment.run ─► watch(env) ─┐   (a set add; the timer moves only for an earlier deadline)
    reply arrives   ─► unwatch(env)│   (a set discard; the timer is left alone)
                                   ▼
                 one TimerHandle at the earliest deadline watched when it was armed
                   fires ─► every watched deadline that has passed: env.expire()
                          ─► armed again for the earliest one left

Almost every invocation answers long before its deadline, so arming and cancelling a loop
timer per invocation (a handle, a heap push, a cancel) is work spent on the rare case. Here
that is a set add and discard; with steady traffic the one timer fires about once per timeout
period, finds the invocations it was armed for long finished, and moves on to the earliest of
those now in flight. Deadlines are perf_counter times: the loop's own clock ticks in
milliseconds, and its timers may fire a little early by the real one, so nothing is expired
before its time — an early fire just arms again.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol


class Expiring(Protocol):
    @property
    def deadline(self) -> float: ...
    def expire(self) -> None: ...


class Deadlines:
    __slots__ = ("_at", "_loop", "_pending", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: set[Expiring] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._at = math.inf  # the perf_counter time the timer is armed for

    def watch(self, item: Expiring, deadline: float) -> None:
        """Expire ``item`` at ``deadline`` (its ``deadline`` property) unless unwatched first."""
        self._pending.add(item)
        if deadline < self._at:
            self._arm(deadline)

    def unwatch(self, item: Expiring) -> None:
        self._pending.discard(item)

    def __len__(self) -> int:
        return len(self._pending)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at = at
        self._timer = self._loop.call_later(max(0.0, at - time.perf_counter()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._at = math.inf
        now = time.perf_counter()
        expired = [item for item in self._pending if item.deadline <= now]
        for item in expired:
            self._pending.discard(item)
        for item in expired:
            item.expire()
        if self._pending:  # what expire() watched meanwhile may have armed it already, later
            earliest = min(item.deadline for item in self._pending)
            if earliest < self._at:
                self._arm(earliest)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._at = math.inf
        self._pending.clear()
