"""Gauges read from the Scheduler when Prometheus scrapes: environments, concurrency, limits.

    GET /metrics ─► PoolCollector.collect ─► Scheduler.versions(name): FunctionStatus snapshots
                                             of $LATEST and each published version
                                             (environments by state, provisioned, in flight)
                                           ─► Scheduler.admission (account, unreserved)

Nothing here is counted twice: the engine's snapshots are the truth, taken on the event loop,
between two callbacks, so every number is of the same instant. The per-function gauges add up
every version of the function; ``lambda_version_environments`` tells them apart.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric

from ..engine.environment import EnvState
from ..engine.scheduler import Scheduler
from ..engine.status import FunctionStatus, Kind

# A dead handle is an environment already gone, waiting for a callback to drop it.
STATES = tuple(state for state in EnvState if state is not EnvState.DEAD)
_LABEL = re.compile(r"[^a-zA-Z0-9_]")


class _Gauges:
    """One scrape's gauge families, empty until filled."""

    def __init__(self) -> None:
        self.environments = _gauge(
            "lambda_environments",
            "Execution environments by type (on_demand, provisioned) and state.",
            "function",
            "type",
            "state",
        )
        self.version_environments = _gauge(
            "lambda_version_environments",
            "Execution environments of functions with published versions, by version ($LATEST or a number), "
            "type and state.",
            "function",
            "version",
            "type",
            "state",
        )
        self.concurrent = _gauge(
            "lambda_concurrent_executions",
            "Invocations in flight, including those waiting for a cold start (Lambda's ConcurrentExecutions).",
            "function",
        )
        self.reserved = _gauge(
            "lambda_reserved_concurrency", "Reserved concurrency, for functions that have it.", "function"
        )
        self.requested = _gauge(
            "lambda_provisioned_concurrency_requested",
            "Provisioned concurrency configured for the function.",
            "function",
        )
        self.allocated = _gauge(
            "lambda_provisioned_concurrency_allocated",
            "Provisioned environments initialised and in service.",
            "function",
        )
        self.provisioned_busy = _gauge(
            "lambda_provisioned_concurrent_executions",
            "Provisioned environments running an invocation (Lambda's ProvisionedConcurrentExecutions).",
            "function",
        )
        self.utilization = _gauge(
            "lambda_provisioned_concurrency_utilization",
            "Busy provisioned environments over those allocated, 0 to 1 (Lambda's ProvisionedConcurrencyUtilization).",
            "function",
        )
        self.account_limit = _gauge(
            "lambda_account_concurrency_limit", "Concurrent executions allowed for the account."
        )
        self.unreserved_limit = _gauge(
            "lambda_unreserved_concurrency_limit",
            "Concurrency left to functions without reserved concurrency (the account limit minus reservations).",
        )
        self.account_in_flight = _gauge(
            "lambda_account_concurrent_executions", "Invocations in flight across every function."
        )
        self.unreserved_in_flight = _gauge(
            "lambda_unreserved_concurrent_executions",
            "Invocations in flight of functions without reserved concurrency (Lambda's UnreservedConcurrentExecutions).",
        )

    def all(self) -> tuple[GaugeMetricFamily, ...]:
        return tuple(vars(self).values())


def _summed(versions: list[FunctionStatus], gauges: _Gauges) -> FunctionStatus:
    """The function as a whole: $LATEST's snapshot with every version's environments and
    provisioned concurrency added in (each version's environments also go to their gauge)."""
    counts: Counter[tuple[Kind, EnvState]] = Counter()
    requested = allocated = busy = 0
    for status in versions:
        for (kind, state), n in status.environments.items():
            counts[kind, state] += n
            if state in STATES and len(versions) > 1:  # only functions that have published versions
                gauges.version_environments.add_metric((status.name, status.version, kind, state.value), n)
        requested += status.provisioned.requested
        allocated += status.provisioned.allocated
        busy += status.provisioned.busy
    latest = versions[0]
    provisioned = dataclasses.replace(latest.provisioned, requested=requested, allocated=allocated, busy=busy)
    return dataclasses.replace(latest, environments=dict(counts), provisioned=provisioned)


def _gauge(name: str, text: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels)


class PoolCollector:
    """A prometheus-client collector over one Scheduler."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def describe(self) -> Iterator[Metric]:
        # Names only, so that the registry refuses a clash when this is registered.
        yield from _Gauges().all()

    def collect(self) -> Iterator[Metric]:
        gauges = _Gauges()
        for name in self.scheduler.functions:
            self._function(_summed(self.scheduler.versions(name), gauges), gauges)
        admission = self.scheduler.admission
        gauges.account_limit.add_metric((), self.scheduler.settings.account_concurrency)
        gauges.unreserved_limit.add_metric((), admission.unreserved_capacity)
        gauges.account_in_flight.add_metric((), admission.in_flight)
        gauges.unreserved_in_flight.add_metric((), admission.unreserved_in_flight)
        yield from gauges.all()
        info = self._isolation()
        if info is not None:
            yield info

    @staticmethod
    def _function(fn: FunctionStatus, gauges: _Gauges) -> None:
        counts = fn.environments
        provisioned = fn.provisioned
        has_provisioned = provisioned.requested > 0 or any(counts["provisioned", s] for s in STATES)
        for kind in ("on_demand", "provisioned"):
            if kind == "provisioned" and not has_provisioned:
                continue
            for state in STATES:
                gauges.environments.add_metric((fn.name, kind, state.value), counts[kind, state])
        gauges.concurrent.add_metric((fn.name,), fn.in_flight)
        if fn.reserved is not None:
            gauges.reserved.add_metric((fn.name,), fn.reserved)
        if has_provisioned:
            busy, allocated = provisioned.busy, provisioned.allocated
            gauges.requested.add_metric((fn.name,), provisioned.requested)
            gauges.allocated.add_metric((fn.name,), allocated)
            gauges.provisioned_busy.add_metric((fn.name,), busy)
            # Lambda divides by the provisioned concurrency allocated (initialised, ready to serve).
            gauges.utilization.add_metric((fn.name,), busy / allocated if allocated else 0.0)

    def _isolation(self) -> InfoMetricFamily | None:
        # Scheduler.isolation (the engine's resource isolation) is read defensively: an engine
        # without it simply has no info metric.
        isolation = getattr(self.scheduler, "isolation", None)
        describe = getattr(isolation, "describe", None)
        if describe is None:
            return None
        mechanisms = {_LABEL.sub("_", str(k)): str(v) for k, v in describe().items()}
        return InfoMetricFamily(
            "lambda_isolation",
            "How execution environments are isolated: the mechanism in use for each resource.",
            value=mechanisms,
        )
