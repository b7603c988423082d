"""Runs queued Event invocations through the Scheduler, with Lambda's retry rules.

    EventQueue.take ─► age check ─► Scheduler.invoke(request_id = the event's)
        success ─────────────────► ack
        function error / timeout ─► retry after ≈1 min, ≈2 min (MaximumRetryAttempts, default 2)
                                    then drop (RetriesExhausted)
        throttled ────────────────► retry with backoff 1 s doubling to 5 min, until too old
        reserved concurrency 0 ───► drop (ZeroReservedConcurrency)
        older than MaximumEventAgeInSeconds when due ─► drop (EventAgeExceeded)

An event invocation is an ordinary invocation once taken: it passes admission like any other
and may be throttled. At most ``event_concurrency`` events run at once;
the semaphore is taken before the queue is, so no event is leased that cannot start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from . import events, invocation_log
from .config import ServerConfig
from .errors import FunctionNotFound, SchedulerClosed, Throttled
from .events import DEFAULT_EVENT_INVOKE_CONFIG, Event, EventInvokeConfig, EventQueue
from .scheduler import Scheduler

log = logging.getLogger("lambda_scheduler.events")


class EventDispatcher:
    def __init__(
        self,
        scheduler: Scheduler,
        queue: EventQueue,
        settings: ServerConfig,
        configs: Mapping[str, EventInvokeConfig] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.queue = queue
        self.settings = settings
        # Per function name; a function without one gets Lambda's defaults.
        self.configs: dict[str, EventInvokeConfig] = dict(configs or {})
        self._slots = asyncio.Semaphore(settings.event_concurrency)
        self._deliveries: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def config_for(self, function_name: str) -> EventInvokeConfig:
        return self.configs.get(function_name, DEFAULT_EVENT_INVOKE_CONFIG)

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())

    async def stop(self, timeout: float) -> None:
        """Take no more events; give the ones running ``timeout`` seconds to finish."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._deliveries:
            _, late = await asyncio.wait(self._deliveries, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.queue.depth:
            log.warning("%d queued event invocations were not delivered before the server stopped", self.queue.depth)

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                event = await self.queue.take()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.ensure_future(self._deliver(event))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, event: Event) -> None:
        try:
            await self._attempt(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event %s for %s failed inside the scheduler; dropped", event.request_id, event.function_name)
            await self.queue.drop(event, events.INTERNAL_ERROR)
        finally:
            self._slots.release()

    # --- one attempt ----------------------------------------------------------------------

    async def _attempt(self, event: Event) -> None:
        config = self.config_for(event.function_name)
        if event.age_s > config.maximum_event_age_s:
            await self._drop(event, events.EVENT_AGE_EXCEEDED)
            return
        try:
            result = await self.scheduler.invoke(
                event.function_name, event.payload, qualifier=event.qualifier, request_id=event.request_id
            )
        except Throttled:
            await self._throttled(event)
            return
        except FunctionNotFound:
            await self._drop(event, events.FUNCTION_DELETED)
            return
        except SchedulerClosed:
            return  # stopping: the event stays leased; a durable store delivers it after a restart
        invocation_log.emit(result)
        if result.error_type is None:
            await self.queue.ack(event)
            return
        event.attempts += 1
        if event.attempts > config.maximum_retry_attempts:
            await self._drop(event, events.RETRIES_EXHAUSTED)
            return
        delays = self.settings.event_retry_delays_s
        delay = delays[min(event.attempts, len(delays)) - 1]
        log.info(
            "event %s for %s ended in %s; retry %d in %.3g s",
            event.request_id,
            event.function_name,
            result.error_type,
            event.attempts,
            delay,
        )
        await self.queue.retry_later(event, delay)

    async def _throttled(self, event: Event) -> None:
        fn = self.scheduler.functions.get(event.function_name)
        if fn is not None and fn.reserved == 0:
            await self._drop(event, events.ZERO_RESERVED_CONCURRENCY)
            return
        first, longest = self.settings.event_throttle_backoff_s
        delay = min(longest, first * 2 ** min(event.throttles, 32))
        event.throttles += 1
        await self.queue.retry_later(event, delay, throttled=True)

    async def _drop(self, event: Event, reason: str) -> None:
        log.warning(
            "event %s for %s dropped: %s (after %d attempts, %.1f s old)",
            event.request_id,
            event.function_name,
            reason,
            event.attempts,
            event.age_s,
        )
        await self.queue.drop(event, reason)
