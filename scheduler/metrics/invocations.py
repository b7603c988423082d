"""Metrics counted per invocation: outcomes, errors, throttles, latency and handler duration.

    Scheduler.invoke ─► observers.invocation_finished(function, result, provisioned_configured)
                     └► observers.throttled(function, reason)        (429 at admission or scaling)

This is the hot path: ``invocation_finished`` runs once per invocation. It finds the
:class:`Series` of (function, start type) in two dict lookups and updates plain numbers; no
label tuple is built, no lock taken, no text formatted. Families are made at scrape time.

Outcomes (the ``outcome`` label) are a closed set: ``success``, ``function_error`` (the handler
raised, or Init failed), ``timeout``, ``crash`` (``Runtime.ExitError``: the runtime exited or
was killed), ``out_of_memory`` (the REPORT line says ``Runtime.OutOfMemory``; the caller sees
``Runtime.ExitError``), and ``throttled`` (refused before any start, so ``start="none"``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from ..engine.invocation import EXIT_ERROR, TIMEOUT_ERROR, InvocationResult
from ..engine.observer import Observer
from .cells import Histogram

OUTCOMES = ("success", "function_error", "timeout", "crash", "out_of_memory")
THROTTLED = "throttled"
NO_START = "none"  # the start label of a throttled invocation: it never reached an environment
OUT_OF_MEMORY_ERROR = "Runtime.OutOfMemory"

# Error types come from user code (the exception's class name), so they are open-ended: each
# function keeps its first few distinct types and counts the rest as "other".
MAX_ERROR_TYPES = 20
OTHER_ERROR_TYPE = "other"


class Series:
    """Everything counted for one (function, start type)."""

    __slots__ = (
        "crash",
        "duration",
        "function_error",
        "latency",
        "out_of_memory",
        "spillover",
        "spills",
        "start",
        "success",
        "timeout",
    )

    def __init__(self, start: str) -> None:
        self.start = start
        # Lambda counts every invocation a function with provisioned concurrency runs on
        # standard concurrency (cold or warm) as a spillover.
        self.spills = start != "provisioned"
        self.success = 0
        self.function_error = 0
        self.timeout = 0
        self.crash = 0
        self.out_of_memory = 0
        self.spillover = 0
        self.latency = Histogram()
        self.duration = Histogram()

    def outcome_counts(self) -> Iterator[tuple[str, int]]:
        for outcome in OUTCOMES:
            yield outcome, getattr(self, outcome)


def outcome_of(result: InvocationResult) -> str:
    """The ``outcome`` label of a finished (not throttled) invocation."""
    if result.status == "success":
        return "success"
    if result.status == "timeout" or result.error_type == TIMEOUT_ERROR:
        return "timeout"
    if result.report_error_type == OUT_OF_MEMORY_ERROR:
        return "out_of_memory"
    if result.error_type == EXIT_ERROR:
        return "crash"
    return "function_error"


class InvocationMetrics(Observer):
    """Counts invocations; a part of :class:`scheduler.metrics.MetricsObserver`."""

    def __init__(self) -> None:
        self._series: dict[str, dict[str, Series]] = {}
        self._throttles: dict[str, dict[str, int]] = {}
        self._errors: dict[str, dict[str, int]] = {}

    # --- the hot path ---------------------------------------------------------------------

    def invocation_finished(self, function: str, result: InvocationResult, provisioned_configured: bool) -> None:
        by_start = self._series.get(function)
        series = by_start.get(result.start) if by_start is not None else None
        if series is None:
            series = self._add_series(function, result.start)
        if result.status == "success":
            series.success += 1
        else:
            self._count_failure(function, series, result)
        series.latency.observe(result.latency_s)
        series.duration.observe(result.duration_ms * 0.001)
        if provisioned_configured and series.spills:
            series.spillover += 1

    def _add_series(self, function: str, start: str) -> Series:
        series = Series(start)
        self._series.setdefault(function, {})[start] = series
        return series

    def _count_failure(self, function: str, series: Series, result: InvocationResult) -> None:
        outcome = outcome_of(result)
        setattr(series, outcome, getattr(series, outcome) + 1)
        types = self._errors.setdefault(function, {})
        # The REPORT line's type is the precise one (Runtime.OutOfMemory, not Runtime.ExitError).
        error_type = result.report_error_type or result.error_type or "Unknown"
        if error_type not in types and len(types) >= MAX_ERROR_TYPES:
            error_type = OTHER_ERROR_TYPE
        types[error_type] = types.get(error_type, 0) + 1

    def throttled(self, function: str, reason: str) -> None:
        reasons = self._throttles.get(function)
        if reasons is None:
            reasons = self._throttles[function] = {}
        reasons[reason] = reasons.get(reason, 0) + 1

    # --- scrape time ----------------------------------------------------------------------

    def collect_invocations(self) -> Iterator[Metric]:
        invocations, latency, duration, spillover = _invocations(), _latency(), _duration(), _spillover()
        for function, by_start in self._series.items():
            for start, series in by_start.items():
                for outcome, count in series.outcome_counts():
                    invocations.add_metric((function, start, outcome), count)
                labels = {"function": function, "start": start}
                latency.samples += series.latency.samples(latency.name, labels)
                duration.samples += series.duration.samples(duration.name, labels)
            # Exported for functions with provisioned concurrency (they have provisioned starts).
            if "provisioned" in by_start or any(s.spillover for s in by_start.values()):
                spillover.add_metric((function,), sum(s.spillover for s in by_start.values()))
        throttles = _throttles()
        for function, reasons in self._throttles.items():
            for reason, count in reasons.items():
                throttles.add_metric((function, reason), count)
            invocations.add_metric((function, NO_START, THROTTLED), sum(reasons.values()))
        errors = _errors()
        for function, types in self._errors.items():
            for error_type, count in types.items():
                errors.add_metric((function, error_type), count)
        yield from (invocations, throttles, errors, spillover, latency, duration)


def _invocations() -> CounterMetricFamily:
    return CounterMetricFamily(
        "lambda_invocations",
        "Invocations by function, start type (cold, warm, provisioned; none when throttled) and outcome "
        "(success, function_error, timeout, crash, out_of_memory, throttled). Lambda's Invocations metric "
        'is outcome!="throttled".',
        labels=("function", "start", "outcome"),
    )


def _latency() -> HistogramMetricFamily:
    return HistogramMetricFamily(
        "lambda_invocation_latency_seconds",
        "Invocation latency as the scheduler sees it: admission to reply, including any cold start.",
        labels=("function", "start"),
    )


def _duration() -> HistogramMetricFamily:
    return HistogramMetricFamily(
        "lambda_duration_seconds",
        "Handler duration, as in the REPORT line's Duration (Lambda's Duration metric).",
        labels=("function", "start"),
    )


def _spillover() -> CounterMetricFamily:
    return CounterMetricFamily(
        "lambda_provisioned_concurrency_spillover_invocations",
        "Invocations of a function with provisioned concurrency that ran on standard concurrency "
        "(Lambda's ProvisionedConcurrencySpilloverInvocations).",
        labels=("function",),
    )


def _throttles() -> CounterMetricFamily:
    return CounterMetricFamily(
        "lambda_throttles",
        "Invocations refused with 429 TooManyRequestsException, by Lambda's reason.",
        labels=("function", "reason"),
    )


def _errors() -> CounterMetricFamily:
    return CounterMetricFamily(
        "lambda_errors",
        "Invocations that ended in an error, by error type: Lambda's Runtime.*, Sandbox.Timedout and "
        f"Function.* types, or the handler's exception name (the first {MAX_ERROR_TYPES} per function; "
        f'later ones count as "{OTHER_ERROR_TYPE}").',
        labels=("function", "error_type"),
    )
