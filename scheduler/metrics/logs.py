"""Metrics of the server's own log writer (log_writer.py), read from it when scraped.

Lines dropped because stderr's reader stopped reading are exported (zero until it happens), so
a silent gap in the server's log shows as a number rather than not at all.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from .. import log_writer


class LogWriterCollector:
    """A prometheus-client collector over the process's installed log writer (none: zero)."""

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        writer = log_writer.installed()
        yield CounterMetricFamily(
            "lambda_scheduler_log_lines_dropped",
            "Server log lines dropped because the log's sink (stderr) stalled or failed.",
            value=0 if writer is None else writer.dropped_lines,
        )
