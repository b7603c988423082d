"""The event queue as the API, the dispatcher and the metrics see it: a store that keeps
events, a schedule (in memory) of when each unfinished one is due, and counters.

    put ─► store.add (committed) ─► schedule ─► take (due) ─► leased ─► ack | retry_later | drop
                                                                          └─ store.save each time

The schedule is rebuilt from the store on ``open``: an event that was running when the server
died is due again at once (delivery is at least once).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import time

from .model import Event, EventState
from .store import EventStore, MemoryEventStore

# Buckets of lambda_async_event_age_seconds: milliseconds on an idle server, up to the 6-hour
# maximum age.
AGE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0)


class AgeHistogram:
    """Ages of events when an attempt starts (Lambda's AsyncEventAge), cumulative as Prometheus
    wants them only when read."""

    def __init__(self) -> None:
        self.counts = [0] * (len(AGE_BUCKETS_S) + 1)
        self.total = 0.0

    def observe(self, age_s: float) -> None:
        self.counts[bisect.bisect_left(AGE_BUCKETS_S, age_s)] += 1
        self.total += age_s

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, count in zip((*map(str, AGE_BUCKETS_S), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class EventQueue:
    def __init__(self, store: EventStore | None = None) -> None:
        self.store: EventStore = store if store is not None else MemoryEventStore()
        self._waiting: list[tuple[float, int, Event]] = []
        self._leased: dict[str, Event] = {}
        self._seq = itertools.count()  # ties in due time go first in, first out
        self._changed = asyncio.Event()
        self.received = 0
        self.recovered = 0  # unfinished events found in the store at open
        self.succeeded = 0
        self.retries = 0  # re-queued after a function error or timeout
        self.throttle_retries = 0  # re-queued after a throttle
        self.dropped = 0
        self.dropped_by_reason: dict[str, int] = {}
        self.destination_failures = 0  # records that could not be delivered to a destination
        self.dead_letter_errors = 0  # events that could not be written to a dead-letter queue
        self.ages = AgeHistogram()

    # --- life -----------------------------------------------------------------------------

    async def open(self) -> int:
        """Schedule the store's unfinished events; how many there were."""
        found = await self.store.open()
        for event in found:
            if event.state is EventState.RUNNING:
                # Cut short by the stop: runs again, in its place (it was due when it started).
                event.state = EventState.PENDING
            self._push(event)
        self.recovered = len(found)
        return len(found)

    async def close(self) -> None:
        await self.store.close()

    # --- the schedule ---------------------------------------------------------------------

    def _push(self, event: Event) -> None:
        heapq.heappush(self._waiting, (event.due, next(self._seq), event))
        self._changed.set()

    @property
    def depth(self) -> int:
        return len(self._waiting) + len(self._leased)

    @property
    def oldest_age_s(self) -> float:
        """Age of the oldest event not yet finished; 0 when the queue is empty."""
        times = [e.received_at for _, _, e in self._waiting]
        times.extend(e.received_at for e in self._leased.values())
        oldest = min(times, default=None)
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    async def put(self, event: Event) -> None:
        """Accept a new event: returns once the store has committed it."""
        event.due = event.received_at
        event.state = EventState.PENDING
        await self.store.add(event)
        self.received += 1
        self._push(event)

    async def take(self) -> Event:
        """Wait for the next due event and lease it until ``ack``, ``retry_later`` or ``drop``."""
        while True:
            wait: float | None = None
            if self._waiting:
                wait = self._waiting[0][0] - time.time()
                if wait <= 0:
                    event = heapq.heappop(self._waiting)[2]
                    self._leased[event.request_id] = event
                    return event
            self._changed.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def running(self, event: Event) -> None:
        """An attempt of a leased event starts."""
        event.state = EventState.RUNNING
        self.ages.observe(event.age_s)
        await self.store.save(event)

    async def ack(self, event: Event) -> None:
        self._leased.pop(event.request_id, None)
        event.state = EventState.SUCCEEDED
        await self.store.save(event)
        self.succeeded += 1

    async def retry_later(self, event: Event, delay_s: float, *, throttled: bool = False) -> None:
        """Return a leased event, with its updated counts, to be taken after ``delay_s``."""
        self._leased.pop(event.request_id, None)
        event.due = time.time() + delay_s
        # A throttled event that never ran is still pending; one that ran and failed is retrying.
        event.state = EventState.RETRYING if event.attempts or not throttled else EventState.PENDING
        await self.store.save(event)
        self._push(event)
        if throttled:
            self.throttle_retries += 1
        else:
            self.retries += 1

    async def drop(self, event: Event, reason: str, *, dead_lettered: bool = False) -> None:
        self._leased.pop(event.request_id, None)
        event.state = EventState.DEAD_LETTERED if dead_lettered else EventState.FAILED
        await self.store.save(event)
        self.dropped += 1
        self.dropped_by_reason[reason] = self.dropped_by_reason.get(reason, 0) + 1

    def release(self, event: Event) -> None:
        """Forget a leased event without finishing it (the server stops): the store still has
        it unfinished, so the next start delivers it."""
        self._leased.pop(event.request_id, None)

    def stats(self) -> dict[str, object]:
        return {
            "depth": self.depth,
            "oldest_age_s": round(self.oldest_age_s, 3),
            "received": self.received,
            "recovered": self.recovered,
            "succeeded": self.succeeded,
            "retries": self.retries,
            "throttle_retries": self.throttle_retries,
            "dropped": self.dropped,
            "dropped_by_reason": dict(self.dropped_by_reason),
            "destination_failures": self.destination_failures,
            "dead_letter_errors": self.dead_letter_errors,
        }
