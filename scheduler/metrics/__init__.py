"""Prometheus metrics of the scheduler process (named as CloudWatch names Lambda's metrics).

    Scheduler ─observers─► MetricsObserver  (counts: invocations, throttles, errors, latency,
        │                                    duration, Init, environment starts and stops)
        │ read when scraped
        ├──────────────► PoolCollector      (gauges: environments by state, concurrency, limits,
        │                                    provisioned utilisation; isolation info)
    EventQueue ────────► EventQueueCollector (async queue depth, age, retries, drops)
    log_writer ────────► LogWriterCollector  (server log lines dropped by a stalled stderr)
                              │
    GET /metrics ─► Metrics.render() ─► one CollectorRegistry per server ─► text format 0.0.4
                                                                          (exposition.py)

Every name has the ``lambda_`` prefix and base units. Labels are bounded: ``function`` is the
only open-ended one; start types, outcomes, states, reasons and error types are closed sets
(error types are capped per function). The registry belongs to the server, not to
prometheus-client's global default, so several servers can run in one process.

Counted metrics live in plain numbers updated on the event loop (see ``cells.py``) and are
turned into metric families only when scraped; gauges are read from the pools at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import Metric

from ..engine.scheduler import Scheduler
from ..events import EventQueue
from .environments import EnvironmentMetrics
from .event_queue import EventQueueCollector
from .exposition import CONTENT_TYPE, render
from .invocations import InvocationMetrics
from .logs import LogWriterCollector
from .pools import PoolCollector

__all__ = ["CONTENT_TYPE", "Metrics", "MetricsObserver"]


class MetricsObserver(InvocationMetrics, EnvironmentMetrics):
    """The Observer that counts, and the collector that exports what it counted. One class,
    so the engine's fan-out makes one call per event into it."""

    def __init__(self) -> None:
        InvocationMetrics.__init__(self)
        EnvironmentMetrics.__init__(self)

    def describe(self) -> Iterator[Metric]:
        return self.collect()  # empty families when nothing happened yet: cheap, and exact

    def collect(self) -> Iterator[Metric]:
        yield from self.collect_invocations()
        yield from self.collect_environments()


class Metrics:
    """The server's registry and what feeds it. Attach ``observer`` to the Scheduler."""

    def __init__(self, scheduler: Scheduler, queue: EventQueue | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.observer = MetricsObserver()
        self.registry.register(self.observer)
        self.registry.register(PoolCollector(scheduler))
        if queue is not None:
            self.registry.register(EventQueueCollector(queue))
        self.registry.register(LogWriterCollector())
        # The scheduler process's own CPU, memory and file descriptors.
        ProcessCollector(namespace="lambda_scheduler", registry=self.registry)
        # Labels on every sample: a cluster node sets {"node": its name}.
        self.const_labels: dict[str, str] = {}

    def render(self) -> bytes:
        """The exposition text. Call it on the event loop: the collectors read live state."""
        return render(self.registry, self.const_labels)
