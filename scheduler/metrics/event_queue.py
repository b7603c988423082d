"""Metrics of the Event (asynchronous invocation) queue, read from it when scraped.

    POST …/invocations (Event) ─► EventQueue.put ─► dispatcher ─► ack | retry_later | drop
                                      │ counters: received, succeeded, retries, dropped by reason
    GET /metrics ─► EventQueueCollector.collect ─┘ and depth, oldest event age

The queue's own counters are the one source; this only formats them. Every reason an event
can be dropped for is always exported (zero until it happens), so a dashboard shows a flat
line rather than no data.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .. import events
from ..events import EventQueue

DROP_REASONS = (
    events.RETRIES_EXHAUSTED,
    events.EVENT_AGE_EXCEEDED,
    events.ZERO_RESERVED_CONCURRENCY,
    events.FUNCTION_DELETED,
    events.INTERNAL_ERROR,
)


class EventQueueCollector:
    """A prometheus-client collector over the API's :class:`EventQueue`."""

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        q = self.queue
        received, succeeded, retries, dropped, depth, age = self._families()
        received.add_metric((), q.received)
        succeeded.add_metric((), q.succeeded)
        retries.add_metric(("error",), q.retries)
        retries.add_metric(("throttle",), q.throttle_retries)
        for reason in (*DROP_REASONS, *(r for r in q.dropped_by_reason if r not in DROP_REASONS)):
            dropped.add_metric((reason,), q.dropped_by_reason.get(reason, 0))
        depth.add_metric((), q.depth)
        age.add_metric((), q.oldest_age_s)
        yield from (received, succeeded, retries, dropped, depth, age)
        yield CounterMetricFamily(
            "lambda_destination_delivery_failures",
            "Invocation records that could not be sent to a destination (Lambda's DestinationDeliveryFailures).",
            value=q.destination_failures,
        )
        yield CounterMetricFamily(
            "lambda_dead_letter_errors",
            "Events that could not be written to a dead-letter queue (Lambda's DeadLetterErrors).",
            value=q.dead_letter_errors,
        )
        yield HistogramMetricFamily(
            "lambda_async_event_age_seconds",
            "Age of an Event invocation when an attempt starts (Lambda's AsyncEventAge).",
            buckets=q.ages.cumulative(),
            sum_value=q.ages.total,
        )

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             GaugeMetricFamily, GaugeMetricFamily]:  # fmt: skip
        return (
            CounterMetricFamily(
                "lambda_async_events_received", "Event invocations accepted (202) (Lambda's AsyncEventsReceived)."
            ),
            CounterMetricFamily("lambda_async_events_succeeded", "Event invocations that ran successfully."),
            CounterMetricFamily(
                "lambda_async_event_retries",
                "Event invocations queued again, by cause: error (function error or timeout) or throttle.",
                labels=("cause",),
            ),
            CounterMetricFamily(
                "lambda_async_events_dropped",
                "Event invocations given up, by Lambda's reason (Lambda's AsyncEventsDropped).",
                labels=("reason",),
            ),
            GaugeMetricFamily("lambda_async_event_queue_depth", "Event invocations queued or running."),
            GaugeMetricFamily(
                "lambda_async_oldest_event_age_seconds",
                "Age of the oldest Event invocation not yet finished; 0 when the queue is empty (Lambda's "
                "AsyncEventAge, at its maximum).",
            ),
        )
