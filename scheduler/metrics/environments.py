"""Metrics counted per environment: starts, Init duration, and stops by reason.

    Starter.start ─► observers.environment_started(function, env, ok, init_s)
    Pool._forget (exit)    ─► observers.environment_stopped(function, env, reason)

An environment's ``type`` is ``on_demand`` or ``provisioned``. Init duration is labelled like
the invocation histograms, by ``start``: ``cold`` for an on-demand Init (the cold start an
invocation waits for) and ``provisioned`` for one done ahead of demand. Only successful Inits
are timed; failed ones are counted in ``lambda_environment_starts_total{outcome="failure"}``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from ..engine.environment import Environment
from ..engine.observer import Observer
from ..engine.stops import STOP_LABELS, STOP_RULES, StopReason
from .cells import Histogram


def env_type(env: Environment) -> str:
    return "provisioned" if env.provisioned else "on_demand"


class EnvironmentMetrics(Observer):
    """Counts environment lifecycles; a part of :class:`scheduler.metrics.MetricsObserver`."""

    def __init__(self) -> None:
        # function → (type, outcome) → count, and function → (type, reason) → count
        self._starts: dict[str, dict[tuple[str, str], int]] = {}
        self._stops: dict[str, dict[tuple[str, str], int]] = {}
        self._init: dict[str, dict[str, Histogram]] = {}

    def environment_started(self, function: str, env: Environment, ok: bool, init_s: float) -> None:
        kind = env_type(env)
        starts = self._starts.setdefault(function, {})
        key = (kind, "success" if ok else "failure")
        starts[key] = starts.get(key, 0) + 1
        if ok:
            start = "provisioned" if env.provisioned else "cold"
            by_start = self._init.setdefault(function, {})
            histogram = by_start.get(start)
            if histogram is None:
                histogram = by_start[start] = Histogram()
            histogram.observe(init_s)

    def environment_stopped(self, function: str, env: Environment, reason: StopReason) -> None:
        stops = self._stops.setdefault(function, {})
        key = (env_type(env), STOP_RULES[reason].label)
        stops[key] = stops.get(key, 0) + 1

    def collect_environments(self) -> Iterator[Metric]:
        starts = CounterMetricFamily(
            "lambda_environment_starts",
            "Execution environments started, by type (on_demand, provisioned) and Init outcome (success, failure).",
            labels=("function", "type", "outcome"),
        )
        for function, counts in self._starts.items():
            for (kind, outcome), count in counts.items():
                starts.add_metric((function, kind, outcome), count)
        stops = CounterMetricFamily(
            "lambda_environment_stops",
            "Execution environments gone, by type and reason: " + ", ".join(STOP_LABELS) + ".",
            labels=("function", "type", "reason"),
        )
        for function, counts in self._stops.items():
            for (kind, reason), count in counts.items():
                stops.add_metric((function, kind, reason), count)
        init = HistogramMetricFamily(
            "lambda_init_duration_seconds",
            "Duration of a successful Init (the REPORT line's Init Duration), by start: cold (on demand) or "
            "provisioned (ahead of demand).",
            labels=("function", "start"),
        )
        for function, by_start in self._init.items():
            for start, histogram in by_start.items():
                init.samples += histogram.samples(init.name, {"function": function, "start": start})
        yield starts
        yield stops
        yield init
