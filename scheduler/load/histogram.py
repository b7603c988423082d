"""A log-linear latency histogram in the manner of HdrHistogram, written for this harness.

Values are non-negative integers (the harness records microseconds). Each power-of-two range
``[2^k, 2^(k+1))`` is cut into ``2^precision_bits`` equal buckets, so a recorded value is
known to within a relative error of ``2^-precision_bits`` (0.1 % at the default 10 bits)
whatever its magnitude, in memory that grows with the logarithm of the largest value — a
minute of microseconds needs ~20 k counters, however many requests are recorded.

    value v < 2^(p+1)         → index v                          (exact)
    value v ≥ 2^(p+1)         → shift = bit_length(v) - (p+1)
                                index = shift * 2^p + (v >> shift)

Indices grow with values and the ranges tile the integers, so a percentile is a walk over
the counters in order. A percentile is reported as the highest value its bucket can hold
(never an underestimate), capped at the largest value recorded; ``max`` and ``min`` are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_PRECISION_BITS = 10


@dataclass(frozen=True)
class Bucket:
    """One non-empty bucket: every value in ``[low, high]`` was counted as the same."""

    low: int
    high: int
    count: int


class Histogram:
    """Counts of non-negative integer values in log-linear buckets."""

    def __init__(self, precision_bits: int = DEFAULT_PRECISION_BITS) -> None:
        if not 1 <= precision_bits <= 16:
            raise ValueError("precision_bits must be between 1 and 16")
        self.precision_bits = precision_bits
        self._half = 1 << precision_bits
        self._exact_limit = 1 << (precision_bits + 1)
        self._counts: list[int] = []
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    # --- bucketing --------------------------------------------------------------------------

    def index_of(self, value: int) -> int:
        if value < self._exact_limit:
            return value
        shift = value.bit_length() - (self.precision_bits + 1)
        return shift * self._half + (value >> shift)

    def bounds_of(self, index: int) -> tuple[int, int]:
        """The lowest and highest value that land in bucket ``index``."""
        if index < self._exact_limit:
            return index, index
        shift = index // self._half - 1
        mantissa = index - shift * self._half
        return mantissa << shift, ((mantissa + 1) << shift) - 1

    # --- recording --------------------------------------------------------------------------

    def record(self, value: int, count: int = 1) -> None:
        if value < 0:
            raise ValueError(f"cannot record a negative value ({value})")
        index = self.index_of(value)
        if index >= len(self._counts):
            self._counts.extend([0] * (index + 1 - len(self._counts)))
        self._counts[index] += count
        if self.count == 0 or value < self.min:
            self.min = value
        self.max = max(self.max, value)
        self.count += count
        self.total += value * count

    def merge(self, other: Histogram) -> None:
        if other.precision_bits != self.precision_bits:
            raise ValueError("cannot merge histograms of different precision")
        if other.count == 0:
            return
        if len(other._counts) > len(self._counts):
            self._counts.extend([0] * (len(other._counts) - len(self._counts)))
        for index, n in enumerate(other._counts):
            if n:
                self._counts[index] += n
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def copy(self) -> Histogram:
        twin = Histogram(self.precision_bits)
        twin.merge(self)
        return twin

    # --- reading ----------------------------------------------------------------------------

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def buckets(self) -> Iterator[Bucket]:
        for index, n in enumerate(self._counts):
            if n:
                low, high = self.bounds_of(index)
                yield Bucket(low, high, n)

    def percentile(self, q: float) -> int:
        """The value below or at which a fraction ``q`` (0–1) of the recorded values lie."""
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be between 0 and 1")
        if self.count == 0:
            return 0
        if q == 0.0:
            return self.min
        # The 1-based "nearest rank" of the q-quantile; the epsilon keeps 0.99 * 1000 at 990.
        rank = max(1, math.ceil(self.count * q - 1e-9))
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if n and seen >= rank:
                return min(self.bounds_of(index)[1], self.max)
        return self.max

    def count_at_or_above(self, value: int) -> int:
        """How many recorded values are certainly ≥ ``value`` (buckets wholly at or above it)."""
        return sum(b.count for b in self.buckets() if b.low >= value)

    def cdf(self) -> list[tuple[int, float]]:
        """``(value, fraction of values ≤ value)`` at the top of each non-empty bucket."""
        points, seen = [], 0
        for bucket in self.buckets():
            seen += bucket.count
            points.append((min(bucket.high, self.max), seen / self.count))
        return points

    # --- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Sparse form: ``counts`` maps bucket index to count."""
        return {
            "precision_bits": self.precision_bits,
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "counts": {str(i): n for i, n in enumerate(self._counts) if n},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        h = cls(int(data["precision_bits"]))
        counts = {int(i): int(n) for i, n in data["counts"].items()}
        if counts:
            h._counts = [0] * (max(counts) + 1)
            for index, n in counts.items():
                h._counts[index] = n
        h.count, h.total = int(data["count"]), int(data["total"])
        h.min, h.max = int(data["min"]), int(data["max"])
        return h
