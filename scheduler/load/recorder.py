"""Everything measured during a run, recorded as requests finish.

Each request carries four instants (``time.perf_counter`` seconds):

    intended ── dispatched ── sent ──────────────── done
       │  dispatch lag │ connection wait │ service time │
       └────────────────────── latency ─────────────────┘

*latency* (from the intended start) is what a user of the system experiences and what the
percentiles report; *service time* (from the moment the request went on a connection) is
what a harness that suffers from coordinated omission would report instead. *Dispatch lag*
belongs to the harness alone (its loop was late), *connection wait* to back-pressure (every
connection busy with a slow server).

Per second of the run (by completion time) an :class:`Interval` keeps counts and a coarse
histogram, for the progress line and the plots over time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .client import Outcome
from .histogram import Histogram

US = 1_000_000


def _us(seconds: float) -> int:
    return max(0, round(seconds * US))


@dataclass
class Interval:
    """One slice of the run (``interval_s`` long, by completion time)."""

    index: int
    completed: int = 0
    errors: int = 0
    throttles: int = 0
    cold: int = 0
    sent: int = 0
    latency: Histogram = field(default_factory=lambda: Histogram(7))
    in_flight: int = 0  # at the end of the slice
    cpu_percent: float | None = None  # the harness's own CPU during the slice


@dataclass
class Recorder:
    started: float  # perf_counter of the run's time zero
    interval_s: float = 1.0
    latency: Histogram = field(default_factory=Histogram)
    service: Histogram = field(default_factory=Histogram)
    dispatch_lag: Histogram = field(default_factory=Histogram)
    connection_wait: Histogram = field(default_factory=Histogram)
    by_start: dict[str, Histogram] = field(default_factory=dict)
    by_function: dict[str, Histogram] = field(default_factory=dict)
    init_ms: Histogram = field(default_factory=Histogram)  # Init Duration of cold starts, in µs
    reported: Histogram = field(default_factory=Histogram)  # the REPORT line's Duration, in µs
    errors: Counter[str] = field(default_factory=Counter)
    throttles: Counter[str] = field(default_factory=Counter)
    starts: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    mismatches: int = 0
    sent: int = 0
    in_flight: int = 0
    first_done: float | None = None
    last_done: float | None = None
    last_intended: float | None = None
    intervals: dict[int, Interval] = field(default_factory=dict)

    def interval(self, at: float) -> Interval:
        index = int((at - self.started) / self.interval_s) if at > self.started else 0
        slot = self.intervals.get(index)
        if slot is None:
            slot = self.intervals[index] = Interval(index)
        return slot

    def on_sent(self, intended: float, dispatched: float) -> None:
        self.sent += 1
        self.in_flight += 1
        self.dispatch_lag.record(_us(dispatched - intended))
        self.last_intended = intended if self.last_intended is None else max(self.last_intended, intended)
        self.interval(dispatched).sent += 1

    def on_done(
        self, function: str, outcome: Outcome, intended: float, dispatched: float, sent: float, done: float
    ) -> None:
        self.in_flight -= 1
        latency = _us(done - intended)
        self.latency.record(latency)
        self.service.record(_us(done - sent))
        self.connection_wait.record(_us(sent - dispatched))
        self.calls[function] += 1
        self._histogram(self.by_function, function).record(latency)
        self.first_done = done if self.first_done is None else self.first_done
        self.last_done = done
        slot = self.interval(done)
        slot.completed += 1
        slot.latency.record(latency)
        self._outcome(outcome, latency, slot)

    def _outcome(self, outcome: Outcome, latency: int, slot: Interval) -> None:
        if outcome.throttle is not None:
            self.throttles[outcome.throttle] += 1
            slot.throttles += 1
            return
        if outcome.status != 200:
            # Refused by the API or lost on the way: no invocation ran, so no start to count.
            self.errors[outcome.error or f"http {outcome.status}"] += 1
            slot.errors += 1
            return
        self.starts[outcome.start] += 1
        self._histogram(self.by_start, outcome.start).record(latency)
        if outcome.duration_ms is not None:
            self.reported.record(_us(outcome.duration_ms / 1000))
        if outcome.start == "cold":
            slot.cold += 1
            if outcome.init_ms is not None:
                self.init_ms.record(_us(outcome.init_ms / 1000))
        if outcome.error is not None:
            self.errors[outcome.error] += 1
            slot.errors += 1
        else:
            self.ok += 1
            self.mismatches += outcome.mismatch

    def _histogram(self, table: dict[str, Histogram], key: str) -> Histogram:
        h = table.get(key)
        if h is None:
            h = table[key] = Histogram()
        return h

    @property
    def completed(self) -> int:
        return self.latency.count

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throttle_count(self) -> int:
        return sum(self.throttles.values())
