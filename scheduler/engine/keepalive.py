"""Keep-alive policies: how long an idle execution environment stays warm, and when.

A policy is told of every invocation's arrival (:meth:`KeepAlivePolicy.invoked`) and, whenever
an environment goes idle, is asked for a :class:`Window`: the environment is unloaded for
``prewarm_s`` seconds (nothing, if 0), then loaded and kept warm for ``keep_alive_s`` seconds,
then reaped. Two policies:

``FixedTTL`` ("fixed")
    Every idle environment stays warm for the same TTL (600 s by default), from the moment it
    goes idle. This is what AWS Lambda and Azure Functions did at the time of the paper below
    (10 and 20 minutes), and what the engine did before this module.

``Hybrid`` ("hybrid")
    The hybrid histogram policy of *Serverless in the Wild: Characterizing and Optimizing the
    Serverless Workload at a Large Cloud Provider* (Shahrad et al., USENIX ATC 2020), in a
    simplified form. Per function it keeps a histogram of idle times with 1-minute bins over a
    range of 4 hours (240 bins, plus one counter for idle times beyond the range).

    * Idle time here is the **inter-arrival time**: the time between two consecutive
      invocation arrivals of the function (the paper measures from the end of one execution to
      the start of the next). Arrivals are all :meth:`invoked` sees, and with executions of
      seconds against 1-minute bins the two differ by less than a bin; the 10 % margins below
      absorb the rest.
    * When the histogram is *representative* -- at least ``min_samples`` idle times, at most
      ``max_oob_fraction`` of them beyond the range, and a coefficient of variation (CV) of the
      bin counts of at least ``cv_threshold`` (2, as in the paper; a high CV means the idle
      times are concentrated in a few bins, i.e. predictable) -- the window is::

          head = lower edge of the bin holding the 5th percentile of the in-range idle times
          tail = upper edge of the bin holding the 99th percentile
          prewarm_s    = head * (1 - margin)            # wake up a little early
          keep_alive_s = tail * (1 + margin) - prewarm_s  # stay a little late

      with ``margin`` = 10 %, as in the paper. A head in the first bin gives ``prewarm_s`` = 0:
      the environment simply stays warm from the moment it goes idle.
    * Otherwise it falls back to the fixed TTL (``Window(0, ttl)``). The paper's fallbacks
      differ, and are simplified here: for a histogram that is not yet representative it keeps
      the application warm for the whole histogram range (4 hours), which costs far more memory
      than today's default, and when too many idle times are out of range it predicts the next
      idle time with an ARIMA model. Both cases use the fixed TTL here; no ARIMA.

    The histogram is never aged (neither is the paper's): a function whose pattern changes
    adapts only as new idle times outweigh old ones.

Cost: :meth:`Hybrid.invoked` is on the invocation hot path and does O(1) work -- a subtraction,
a division and a counter increment. The percentiles and the CV are computed lazily, in one
pass over the 240 bins, only when :meth:`Hybrid.window` is asked and enough new samples have
arrived since the last computation (see ``_Histogram.stale``), so the amortised cost per
invocation tends to zero. Memory per function is fixed: 240 counts and a few scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

__all__ = ["FixedTTL", "Hybrid", "KeepAlivePolicy", "Window", "make_policy"]

DEFAULT_TTL_S = 600.0


@dataclass(frozen=True, slots=True)
class Window:
    """What to do with an environment that goes idle now."""

    prewarm_s: float  # 0.0: keep the environment warm from the moment it goes idle
    keep_alive_s: float  # how long (after prewarm_s) an idle environment stays warm


class KeepAlivePolicy(Protocol):
    name: str

    def invoked(self, function: str, now: float) -> None:
        """Record an invocation's arrival (monotonic seconds). Cheap: on the hot path."""
        ...

    def window(self, function: str, now: float) -> Window:
        """The window for an environment of `function` going idle at `now`."""
        ...


class FixedTTL:
    """Every idle environment stays warm for ``ttl_s`` from the moment it goes idle."""

    name = "fixed"

    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        if not ttl_s >= 0.0 or math.isinf(ttl_s):  # `not >=` also rejects NaN
            raise ValueError(f"ttl_s must be a finite number >= 0, got {ttl_s!r}")
        self.ttl_s = float(ttl_s)
        self._window = Window(0.0, self.ttl_s)  # immutable, so one instance serves every call

    def invoked(self, function: str, now: float) -> None:
        pass

    def window(self, function: str, now: float) -> Window:
        return self._window

    def __repr__(self) -> str:
        return f"FixedTTL(ttl_s={self.ttl_s:g})"


class _Histogram:
    """One function's idle-time histogram and the window last derived from it."""

    __slots__ = ("cached", "computed_at", "counts", "last_arrival", "oob", "total")

    def __init__(self, bins: int) -> None:
        self.counts = [0] * bins  # allocated once; never grows
        self.oob = 0  # idle times beyond the histogram's range
        self.total = 0  # all idle times recorded, in range or not
        self.last_arrival: float | None = None
        self.computed_at = -1  # `total` when `cached` was computed; -1: never
        self.cached: Window | None = None  # None: not representative, use the fallback

    def stale(self) -> bool:
        # Recompute after every new sample while the histogram is small (so the switch from the
        # fallback to the histogram happens exactly at min_samples), then only once the samples
        # have grown by 1/32 since the last computation: a few percent more samples cannot move
        # a 5th or 99th percentile far, and this keeps the O(bins) pass off most idle events of
        # a busy function.
        if self.computed_at < 0:
            return True
        return self.total - self.computed_at >= max(1, self.computed_at >> 5)


class Hybrid:
    """The hybrid histogram keep-alive policy (Shahrad et al., ATC 2020), simplified.

    See the module docstring for the rules. ``fallback_ttl_s`` is the window used while a
    function's histogram is not representative.
    """

    name = "hybrid"

    def __init__(
        self,
        fallback_ttl_s: float = DEFAULT_TTL_S,
        *,
        bin_s: float = 60.0,
        bins: int = 240,
        head_percentile: float = 5.0,
        tail_percentile: float = 99.0,
        margin: float = 0.10,
        cv_threshold: float = 2.0,
        min_samples: int = 10,
        max_oob_fraction: float = 0.5,
    ) -> None:
        if not bin_s > 0.0 or math.isinf(bin_s):
            raise ValueError(f"bin_s must be a finite number > 0, got {bin_s!r}")
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins!r}")
        if not 0.0 <= head_percentile <= tail_percentile <= 100.0:
            raise ValueError("need 0 <= head_percentile <= tail_percentile <= 100")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin!r}")
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples!r}")
        if not 0.0 <= max_oob_fraction <= 1.0:
            raise ValueError(f"max_oob_fraction must be in [0, 1], got {max_oob_fraction!r}")
        self._fallback = FixedTTL(fallback_ttl_s)
        self.bin_s = float(bin_s)
        self.bins = bins
        self.head_percentile = head_percentile
        self.tail_percentile = tail_percentile
        self.margin = margin
        self.cv_threshold = cv_threshold
        self.min_samples = min_samples
        self.max_oob_fraction = max_oob_fraction
        self._functions: dict[str, _Histogram] = {}

    @property
    def fallback_ttl_s(self) -> float:
        return self._fallback.ttl_s

    def invoked(self, function: str, now: float) -> None:
        h = self._functions.get(function)
        if h is None:
            h = self._functions[function] = _Histogram(self.bins)
        last = h.last_arrival
        h.last_arrival = now
        if last is None:
            return  # the first arrival has no idle time before it
        # Arrivals reported slightly out of order count as back to back.
        idle = now - last if now > last else 0.0
        b = int(idle / self.bin_s)
        if b < self.bins:
            h.counts[b] += 1
        else:
            h.oob += 1
        h.total += 1

    def window(self, function: str, now: float) -> Window:
        h = self._functions.get(function)
        if h is None:
            return self._fallback.window(function, now)
        if h.stale():
            h.cached = self._compute(h)
            h.computed_at = h.total
        return h.cached if h.cached is not None else self._fallback.window(function, now)

    def _compute(self, h: _Histogram) -> Window | None:
        """The histogram's window, or None where the policy should fall back."""
        if h.total < self.min_samples or h.oob > self.max_oob_fraction * h.total:
            return None
        counts = h.counts
        n = h.total - h.oob  # in range; > 0 here, since oob <= max_oob_fraction * total < total
        if n <= 0:
            return None
        # CV of the bin counts, over all bins: the mean count is n / bins.
        mean = n / self.bins
        sq = 0
        for c in counts:
            sq += c * c
        variance = max(sq / self.bins - mean * mean, 0.0)
        if math.sqrt(variance) / mean < self.cv_threshold:
            return None  # idle times spread out: no pattern to exploit
        head_bin = self._bin_of_rank(counts, math.ceil(n * self.head_percentile / 100.0))
        tail_bin = self._bin_of_rank(counts, math.ceil(n * self.tail_percentile / 100.0))
        head_s = head_bin * self.bin_s  # the bin's lower edge: wake no later than its earliest
        tail_s = (tail_bin + 1) * self.bin_s  # its upper edge: stay until its latest
        prewarm = head_s * (1.0 - self.margin)
        keep_alive = tail_s * (1.0 + self.margin) - prewarm
        return Window(prewarm, keep_alive)

    @staticmethod
    def _bin_of_rank(counts: list[int], rank: int) -> int:
        """The bin holding the `rank`-th smallest idle time (1-based; rank 0 counts as 1)."""
        rank = max(rank, 1)
        seen = 0
        for i, c in enumerate(counts):
            seen += c
            if seen >= rank:
                return i
        return len(counts) - 1  # unreachable while rank <= sum(counts)

    def __repr__(self) -> str:
        return f"Hybrid(fallback_ttl_s={self.fallback_ttl_s:g}, bins={self.bins}, bin_s={self.bin_s:g})"


def make_policy(kind: str, idle_ttl_s: float) -> KeepAlivePolicy:
    """The policy named `kind`: "fixed" (TTL `idle_ttl_s`) or "hybrid" (falling back to it)."""
    if kind == FixedTTL.name:
        return FixedTTL(idle_ttl_s)
    if kind == Hybrid.name:
        return Hybrid(idle_ttl_s)
    raise ValueError(f"unknown keep-alive policy {kind!r}: expected 'fixed' or 'hybrid'")
