"""Runs queued Event invocations through the Scheduler, with Lambda's asynchronous rules.

    EventQueue.take ─► parked by function ─► started only while Scheduler.capacity(function) > 0
        (woken by Scheduler.capacity_freed: an event never waits while an environment could run it)
        ─► age check ─► Scheduler.invoke(request_id = the event's)
        success ─────────────────► ack ─► OnSuccess destination
        function error / timeout ─► retry after ≈1 min, ≈2 min (MaximumRetryAttempts, default 2)
                                    then give up (RetriesExhausted)
        throttled / system error ─► retry with backoff 1 s doubling to 5 min, until too old
        reserved concurrency 0 ───► give up at once (ZeroReservedConcurrency)
        older than MaximumEventAgeInSeconds when due ─► give up (EventAgeExceeded)
    give up ─► dead-letter queue (DeadLetterConfig) and OnFailure destination (destinations.py)

An event invocation is an ordinary invocation once started: it passes admission like any
other. Starting one only when admission has room (counting those started but not yet admitted)
means the dispatcher never throttles itself; a throttle can still come from a synchronous
invocation that took the slot meanwhile, and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import invocation_log
from ..config import ServerConfig
from ..engine.invocation import InvocationResult
from ..engine.scheduler import Scheduler
from ..errors import FunctionNotFound, SchedulerClosed, SchedulerError, Throttled
from . import destinations, model
from .destinations import DestinationKind, LocalSinks
from .model import DEFAULT_EVENT_INVOKE_CONFIG, Event, EventInvokeConfig
from .queue import EventQueue

log = logging.getLogger("lambda_scheduler.events")

# Events taken from the queue and waiting for capacity, at most: beyond, the queue keeps them
# (so one function without room does not pull every event into the waiting lists).
PARKED_LIMIT = 1000
_NO_LIMIT = 1 << 30


class EventDispatcher:
    def __init__(
        self,
        scheduler: Scheduler,
        queue: EventQueue,
        settings: ServerConfig,
        configs: Mapping[str, EventInvokeConfig] | None = None,
        *,
        dead_letters: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.queue = queue
        self.settings = settings
        # By model.config_key (the function name, or name:qualifier for a version or alias);
        # one without gets Lambda's defaults.
        self.configs: dict[str, EventInvokeConfig] = dict(configs or {})
        # Per function name: its DeadLetterConfig.TargetArn.
        self.dead_letters: dict[str, str] = dict(dead_letters or {})
        self._data_dir = data_dir
        self._sinks: LocalSinks | None = None
        self._parked: dict[str, collections.deque[Event]] = {}
        self._parked_count = 0
        self._starting: dict[str, int] = {}  # started, not yet past admission
        self._deliveries: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def config_for(self, function_name: str, qualifier: str | None = None) -> EventInvokeConfig:
        return self.configs.get(model.config_key(function_name, qualifier), DEFAULT_EVENT_INVOKE_CONFIG)

    @property
    def sinks(self) -> LocalSinks:
        if self._sinks is None:
            root = self._data_dir
            if root is None:  # init_app without a data dir: still never drop a record in silence
                root = Path(tempfile.mkdtemp(prefix="lambda-scheduler-data-"))
                log.warning("no data dir: destination records are written under %s", root)
            self._sinks = LocalSinks(root)
        return self._sinks

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())

    async def halt(self) -> None:
        """Start no more events (those running go on). Events taken but not started are
        released: the store still has them unfinished, for the next start."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for waiting in self._parked.values():
            for event in waiting:
                self.queue.release(event)
        self._parked.clear()
        self._parked_count = 0

    async def stop(self, deadline: float) -> None:
        """Take no more events; give those running until ``deadline`` (loop time) to finish."""
        await self.halt()
        if self._deliveries:
            timeout = max(0.0, deadline - asyncio.get_running_loop().time())
            _, late = await asyncio.wait(self._deliveries, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.queue.depth:
            log.info("%d event invocations stay queued in the store for the next start", self.queue.depth)

    async def _run(self) -> None:
        take: asyncio.Task[Event] | None = None
        try:
            while True:
                self._start_what_fits()
                if take is None and self._parked_count < PARKED_LIMIT:
                    take = asyncio.ensure_future(self.queue.take())
                self._wake.clear()
                freed = asyncio.ensure_future(self.scheduler.capacity_freed())
                woken = asyncio.ensure_future(self._wake.wait())
                waits: set[asyncio.Future[Any]] = {freed, woken}
                if take is not None:
                    waits.add(take)
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    freed.cancel()
                    woken.cancel()
                if take is not None and take.done():
                    event = take.result()
                    take = None
                    self._parked.setdefault(event.function_name, collections.deque()).append(event)
                    self._parked_count += 1
        finally:
            if take is not None:
                take.cancel()

    def room(self, function_name: str) -> int:
        """Invocations of the function that may start now (a cluster node pulls no more)."""
        if self._runner is None:
            return 0  # halted (or not started): nothing starts
        fn = self.scheduler.functions.get(function_name)
        if fn is None or fn.reserved == 0:
            return _NO_LIMIT  # the attempt gives it up at once (deleted, or reserved 0)
        return self.scheduler.capacity(function_name) - self._starting.get(function_name, 0)

    def free_slots(self) -> int:
        """Events that may still be taken before the delivery limit (event_concurrency) is reached."""
        if self._runner is None:
            return 0
        return self.settings.event_concurrency - len(self._deliveries) - self._parked_count

    def _start_what_fits(self) -> None:
        for name in list(self._parked):
            waiting = self._parked[name]
            room = self.room(name)
            while waiting and room > 0 and len(self._deliveries) < self.settings.event_concurrency:
                self._start(waiting.popleft())
                self._parked_count -= 1
                room -= 1
            if not waiting:
                del self._parked[name]

    def _start(self, event: Event) -> None:
        self._starting[event.function_name] = self._starting.get(event.function_name, 0) + 1
        task = asyncio.ensure_future(self._deliver(event))
        self._deliveries.add(task)
        task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self._wake.set()  # a delivery slot is free

    def _admitted(self, event: Event) -> None:
        count = self._starting.get(event.function_name, 0) - 1
        if count > 0:
            self._starting[event.function_name] = count
        else:
            self._starting.pop(event.function_name, None)

    async def _deliver(self, event: Event) -> None:
        counted = True
        try:
            config = self.config_for(event.function_name, event.qualifier)
            if event.age_s > config.maximum_event_age_s:
                self._admitted(event)
                counted = False
                await self._give_up(event, model.EVENT_AGE_EXCEEDED)
                return
            await self.queue.running(event)
            self._admitted(event)
            counted = False
            # No await between the count and admission: Scheduler.invoke admits synchronously.
            result = await self.scheduler.invoke(
                event.function_name, event.payload, qualifier=event.qualifier, request_id=event.request_id
            )
        except SchedulerClosed:
            self.queue.release(event)  # stopping: unfinished in the store, delivered after a restart
            return
        except Throttled:
            await self._throttled(event)
            return
        except FunctionNotFound:
            await self._drop(event, model.FUNCTION_DELETED)
            return
        except (SchedulerError, OSError) as exc:
            log.warning("event %s for %s: system error %s; retrying", event.request_id, event.function_name, exc)
            await self._backoff(event)
            return
        except asyncio.CancelledError:
            self.queue.release(event)
            raise
        except Exception:
            log.exception("event %s for %s failed inside the scheduler; retrying", event.request_id, event.function_name)
            await self._backoff(event)
            return
        finally:
            if counted:
                self._admitted(event)
        await self._finished(event, result)

    # --- outcomes -------------------------------------------------------------------------

    async def _finished(self, event: Event, result: InvocationResult) -> None:
        invocation_log.emit(result)
        event.response, event.error_type = result.payload, result.error_type
        event.executed_version = result.version
        config = self.config_for(event.function_name, event.qualifier)
        if result.error_type is None:
            await self.queue.ack(event)
            if config.destinations.on_success is not None:
                await self._send(config.destinations.on_success, self._record(event, "Success"))
            return
        event.attempts += 1
        if event.attempts > config.maximum_retry_attempts:
            await self._give_up(event, model.RETRIES_EXHAUSTED)
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
            await self._give_up(event, model.ZERO_RESERVED_CONCURRENCY)
            return
        await self._backoff(event)

    async def _backoff(self, event: Event) -> None:
        """Throttles and system errors: retried with backoff until the event is too old."""
        first, longest = self.settings.event_throttle_backoff_s
        delay = min(longest, first * 2 ** min(event.throttles, 32))
        event.throttles += 1
        if event.age_s + delay > self.config_for(event.function_name, event.qualifier).maximum_event_age_s:
            await self._give_up(event, model.EVENT_AGE_EXCEEDED)
            return
        await self.queue.retry_later(event, delay, throttled=True)

    async def _drop(self, event: Event, reason: str) -> None:
        """Give up an event without a record (its function is gone)."""
        self._log_drop(event, reason)
        await self.queue.drop(event, reason)

    def _log_drop(self, event: Event, reason: str) -> None:
        log.warning(
            "event %s for %s dropped: %s (after %d attempts, %.1f s old)",
            event.request_id,
            event.function_name,
            reason,
            event.attempts,
            event.age_s,
        )

    async def _give_up(self, event: Event, reason: str) -> None:
        """A failed event: to the dead-letter queue and the OnFailure destination, if any."""
        self._log_drop(event, reason)
        dead_lettered = False
        target = self.dead_letters.get(event.function_name)
        if target is not None:
            dead_lettered = self._dead_letter(target, event)
        await self.queue.drop(event, reason, dead_lettered=dead_lettered)
        on_failure = self.config_for(event.function_name, event.qualifier).destinations.on_failure
        if on_failure is not None:
            # Lambda's conditions: a reserved concurrency of 0 gives the event up as its retries would.
            condition = model.EVENT_AGE_EXCEEDED if reason == model.EVENT_AGE_EXCEEDED else model.RETRIES_EXHAUSTED
            await self._send(on_failure, self._record(event, condition))

    def _dead_letter(self, target: str, event: Event) -> bool:
        if event.error_type is not None:
            code, message = 200, _error_message(event.response) or event.error_type
        else:
            code, message = 429, "Rate Exceeded."
        try:
            self.sinks.write(target, destinations.dead_letter_message(event.request_id, event.payload, code, message))
        except OSError as exc:
            self.queue.dead_letter_errors += 1
            log.error("event %s: could not write to dead-letter queue %s: %s", event.request_id, target, exc)
            return False
        return True

    def _record(self, event: Event, condition: str) -> dict[str, Any]:
        return destinations.invocation_record(
            request_id=event.request_id,
            function_arn=self.scheduler.settings.function_arn(event.function_name, event.qualifier or "$LATEST"),
            condition=condition,
            invoke_count=event.invocations,
            request_payload=event.payload,
            response=event.response,
            function_error=event.error_type is not None,
            now=time.time(),
            executed_version=event.executed_version or self._version_of(event),
        )

    def _version_of(self, event: Event) -> str:
        """The version the event's qualifier names now (for an event that ran before a restart)."""
        try:
            return self.scheduler.describe(event.function_name, event.qualifier).version
        except SchedulerError:
            return "$LATEST"

    async def _send(self, arn: str, record: dict[str, Any]) -> None:
        """Deliver a record to a destination; a failure is counted and logged, never raised."""
        try:
            if destinations.kind_of(arn) is DestinationKind.LAMBDA:
                target = self.scheduler.resolve(arn)
                body = json.dumps(record, separators=(",", ":")).encode()
                await self.queue.put(Event(str(uuid.uuid4()), target.name, None, body))
            else:
                self.sinks.write(arn, record)
        except (SchedulerError, OSError) as exc:
            self.queue.destination_failures += 1
            log.error(
                "event %s: could not deliver its record to %s: %s", record["requestContext"]["requestId"], arn, exc
            )


def _error_message(response: bytes | None) -> str | None:
    try:
        parsed = json.loads(response or b"")
    except ValueError:
        return None
    message = parsed.get("errorMessage") if isinstance(parsed, dict) else None
    return message if isinstance(message, str) else None
