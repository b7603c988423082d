"""Warm-first routing across nodes: a synchronous invocation that finds no idle environment
on its node goes to a node that has one, through NATS request/reply.

    every node, every WATCH_EVERY_S: subscribed to lambda.warm.<function> (queue group "warm")
        exactly while it has an idle environment of the function
    invoke on a node with no idle environment ─► request on lambda.warm.<function>
        no responders ─► run here (a cold start where there is capacity)
        accepted by node X (an immediate reply naming X and the result inbox) ─► wait for the result;
        X's heartbeat gone, or no answer within the timeout + margin ─► NodeLost (502) to the caller
    the node that accepted runs it through its own Scheduler (its admission, the shared limits)

A forwarded invocation runs where it landed only: it is never forwarded again. Event
invocations are never forwarded: a node pulls them only when it has room for them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .. import errors
from ..engine.environment import EnvState
from ..engine.invocation import InvocationResult
from ..engine.scheduler import Scheduler
from ..errors import SchedulerError, Throttled
from .link import ClusterLink
from .nodes import Heartbeat

log = logging.getLogger("lambda_scheduler.cluster")

WARM_SUBJECT = "lambda.warm"
WARM_QUEUE = "warm"
WATCH_EVERY_S = 0.05
# The accepting node answers at once; longer means it is overloaded or gone.
ACCEPT_TIMEOUT_S = 2.0
RESULT_MARGIN_S = 10.0
_PARKED = (EnvState.IDLE, EnvState.FROZEN)


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


def warm_subject(function_name: str) -> str:
    return f"{WARM_SUBJECT}.{function_name}"


class WarmRouter:
    def __init__(
        self, link: ClusterLink, scheduler: Scheduler, heartbeat: Heartbeat, is_event: Callable[[str], bool]
    ) -> None:
        self.link = link
        self._is_event = is_event  # a request id the dispatcher runs (pulled from the stream)
        self.scheduler = scheduler
        self.heartbeat = heartbeat
        self._subscriptions: dict[str, Subscription] = {}
        self._serving: set[str] = set()  # request ids of forwarded invocations running here
        self._running: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self.forwarded = 0  # sent to another node
        self.served = 0  # run here for another node

    @property
    def warm(self) -> list[str]:
        """Functions this node takes forwarded invocations of now."""
        return sorted(self._subscriptions)

    def idle(self, function_name: str) -> int:
        status = self.scheduler.functions.get(function_name)
        if status is None:
            return 0
        return sum(n for (_kind, state), n in status.environments.items() if state in _PARKED)

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        for name in list(self._subscriptions):
            await self._unsubscribe(name)

    async def _watch(self) -> None:
        while True:
            try:
                for name in list(self.scheduler.functions):
                    if self.idle(name) > 0:
                        if name not in self._subscriptions:
                            self._subscriptions[name] = await self.link.nc.subscribe(
                                warm_subject(name), queue=WARM_QUEUE, cb=self._arrived
                            )
                    elif name in self._subscriptions:
                        await self._unsubscribe(name)
                for name in set(self._subscriptions) - set(self.scheduler.functions):
                    await self._unsubscribe(name)
            except nats.errors.Error as exc:  # NATS away: subscriptions come back with it
                log.debug("warm watch: %s", exc)
            await asyncio.sleep(WATCH_EVERY_S)

    async def _unsubscribe(self, name: str) -> None:
        subscription = self._subscriptions.pop(name, None)
        if subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    # --- sending ------------------------------------------------------------------------------

    async def forward(
        self,
        function_name: str,
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
        if self.idle(function_name) > 0 or self.link.nc.is_closed or not self.link.nc.is_connected:
            return None
        inbox = self.link.nc.new_inbox()
        results = await self.link.nc.subscribe(inbox, max_msgs=1)
        try:
            request = {
                "function_name": function_name,
                "payload": base64.b64encode(payload).decode(),
                "request_id": request_id,
                "client_context": client_context,
                "cognito_identity": cognito_identity,
                "trace_id": trace_id,
                "tenant_id": tenant_id,
                "reply": inbox,
                "from": self.link.node,
            }
            try:
                accepted = await self.link.nc.request(
                    warm_subject(function_name), json.dumps(request).encode(), timeout=ACCEPT_TIMEOUT_S
                )
            except nats.errors.NoRespondersError:
                return None  # no node has it warm: start it here
            except nats.errors.TimeoutError:
                raise NodeLost(
                    f"The invocation of {function_name} was handed to another node, which did not confirm it."
                ) from None
            node = str(json.loads(accepted.data)["node"])
            self.forwarded += 1
            return await self._result(function_name, node, results)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await results.unsubscribe()

    async def _result(self, function_name: str, node: str, results: Subscription) -> InvocationResult:
        fn = self.scheduler.functions.get(function_name)
        timeout = (fn.config.timeout_s if fn is not None else 900.0) + RESULT_MARGIN_S
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = await results.next_msg(timeout=1.0)
                break
            except nats.errors.TimeoutError:
                if node not in self.heartbeat.live():
                    raise NodeLost(
                        f"Node {node}, running this invocation of {function_name}, stopped "
                        "(its heartbeat expired); the invocation's outcome is unknown."
                    ) from None
                if time.monotonic() > deadline:
                    raise NodeLost(
                        f"Node {node}, running this invocation of {function_name}, never answered."
                    ) from None
        answer = json.loads(msg.data)
        if "error" in answer:
            raise _error(answer["error"])
        return ForwardedResult(answer["result"], node)

    # --- serving ------------------------------------------------------------------------------

    async def _arrived(self, msg: Msg) -> None:
        try:
            request = json.loads(msg.data)
        except ValueError:
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
