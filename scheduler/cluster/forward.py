"""Warm-first routing across nodes: a synchronous invocation that finds no idle environment
on its node goes to a node that has one, through NATS request/reply.

    every node, every WATCH_EVERY_S: subscribed to lambda.warm.<function>.<version> (queue
        group "warm") while it has an idle environment of that version, and for OFFER_HOLD_S
        after its last one went busy (an offer withdrawn between two calls would send the
        next one to a cold start)
    invoke on a node with no idle environment of the version it resolved to
        ─► request on lambda.warm.<function>.<version>
        no responders, or the node asked has none idle now ("busy") ─► run here (a cold start
            where there is capacity)
        accepted by node X (an immediate reply naming X) ─► wait for the result on this node's
        result inbox (one subscription, a token per call);
        X's heartbeat gone, or no answer within the timeout + margin ─► NodeLost (502) to the caller
    the node that accepted runs it through its own Scheduler (its admission, the shared
        limits), with the qualifier as the caller named it (an alias's ARN stays the alias's)

A forwarded invocation runs where it landed only: it is never forwarded again. Event
invocations are never forwarded: a node pulls them only when it has room for them. An alias
with weights is drawn on the first node, to choose where to send it, and again on the node
that runs it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .. import errors
from ..engine.invocation import InvocationResult
from ..engine.scheduler import Scheduler
from ..engine.versions import LATEST
from ..errors import SchedulerError, Throttled
from .link import ClusterLink, cancel
from .nodes import Heartbeat

log = logging.getLogger("lambda_scheduler.cluster")

WARM_SUBJECT = "lambda.warm"
WARM_QUEUE = "warm"
WATCH_EVERY_S = 0.05
OFFER_HOLD_S = 1.0
# The accepting node answers at once; longer means it is overloaded or gone.
ACCEPT_TIMEOUT_S = 2.0
RESULT_MARGIN_S = 10.0


class NodeLost(SchedulerError):
    """The node running a forwarded invocation died or stopped answering."""

    code = "ServiceException"
    status = 502


class ForwardedResult(InvocationResult):
    """An invocation's result as another node sent it back: what the API answers with (payload,
    error, version, log tail). The node that ran it recorded its metrics."""

    __slots__ = ("node",)

    def __init__(self, fields: dict[str, Any], node: str) -> None:  # no local Invocation: no super()
        self.payload = base64.b64decode(fields["payload"])
        self.error_type = fields.get("error_type")
        self.request_id = str(fields.get("request_id") or "")
        self.function_name = str(fields["function_name"])
        self.version = str(fields["version"])
        self.latency_s = float(fields.get("latency_s", 0.0))
        self._log = str(fields.get("log", ""))
        self.node = node


def warm_subject(function_name: str, version: str = LATEST) -> str:
    return f"{WARM_SUBJECT}.{function_name}.{'latest' if version == LATEST else version}"


Offer = tuple[str, str]  # a function and one of its versions


class WarmRouter:
    def __init__(
        self, link: ClusterLink, scheduler: Scheduler, heartbeat: Heartbeat, is_event: Callable[[str], bool]
    ) -> None:
        self.link = link
        self._is_event = is_event  # a request id the dispatcher runs (pulled from the stream)
        self.scheduler = scheduler
        self.heartbeat = heartbeat
        self._subscriptions: dict[Offer, Subscription] = {}
        self._last_idle: dict[Offer, float] = {}  # when each offer last had an idle environment
        self._serving: set[str] = set()  # request ids of forwarded invocations running here
        self._running: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self.forwarded = 0  # sent to another node
        self.served = 0  # run here for another node
        self.declined = 0  # asked while none was idle here: the asking node ran it
        # Results of this node's forwarded calls: one subscription for all of them, each call
        # waiting on its own token (no subscribe and unsubscribe per call).
        self._inbox = f"_INBOX.forward.{uuid.uuid4().hex}"
        self._results: Subscription | None = None
        self._waiting: dict[str, asyncio.Future[bytes]] = {}

    @property
    def warm(self) -> list[str]:
        """What this node takes forwarded invocations of now (``name`` or ``name:version``)."""
        return sorted(name if version == LATEST else f"{name}:{version}" for name, version in self._subscriptions)

    def idle(self, function_name: str, version: str = LATEST) -> int:
        return self.scheduler.idle_count(function_name, version)

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        await cancel(watcher)
        for offer in list(self._subscriptions):
            await self._unsubscribe(offer)
        results, self._results = self._results, None
        if results is not None:
            with contextlib.suppress(nats.errors.Error):
                await results.unsubscribe()

    async def _watch(self) -> None:
        while True:
            try:
                await self._offer(time.monotonic())
            except nats.errors.Error as exc:  # NATS away: subscriptions come back with it
                log.debug("warm watch: %s", exc)
            await asyncio.sleep(WATCH_EVERY_S)

    async def _offer(self, now: float) -> None:
        for offer in self.scheduler.parked():
            self._last_idle[offer] = now
            if offer not in self._subscriptions:
                self._subscriptions[offer] = await self.link.nc.subscribe(
                    warm_subject(*offer), queue=WARM_QUEUE, cb=self._arrived
                )
        for offer, last in list(self._last_idle.items()):
            if now - last > OFFER_HOLD_S:
                del self._last_idle[offer]
                await self._unsubscribe(offer)

    async def _unsubscribe(self, offer: Offer) -> None:
        subscription = self._subscriptions.pop(offer, None)
        if subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    # --- sending ------------------------------------------------------------------------------

    async def forward(
        self,
        function_name: str,
        version: str,
        qualifier: str | None,
        payload: bytes,
        *,
        request_id: str | None,
        client_context: str | None,
        cognito_identity: str | None,
        trace_id: str | None,
        tenant_id: str | None,
    ) -> InvocationResult | None:
        if request_id is not None and (request_id in self._serving or self._is_event(request_id)):
            return None  # forwarded here, or an event pulled here: it runs here
        if self.idle(function_name, version) > 0 or self.link.nc.is_closed or not self.link.nc.is_connected:
            return None
        if self._results is None:
            self._results = await self.link.nc.subscribe(f"{self._inbox}.*", cb=self._result_arrived)
        token = uuid.uuid4().hex
        arrived: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[token] = arrived
        try:
            request = {
                "function_name": function_name,
                "version": version,
                "qualifier": qualifier,
                "payload": base64.b64encode(payload).decode(),
                "request_id": request_id,
                "client_context": client_context,
                "cognito_identity": cognito_identity,
                "trace_id": trace_id,
                "tenant_id": tenant_id,
                "reply": f"{self._inbox}.{token}",
                "from": self.link.node,
            }
            try:
                accepted = await self.link.nc.request(
                    warm_subject(function_name, version), json.dumps(request).encode(), timeout=ACCEPT_TIMEOUT_S
                )
            except nats.errors.NoRespondersError:
                return None  # no node has it warm: start it here
            except nats.errors.TimeoutError:
                raise NodeLost(
                    f"The invocation of {function_name} was handed to another node, which did not confirm it."
                ) from None
            reply = json.loads(accepted.data)
            if reply.get("busy"):
                return None  # its last idle one was taken meanwhile: start one here
            node = str(reply["node"])
            self.forwarded += 1
            return await self._result(function_name, node, arrived)
        finally:
            self._waiting.pop(token, None)

    async def _result_arrived(self, msg: Msg) -> None:
        waiting = self._waiting.pop(msg.subject.rpartition(".")[2], None)
        if waiting is not None and not waiting.done():
            waiting.set_result(msg.data)

    async def _result(self, function_name: str, node: str, arrived: asyncio.Future[bytes]) -> InvocationResult:
        fn = self.scheduler.functions.get(function_name)
        timeout = (fn.config.timeout_s if fn is not None else 900.0) + RESULT_MARGIN_S
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = await asyncio.wait_for(asyncio.shield(arrived), 1.0)
                break
            except TimeoutError:
                if node not in self.heartbeat.live():
                    raise NodeLost(
                        f"Node {node}, running this invocation of {function_name}, stopped "
                        "(its heartbeat expired); the invocation's outcome is unknown."
                    ) from None
                if time.monotonic() > deadline:
                    raise NodeLost(
                        f"Node {node}, running this invocation of {function_name}, never answered."
                    ) from None
        answer = json.loads(data)
        if "error" in answer:
            raise _error(answer["error"])
        return ForwardedResult(answer["result"], node)

    # --- serving ------------------------------------------------------------------------------

    async def _arrived(self, msg: Msg) -> None:
        try:
            request = json.loads(msg.data)
        except ValueError:
            return
        if self.idle(str(request.get("function_name")), str(request.get("version", LATEST))) == 0:
            self.declined += 1
            await msg.respond(json.dumps({"node": self.link.node, "busy": True}).encode())
            return
        await msg.respond(json.dumps({"node": self.link.node}).encode())
        task = asyncio.ensure_future(self._serve(request))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _serve(self, request: dict[str, Any]) -> None:
        request_id = request.get("request_id")
        if request_id:
            self._serving.add(request_id)
        self.served += 1
        try:
            result = await self.scheduler.invoke(
                request["function_name"],
                base64.b64decode(request["payload"]),
                qualifier=request.get("qualifier"),
                request_id=request_id,
                client_context=request.get("client_context"),
                cognito_identity=request.get("cognito_identity"),
                trace_id=request.get("trace_id"),
                tenant_id=request.get("tenant_id"),
            )
            answer: dict[str, Any] = {
                "result": {
                    "payload": base64.b64encode(result.payload).decode(),
                    "error_type": result.error_type,
                    "request_id": result.request_id,
                    "function_name": result.function_name,
                    "version": result.version,
                    "latency_s": result.latency_s,
                    "log": result.log,
                }
            }
        except SchedulerError as exc:
            answer = {
                "error": {"type": type(exc).__name__, "message": exc.message, "reason": getattr(exc, "reason", None)}
            }
        finally:
            if request_id:
                self._serving.discard(request_id)
        with contextlib.suppress(nats.errors.Error):
            await self.link.nc.publish(str(request["reply"]), json.dumps(answer).encode())


def _error(fields: dict[str, Any]) -> SchedulerError:
    """The service error the other node answered with, as this node's API reports it."""
    if fields.get("type") == "Throttled":
        return Throttled(str(fields.get("reason") or errors.RESERVED_LIMIT), str(fields.get("message")))
    return NodeLost(f"The node that ran the invocation answered: {fields.get('message')}")
