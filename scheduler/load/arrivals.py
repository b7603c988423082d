"""When requests are due: the arrival models of ``lambda-scheduler load``.

*Open loop*: requests are due at times fixed in advance by a rate, whatever the server does —
the way independent users arrive. The rate is a list of stages, each constant (a step) or
changing linearly (a ramp). With a fixed rate the k-th request is due where the cumulative
rate reaches k; with Poisson arrivals the gaps in cumulative rate are exponential with mean
1 (the time-rescaling theorem), which gives a Poisson process whose rate follows the stages.
Either way the due time is the request's *intended start*, from which its latency is
measured, so a server stall cannot hide behind requests the harness failed to send.

*Closed loop*: N callers, each sending its next request when the previous one answered. There
is no schedule, so a request's intended start is the moment its caller became free.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``"500ms"``, ``"1.5s"``, ``"2m"``, ``"1h"`` or bare seconds → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 500ms, 10s, 2m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Stage:
    """``duration_s`` seconds during which the rate goes linearly from ``start_rate`` to
    ``end_rate`` requests per second (equal rates: a constant step)."""

    duration_s: float
    start_rate: float
    end_rate: float

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ValueError("a stage lasts more than 0 s")
        if self.start_rate < 0 or self.end_rate < 0:
            raise ValueError("rates are ≥ 0")
        if math.isinf(self.duration_s) and self.start_rate != self.end_rate:
            raise ValueError("a ramp needs a finite duration")

    @property
    def arrivals(self) -> float:
        """Expected requests in the stage: the area under the rate."""
        if self.start_rate == self.end_rate == 0:
            return 0.0
        return (self.start_rate + self.end_rate) / 2 * self.duration_s

    def time_at(self, amount: float) -> float:
        """Seconds into the stage at which the cumulative rate reaches ``amount``.

        Solves ``r0·t + (r1-r0)·t²/(2D) = amount`` as ``2·amount / (r0 + √(r0² + 2·a·amount))``
        with ``a = (r1-r0)/D``: one formula for steps and ramps, stable when ``a`` is near 0.
        """
        slope = 0.0 if math.isinf(self.duration_s) else (self.end_rate - self.start_rate) / self.duration_s
        root = math.sqrt(max(0.0, self.start_rate**2 + 2 * slope * amount))
        return 2 * amount / (self.start_rate + root) if amount > 0 else 0.0

    @staticmethod
    def parse(text: str) -> Stage:
        """``DURATION:RATE`` (a step) or ``DURATION:FROM-TO`` (a ramp): ``10s:0-500``."""
        duration, sep, rates = text.partition(":")
        if not sep:
            raise ValueError(f"a stage is DURATION:RATE or DURATION:FROM-TO, got {text!r}")
        low, dash, high = rates.partition("-")
        try:
            start = float(low)
            end = float(high) if dash else start
        except ValueError:
            raise ValueError(f"not a rate in stage {text!r}") from None
        return Stage(parse_duration(duration), start, end)


@dataclass(frozen=True)
class OpenLoop:
    stages: tuple[Stage, ...]
    poisson: bool = False

    @property
    def duration_s(self) -> float:
        return sum(stage.duration_s for stage in self.stages)

    @property
    def arrivals(self) -> float:
        return sum(stage.arrivals for stage in self.stages)

    def expected_by(self, elapsed_s: float) -> float:
        """Requests due (on average) in the first ``elapsed_s`` seconds."""
        due, begin = 0.0, 0.0
        for stage in self.stages:
            if elapsed_s <= begin:
                break
            t = min(elapsed_s - begin, stage.duration_s)
            slope = 0.0 if math.isinf(stage.duration_s) else (stage.end_rate - stage.start_rate) / stage.duration_s
            due += stage.start_rate * t + slope * t * t / 2
            begin += stage.duration_s
        return due

    def rate_at(self, elapsed_s: float) -> float:
        begin = 0.0
        for stage in self.stages:
            if elapsed_s < begin + stage.duration_s:
                if math.isinf(stage.duration_s):
                    return stage.start_rate
                return stage.start_rate + (stage.end_rate - stage.start_rate) * (elapsed_s - begin) / stage.duration_s
            begin += stage.duration_s
        return 0.0

    def times(self, seed: int | None = None) -> Iterator[float]:
        """Due times in seconds from the start of the run, ascending, until the stages end."""
        rng = random.Random(seed)
        amount = rng.expovariate(1.0) if self.poisson else 0.0
        begin = 0.0
        for stage in self.stages:
            total = stage.arrivals
            while amount < total:
                yield begin + stage.time_at(amount)
                amount += rng.expovariate(1.0) if self.poisson else 1.0
            amount -= total
            begin += stage.duration_s


@dataclass(frozen=True)
class ClosedLoop:
    concurrency: int

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("a closed loop needs at least one caller")


Arrivals = OpenLoop | ClosedLoop
