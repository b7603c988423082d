"""``ClusterEventQueue``: the event queue of one node, backed by a JetStream stream that every
node shares. The dispatcher (events/dispatcher.py) is the same as a single node's: it takes due
events from this queue and applies Lambda's rules; only where events come from and go differs.

    put ─► publish to lambda.events.<function> ─► JetStream acked ─► 202
    puller per function: fetch at most (dispatcher room − events already held) ─► schedule
        a message not yet due (a retry) ─► nak with the remaining delay: it comes back then
    ack ─► msg.ack · retry_later ─► publish the event with its new counts and due time, then ack
    drop ─► msg.ack · release (the node stops) ─► nak: another node takes it at once
    held messages get in_progress every few seconds, so a long run is not redelivered; a node
    that dies stops sending them, and after the ack wait JetStream delivers its events again

The local store (in memory) only answers GET /events for the events this node has handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from ..engine.scheduler import Scheduler
from ..errors import SchedulerError
from ..events.model import Event, EventState
from ..events.queue import EventQueue
from . import codec
from .link import EVENT_STREAM, EVENT_SUBJECT, ClusterLink, cancel, event_subject

log = logging.getLogger("lambda_scheduler.cluster")

# Messages one fetch asks for, at most: a function with a large room still takes them in
# batches, so the other nodes get their share.
FETCH_MAX = 64
# How long a fetch waits at the server for a message before it looks at the room again.
PULL_WAIT_S = 1.0
# The ack wait: the function's timeout plus this margin, at most ACK_WAIT_MAX_S; held messages
# are extended (in_progress) every ACK_WAIT_MIN_S / 3, so a run longer than the wait is kept.
ACK_MARGIN_S = 5.0
ACK_WAIT_MIN_S = 6.0
ACK_WAIT_MAX_S = 60.0
PROGRESS_EVERY_S = ACK_WAIT_MIN_S / 3
# Accepted events the stream keeps, at most, for how long: Lambda's maximum event age.
STREAM_MAX_AGE_S = 6 * 3600.0
DEDUPE_WINDOW_S = 120.0


class EventStoreUnavailable(SchedulerError):
    code = "ServiceException"
    status = 503


class Room(Protocol):
    def room(self, function_name: str) -> int: ...

    def free_slots(self) -> int: ...


def ack_wait_for(timeout_s: float) -> float:
    return min(ACK_WAIT_MAX_S, max(ACK_WAIT_MIN_S, timeout_s + ACK_MARGIN_S))


def consumer_name(function_name: str) -> str:
    return f"fn-{function_name}"


class ClusterEventQueue(EventQueue):
    def __init__(self, link: ClusterLink, scheduler: Scheduler) -> None:
        super().__init__()
        self.link = link
        self.scheduler = scheduler
        self._room: Callable[[str], int] = lambda _name: 0
        self._free_slots: Callable[[], int] = lambda: 0
        self._messages: dict[str, Msg] = {}  # by request id: the message each held event came in
        self._held: dict[str, set[str]] = {}  # by function: pulled, not yet started
        self._pullers: dict[str, asyncio.Task[None]] = {}
        self._progress: asyncio.Task[None] | None = None
        self._moved = asyncio.Event()  # an event started or finished: the room may have grown

    def bind(self, dispatcher: Room) -> None:
        """The dispatcher whose room each fetch is sized by (it is made after the queue)."""
        self._room = dispatcher.room
        self._free_slots = dispatcher.free_slots

    # --- life -----------------------------------------------------------------------------

    async def open(self) -> int:
        config = api.StreamConfig(
            name=EVENT_STREAM,
            subjects=[f"{EVENT_SUBJECT}.>"],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            max_age=STREAM_MAX_AGE_S,
            duplicate_window=DEDUPE_WINDOW_S,
        )
        try:
            await self.link.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self.link.js.update_stream(config)  # made by an older node with other limits
        for name in list(self.scheduler.functions):
            await self.follow(name)
        self._progress = asyncio.ensure_future(self._extend())
        return 0

    async def close(self) -> None:
        tasks = [*self._pullers.values(), self._progress]
        self._pullers.clear()
        self._progress = None
        await cancel(*tasks)
        for msg in list(self._messages.values()):
            with contextlib.suppress(Exception):
                await msg.nak()  # not run here: to another node at once
        self._messages.clear()
        await super().close()

    async def follow(self, function_name: str) -> None:
        """Pull the function's events (its durable consumer is made if it is not there)."""
        if function_name in self._pullers:
            return
        fn = self.scheduler.functions.get(function_name)
        timeout = fn.config.timeout_s if fn is not None else 3.0
        durable = consumer_name(function_name)
        await self.link.js.add_consumer(
            EVENT_STREAM,
            api.ConsumerConfig(
                durable_name=durable,
                filter_subject=event_subject(function_name),
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=ack_wait_for(float(timeout)),
                max_ack_pending=-1,
            ),
        )
        subscription = await self.link.js.pull_subscribe_bind(durable=durable, stream=EVENT_STREAM)
        self._pullers[function_name] = asyncio.ensure_future(self._pull(function_name, subscription))

    def holds(self, request_id: str) -> bool:
        """Whether the event with this request id was pulled by this node (and not finished)."""
        return request_id in self._messages

    # --- accepting ------------------------------------------------------------------------

    async def put(self, event: Event) -> None:
        """Returns once JetStream has the event on disk: only then may the API answer 202."""
        event.due = event.received_at
        event.state = EventState.PENDING
        await self._publish(event)
        self.received += 1
        await self.store.add(event)
        if event.function_name not in self._pullers:
            await self.follow(event.function_name)  # made on this node after the start

    async def _publish(self, event: Event) -> None:
        try:
            await self.link.js.publish(
                event_subject(event.function_name),
                codec.encode(event),
                stream=EVENT_STREAM,
                headers={"Nats-Msg-Id": codec.message_id(event)},
            )
        except (TimeoutError, nats.errors.Error) as exc:
            # Not acknowledged: not accepted. The caller may send it again (a 503 it retries).
            raise EventStoreUnavailable(f"The event store (NATS JetStream) did not accept the event: {exc}") from None

    # --- pulling --------------------------------------------------------------------------

    def _wanted(self, function_name: str) -> int:
        """The function's room, and the dispatcher's free delivery slots, less what this node
        already holds and has not started: what it could start now, no more."""
        held_here = len(self._held.get(function_name, ()))
        held_all = sum(len(held) for held in self._held.values())
        return min(FETCH_MAX, self._room(function_name) - held_here, self._free_slots() - held_all)

    async def _pull(self, function_name: str, subscription: object) -> None:
        fetch = subscription.fetch  # type: ignore[attr-defined]
        while True:
            wanted = self._wanted(function_name)
            if wanted <= 0:
                await self._until_room()
                continue
            try:
                messages: list[Msg] = await fetch(wanted, timeout=PULL_WAIT_S)
            except nats.errors.TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS restarting, connection lost: try again shortly
                log.debug("pull for %s: %s", function_name, exc)
                await asyncio.sleep(0.25)
                continue
            for msg in messages:
                await self._arrived(function_name, msg)

    async def _until_room(self) -> None:
        self._moved.clear()
        freed = asyncio.ensure_future(self.scheduler.capacity_freed())
        moved = asyncio.ensure_future(self._moved.wait())
        try:
            await asyncio.wait({freed, moved}, timeout=PULL_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
            moved.cancel()

    async def _arrived(self, function_name: str, msg: Msg) -> None:
        try:
            event = codec.decode(msg.data)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping a malformed event message for %s: %s", function_name, exc)
            await msg.term()
            return
        wait = event.due - time.time()
        if wait > 0.01:
            await msg.nak(delay=wait)  # a retry not yet due: JetStream holds it until then
            return
        if event.request_id in self._messages:
            # Redelivered while this node still holds it (the ack wait passed): keep the newer
            # handle, the event is already scheduled here.
            self._messages[event.request_id] = msg
            return
        if event.state is EventState.RUNNING:
            event.state = EventState.PENDING  # its node died during the attempt: it runs again
        self._messages[event.request_id] = msg
        self._held.setdefault(function_name, set()).add(event.request_id)
        await self.store.save(event)
        self._push(event)

    def _unhold(self, event: Event) -> None:
        held = self._held.get(event.function_name)
        if held is not None:
            held.discard(event.request_id)
        self._moved.set()

    async def _extend(self) -> None:
        """Tell JetStream every held event is still being worked on."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            for msg in list(self._messages.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _settle(self, event: Event) -> None:
        """Acknowledge the event's message: JetStream deletes it (work-queue retention)."""
        self._unhold(event)
        msg = self._messages.pop(event.request_id, None)
        if msg is not None:
            try:
                await msg.ack_sync()
            except Exception as exc:  # noqa: BLE001 - lost: the event may run again elsewhere (at least once)
                log.warning("event %s: ack failed (%s); it may be delivered again", event.request_id, exc)

    # --- the dispatcher's outcomes -----------------------------------------------------------

    async def running(self, event: Event) -> None:
        self._unhold(event)
        await super().running(event)

    async def ack(self, event: Event) -> None:
        await super().ack(event)
        await self._settle(event)

    async def retry_later(self, event: Event, delay_s: float, *, throttled: bool = False) -> None:
        self._leased.pop(event.request_id, None)
        event.due = time.time() + delay_s
        event.state = EventState.RETRYING if event.attempts or not throttled else EventState.PENDING
        await self.store.save(event)
        try:
            await self._publish(event)  # the new counts first: a crash between the two runs it again
        except EventStoreUnavailable as exc:
            # NATS away: hand the message back to be delivered after the delay; this attempt's
            # counts are lost with it (it may be retried once more than configured).
            log.warning("event %s: %s; delivered again with its previous counts", event.request_id, exc)
            self._unhold(event)
            msg = self._messages.pop(event.request_id, None)
            if msg is not None:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=delay_s)
        else:
            await self._settle(event)
        if throttled:
            self.throttle_retries += 1
        else:
            self.retries += 1

    async def drop(self, event: Event, reason: str, *, dead_lettered: bool = False) -> None:
        await super().drop(event, reason, dead_lettered=dead_lettered)
        await self._settle(event)

    def release(self, event: Event) -> None:
        super().release(event)
        self._unhold(event)
        msg = self._messages.pop(event.request_id, None)
        if msg is not None:
            task = asyncio.ensure_future(msg.nak())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
