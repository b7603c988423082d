"""Is the harness itself the bottleneck? Measured, not guessed.

A load generator that cannot keep up reports its own limits as the server's. Three signs,
each measured during the run:

- *its CPU*: the harness runs on one event loop, so near 100 % of one core it is saturated;
- *its schedule* (open loop): requests dispatched later than their intended start — the
  loop woke late or was busy, so the offered load was not the one asked for;
- *its loop*: a probe that sleeps 10 ms and measures how late it wakes (works in closed loop
  too, where there is no schedule to fall behind).

Requests that waited for a free connection are *not* the harness's fault (every connection
was busy with a slow server); they are reported as back-pressure. The whole machine's CPU is
reported too: with client and server on the same cores, a saturated machine limits both.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from .histogram import Histogram

CPU_SATURATED = 0.90  # of one core
LATE_MS = 5.0  # p99 dispatch lag or loop lag above this: the harness was late
MACHINE_SATURATED = 0.95
PROBE_PERIOD_S = 0.010


class LoopProbe:
    """Sleeps ``PROBE_PERIOD_S`` over and over and records how late each wake-up is (µs)."""

    def __init__(self) -> None:
        self.lag = Histogram()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(PROBE_PERIOD_S)
            late = time.perf_counter() - before - PROBE_PERIOD_S
            self.lag.record(max(0, round(late * 1e6)))


def machine_cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs, from /proc/stat; None where there is none."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Usage:
    """CPU of the harness process and of the whole machine, between two readings."""

    wall: float = field(default_factory=time.perf_counter)
    cpu: float = field(default_factory=time.process_time)
    machine: tuple[int, int] | None = field(default_factory=machine_cpu_ticks)

    def since(self, earlier: Usage) -> tuple[float, float | None]:
        """(harness CPU as a fraction of one core, machine CPU as a fraction of all cores)."""
        wall = max(self.wall - earlier.wall, 1e-9)
        machine = None
        if self.machine and earlier.machine and self.machine[1] > earlier.machine[1]:
            machine = (self.machine[0] - earlier.machine[0]) / (self.machine[1] - earlier.machine[1])
        return (self.cpu - earlier.cpu) / wall, machine


@dataclass
class Verdict:
    bottleneck: bool
    reasons: list[str]
    notes: list[str]
    cpu_percent: float
    machine_cpu_percent: float | None
    dispatch_lag_ms: dict[str, float]
    loop_lag_ms: dict[str, float]
    connection_wait_ms: dict[str, float]


def _ms(h: Histogram) -> dict[str, float]:
    return {
        "p50": h.percentile(0.5) / 1e3,
        "p99": h.percentile(0.99) / 1e3,
        "max": h.max / 1e3,
    }


def assess(
    *,
    open_loop: bool,
    cpu: float,
    machine: float | None,
    dispatch_lag: Histogram,
    loop_lag: Histogram,
    connection_wait: Histogram,
    in_flight_cap_hits: int,
) -> Verdict:
    reasons, notes = [], []
    if cpu >= CPU_SATURATED:
        reasons.append(
            f"the harness used {cpu:.0%} of a CPU core (saturated at {CPU_SATURATED:.0%}); "
            "use wrk or several harness processes for more load"
        )
    lag = _ms(dispatch_lag)
    if open_loop and lag["p99"] > LATE_MS:
        reasons.append(f"it fell behind its schedule: p99 dispatch {lag['p99']:.1f} ms late (max {lag['max']:.1f} ms)")
    loop = _ms(loop_lag)
    if loop["p99"] > LATE_MS:
        reasons.append(
            f"its event loop woke late (a 10 ms timer p99 {loop['p99']:.1f} ms late): it was busy, or starved of "
            "CPU by the other processes on this machine"
        )
    if in_flight_cap_hits:
        reasons.append(f"{in_flight_cap_hits} requests waited for the --max-in-flight cap before dispatch")
    wait = _ms(connection_wait)
    if open_loop and wait["p99"] > LATE_MS:
        notes.append(
            f"requests waited for a free connection (p99 {wait['p99']:.1f} ms): back-pressure from the "
            "server, or too few --connections; counted in the latency from the intended start"
        )
    if machine is not None and machine >= MACHINE_SATURATED:
        notes.append(
            f"the machine's CPUs were {machine:.0%} busy: client and server compete for them, so both "
            "rates are bounded by the machine"
        )
    return Verdict(
        bottleneck=bool(reasons),
        reasons=reasons,
        notes=notes,
        cpu_percent=cpu * 100,
        machine_cpu_percent=None if machine is None else machine * 100,
        dispatch_lag_ms=lag,
        loop_lag_ms=loop,
        connection_wait_ms=wait,
    )
