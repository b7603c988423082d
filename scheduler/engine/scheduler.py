"""The Scheduler: functions, their pools, admission, keep-alive, and the life of the whole.

    invoke(name, payload) ─► resolve function ─► Admission.admit (throttle → 429)
                          ─► Pool.invoke (warm first, else cold start) ─► InvocationResult

One zygote per interpreter serves the pools (zygotes.py): the server's own, and one for each
other interpreter a function's runtime runs on (runtimes.py). A function is a
:class:`FunctionState` that outlives its configurations: updating it swaps in a new pool and
retires the old one, while the counters that limits depend on (in-flight invocations, the
scaling allowance) carry over. Its published
versions and aliases (versions.py) each run in pools of their own, under the same admission:
reserved concurrency and the scaling rate are the function's, across its versions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Self

from .. import arn
from ..config import SUPPORTED_RUNTIMES, FunctionConfig, SchedulerConfig
from ..errors import FunctionNotFound, RequestTooLarge, ResourceConflict, SchedulerClosed, Throttled
from . import tracing
from .admission import Admission, AdmissionGate, FunctionAdmission, ScalingBucket, scale_throttle
from .deadlines import Deadlines
from .environment import Environment, EnvState
from .forwarding import InvocationRouter
from .invocation import Invocation, InvocationResult
from .isolation.manager import Isolation
from .keepalive import KeepAlivePolicy, make_policy
from .observer import Observer, Observers
from .pool import Pool, PoolContext
from .protocol import MAX_PAYLOAD
from .runtimes import Match, Runtimes
from .status import FunctionStatus
from .stops import StopReason
from .version_ops import VersionOperations
from .versions import LATEST, PublishedVersion, QualifierKind, Versions
from .zygote import ZygoteClient
from .zygotes import Zygotes

log = logging.getLogger("lambda_scheduler")

# Fields whose change needs new environments; the others (limits) apply in place.
_LIMIT_FIELDS = frozenset({"reserved_concurrency", "provisioned_concurrency"})


_incarnations = itertools.count(1)


class FunctionState:
    """The engine's own record of a function; the outside sees only its :meth:`status`.
    ``config`` and ``pool`` are ``$LATEST``'s; ``versions`` holds the published ones."""

    __slots__ = ("admission", "arn", "config", "incarnation", "name", "pool", "versions")

    version = LATEST

    def __init__(self, config: FunctionConfig, pool: Pool, admission: FunctionAdmission, arn_: str) -> None:
        self.name = config.name
        self.config = config
        self.pool = pool
        self.admission = admission
        self.arn = arn_
        self.incarnation = next(_incarnations)
        self.versions = Versions(lambda qualifier: f"{arn_}:{qualifier}")

    def status(self, target: Target | None = None) -> FunctionStatus:
        """A snapshot of ``$LATEST`` or of one published version (``target``)."""
        target = target or self
        pool = target.pool
        environments = pool.environment_counts()
        return FunctionStatus(
            self.name,
            target.arn,
            target.config,
            self.incarnation,
            MappingProxyType(environments),
            pool.provisioned_status(environments["provisioned", EnvState.BUSY]),
            self.admission.in_flight,
            self.admission.reserved,
            pool.drained,
            pool.settled,
            target.version,
            target.snapshot.view() if isinstance(target, PublishedVersion) and target.snapshot is not None else None,
        )

    def pools(self) -> list[Pool]:
        return [self.pool, *(v.pool for v in self.versions.versions.values())]


# What a qualifier resolves to: $LATEST (the function itself) or a published version.
Target = FunctionState | PublishedVersion


class FunctionsView(Mapping[str, FunctionStatus]):
    """``Scheduler.functions``: read-only, and each value a snapshot taken when read."""

    __slots__ = ("_functions",)

    def __init__(self, functions: dict[str, FunctionState]) -> None:
        self._functions = functions

    def __getitem__(self, name: str) -> FunctionStatus:
        return self._functions[name].status()

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._functions))  # a snapshot of the names: safe across awaits

    def __len__(self) -> int:
        return len(self._functions)


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload).encode()


class Scheduler(VersionOperations):
    """Runs Lambda functions in forked execution environments.

    ``async with Scheduler(functions=[FunctionConfig(...)]) as s: await s.invoke(name, event)``
    """

    def __init__(
        self,
        functions: Iterable[FunctionConfig] = (),
        config: SchedulerConfig | None = None,
        *,
        observers: Iterable[Observer] = (),
        keep_alive_policy: KeepAlivePolicy | None = None,
        routing_rng: random.Random | None = None,
        after_start: Callable[[Scheduler], None] | None = None,
        **settings: Any,
    ) -> None:
        self.settings = (config or SchedulerConfig()).replace(**settings) if settings else (config or SchedulerConfig())
        # One policy for every pool, so a function's history survives updates of its
        # configuration; ``keep_alive_policy`` replaces the configured one (tests, experiments).
        self.keep_alive = keep_alive_policy or make_policy(self.settings.keep_alive, self.settings.idle_ttl_s)
        self.admission = Admission(self.settings)
        # Asked before the local admission when set (cluster mode: limits shared by the nodes).
        self.gate: AdmissionGate | None = None
        # Asked first for an unqualified invocation when set (cluster mode: warm-first routing).
        self.router: InvocationRouter | None = None
        self.zygote = ZygoteClient(self.settings.python, self.settings.preload)  # the server's interpreter
        self.zygotes = Zygotes(self.zygote)
        self.runtimes = Runtimes(self.settings)
        self.isolation = Isolation(self.settings)
        self._initial = list(functions)
        # Draws for weighted aliases; a seeded one makes a test's split reproducible.
        self._routing = routing_rng or random.Random()
        # Run once the initial functions are in: a template's versions and aliases are published.
        self._after_start = after_start
        self._functions: dict[str, FunctionState] = {}
        self._retired_pools: set[Pool] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ctx: PoolContext | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._running = False
        self._closing = False
        self._ending = False  # the drain is over: environments still running are being ended
        self._drained = asyncio.Event()
        self._freed = asyncio.Event()  # pulsed (set, then cleared) each time an invocation ends
        self.observers = Observers()
        for observer in observers:
            self.observers.add(observer)

    # --- life of the whole ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._running:
            return
        await self.isolation.start()
        try:
            # Probing interpreters (and perhaps a pip install) blocks: not on the loop.
            await asyncio.to_thread(lambda: {c.runtime: self.runtimes.choose(c.runtime) for c in self._initial})
            await self.zygote.start()
        except BaseException:
            await self.isolation.stop()
            raise
        self._deadlines = Deadlines(asyncio.get_running_loop())
        self._ctx = PoolContext(
            self.zygote, self.settings, self._background, self.observers, self.isolation, self.keep_alive, self._deadlines
        )
        self._running = True
        provisioning: list[asyncio.Task[None]] = []
        try:
            for config in self._initial:
                provisioning += self._add(config)
            if self._after_start is not None:
                self._after_start(self)
        except BaseException:
            await self.stop()
            raise
        self._reaper = asyncio.ensure_future(self._reap_forever())
        if provisioning:
            await asyncio.wait(provisioning)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop admitting; let in-flight invocations finish (up to ``drain_timeout``, default
        drain_timeout_s: the server passes what is left of its one budget); shut every
        environment down, ending the invocations still running (they raise SchedulerClosed);
        stop the zygote. Leaves no child process behind."""
        if not self._running or self._closing:
            return
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
        if self.admission.in_flight:
            try:
                drain = self.settings.drain_timeout_s if drain_timeout is None else drain_timeout
                await asyncio.wait_for(self._drained.wait(), drain)
            except TimeoutError:
                log.warning("%d invocations still running after the drain timeout; killing them", self.admission.in_flight)
        self._ending = True
        pools = [pool for fn in self._functions.values() for pool in fn.pools()] + list(self._retired_pools)
        for pool in pools:
            pool.retire_all(StopReason.SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()
        envs = [env for pool in pools for env in pool.environments]
        grace = self.settings.shutdown_timeout_s
        await asyncio.gather(*(env.shutdown(grace) for env in envs), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.zygotes.stop()
        await self.isolation.stop()
        self._deadlines.close()
        self._running = False

    def _background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def _reap_forever(self) -> None:
        s = self.settings
        interval = max(0.01, min(1.0, s.idle_ttl_s / 4, s.max_lifetime_s / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for fn in self._functions.values():
                for pool in fn.pools():
                    pool.reap(now)
            for pool in list(self._retired_pools):
                if not pool.environments:
                    self._retired_pools.discard(pool)

    @property
    def running(self) -> bool:
        """Started and admitting invocations."""
        return self._running and not self._closing

    @property
    def closing(self) -> bool:
        """Stopping: no longer admitting, draining what runs."""
        return self._closing

    # --- functions ------------------------------------------------------------------------

    @property
    def functions(self) -> FunctionsView:
        """Every function by name, as a read-only view of snapshots (:class:`FunctionStatus`)."""
        return FunctionsView(self._functions)

    def status(self, name: str) -> FunctionStatus:
        return self.get_function(name).status()

    def describe(
        self, function_name: str, qualifier: str | None = None, *, action: str = "lambda:GetFunction"
    ) -> FunctionStatus:
        """:meth:`resolve`, as a snapshot of what the qualifier names: what the API reads. An
        alias gives its FunctionVersion's, under the alias's ARN (as Lambda answers)."""
        fn = self.resolve(function_name, qualifier, action=action)
        qualifier = arn.parse(function_name, qualifier).qualifier
        status = fn.status(self._target(fn, qualifier, route=False))
        if QualifierKind.of(qualifier) is QualifierKind.ALIAS:
            status = dataclasses.replace(status, arn=f"{fn.arn}:{qualifier}")
        return status

    def environments(self, name: str) -> tuple[Environment, ...]:
        """The handles of a function's current environments (for tests and diagnostics)."""
        return tuple(self.get_function(name).pool.environments)

    @property
    def retired_pool_count(self) -> int:
        """Configurations replaced or removed whose environments are still draining."""
        return len(self._retired_pools)

    def get_function(self, name: str) -> FunctionState:
        fn = self._functions.get(name)
        if fn is None:
            raise FunctionNotFound(self.settings.function_arn(name))
        return fn

    def _require_running(self) -> PoolContext:
        if self._ctx is None or self._closing:
            raise SchedulerClosed("The scheduler is not running.")
        return self._ctx

    def _add(self, config: FunctionConfig) -> list[asyncio.Task[None]]:
        ctx = self._require_running()
        if config.name in self._functions:
            raise ResourceConflict(f"Function already exist: {config.name}")
        bucket = ScalingBucket(self.settings.scale_limit, self.settings.scale_window_s)
        pool = self._pool(ctx, config)
        fn = FunctionState(config, pool, FunctionAdmission(bucket), self.settings.function_arn(config.name))
        self.admission.set_reserved(fn.admission, config.reserved_concurrency)
        self._functions[config.name] = fn
        self.isolation.set_function(config.name, config)
        return fn.pool.ensure_provisioned()

    async def prepare_runtime(self, runtime: str) -> None:
        """Choose the interpreter of ``runtime`` off the loop (it may start interpreters and
        run pip), so that adding or updating a function with it then never blocks. A runtime
        Lambda does not accept is left for FunctionConfig to refuse."""
        if runtime in SUPPORTED_RUNTIMES:
            await asyncio.to_thread(self.runtimes.choose, runtime)

    def _pool(self, ctx: PoolContext, config: FunctionConfig, announce: bool = True, version: str = "$LATEST") -> Pool:
        """A pool for ``config``, on the zygote of the interpreter its runtime runs on. Raises
        RuntimeUnavailable for a runtime that cannot run here under strict_runtime; warns
        (``announce``) of one that runs on a substitute."""
        choice = self.runtimes.choose(config.runtime)  # chosen already, unless called from the Python API
        if choice.match is Match.REFUSED:
            raise choice.refusal()
        if choice.match is Match.SUBSTITUTE and announce:
            log.warning("function %s: %s", config.name, choice.warning())
        zygote = self.zygotes.client(choice.interpreter)
        if not zygote.alive:
            self._background(self.zygotes.warm(zygote))
        return Pool(ctx, config, version, zygote, list(choice.interpreter.paths))

    def add_function(self, config: FunctionConfig) -> None:
        """Add a function; its provisioned environments start in the background."""
        self._add(config)

    def update_function(self, config: FunctionConfig) -> None:
        """Replace a function's configuration. If anything but its concurrency limits
        changed, new invocations get new environments; in-flight ones finish on the old."""
        ctx = self._require_running()
        fn = self.get_function(config.name)
        old = fn.config
        self.admission.check_reserved(fn.admission, config.reserved_concurrency)
        changed = {f for f in old.__dataclass_fields__ if getattr(old, f) != getattr(config, f)}
        pool = self._pool(ctx, config, "runtime" in changed) if changed - _LIMIT_FIELDS else None  # may refuse it
        self.admission.set_reserved(fn.admission, config.reserved_concurrency)
        fn.config = config
        self.isolation.set_function(config.name, config)
        if pool is not None:
            self._replace_pool(fn, pool)
        else:
            fn.pool.config = config
            fn.pool.provisioned.target = config.provisioned_concurrency
        fn.pool.ensure_provisioned()

    def _replace_pool(self, fn: FunctionState, pool: Pool) -> None:
        old_pool, fn.pool = fn.pool, pool
        old_pool.retire_all()
        self._retired_pools.add(old_pool)

    def reload_code(self, name: str) -> None:
        """The function's code or layers changed on disk (``serve --watch``): as an
        UpdateFunctionCode does, new invocations get new environments (which import the new
        code), idle ones shut down now and busy ones once their invocation ends."""
        ctx = self._require_running()
        fn = self.get_function(name)
        self._replace_pool(fn, self._pool(ctx, fn.config, announce=False))
        fn.pool.ensure_provisioned()

    def remove_function(self, name: str) -> None:
        """Remove a function with every published version and alias."""
        fn = self.get_function(name)
        self.admission.set_reserved(fn.admission, None)
        del self._functions[name]
        self.isolation.set_function(name, None)
        for version in list(fn.versions.versions):
            self._retire_version(fn, version)
        fn.pool.retire_all()
        self._retired_pools.add(fn.pool)

    def set_reserved_concurrency(self, name: str, value: int | None) -> None:
        fn = self.get_function(name)
        self.update_function(fn.config.replace(reserved_concurrency=value))

    # --- invoke ---------------------------------------------------------------------------

    def resolve(
        self, function_name: str, qualifier: str | None = None, *, action: str = "lambda:InvokeFunction"
    ) -> FunctionState:
        """The function a name, ARN or partial ARN names; an ARN of another region or account
        is refused as Lambda refuses it (``action`` is the IAM action named in that error)."""
        ref = arn.parse(function_name, qualifier)
        arn.check_reachable(ref, self.settings.region, self.settings.account_id, action)
        fn = self._functions.get(ref.name)
        if fn is None or not fn.versions.names(ref.qualifier):
            raise FunctionNotFound(self.settings.function_arn(ref.name, ref.qualifier))
        return fn

    def _target(self, fn: FunctionState, qualifier: str | None, *, route: bool) -> Target:
        """What an invocation (``route``: an alias's weights are drawn) or a read of
        ``qualifier`` gets: $LATEST or a published version."""
        return fn.versions.target(qualifier, self._routing.random() if route else None) or fn

    def reference(self, function_name: str, qualifier: str | None = None) -> tuple[FunctionState, str | None]:
        """The function and the qualifier a name (with or without one) gives, checked."""
        ref = arn.parse(function_name, qualifier)
        return self.resolve(function_name, qualifier), ref.qualifier

    async def invoke(
        self,
        function_name: str,
        payload: object = b"",
        *,
        qualifier: str | None = None,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        trace_id: str | None = None,
        tenant_id: str | None = None,
        request_id: str | None = None,
    ) -> InvocationResult:
        """Invoke synchronously (RequestResponse). Function errors are results with
        ``error_type`` set; service errors (not found, throttled, closed) raise."""
        fn = self._functions.get(function_name) if qualifier is None else None
        if fn is None:
            fn, qualifier = self.reference(function_name, qualifier)
        target = fn if qualifier is None else self._target(fn, qualifier, route=True)
        if self._closing or not self._running:
            raise SchedulerClosed()
        body = _payload_bytes(payload)
        if len(body) > MAX_PAYLOAD:
            raise RequestTooLarge(f"Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation")
        config = target.config
        # The ARN as the caller gave it: with an alias, the alias, not the version it ran.
        invoked_arn = fn.arn if qualifier is None else f"{fn.arn}:{qualifier}"
        if self.router is not None:
            forwarded = await self.router.forward(
                fn.name,
                target.version,
                qualifier,
                body,
                request_id=request_id,
                client_context=client_context,
                cognito_identity=cognito_identity,
                trace_id=trace_id,
                tenant_id=tenant_id,
            )
            if forwarded is not None:
                return forwarded  # admitted, run and counted by the node that ran it
        gate, ticket = self.gate, None
        try:
            if gate is not None:
                ticket = await gate.enter(fn.name, fn.admission.reserved, self.admission.unreserved_capacity)
                if self._closing:  # the stop began while the gate was asked: admit nothing now
                    gate.leave(ticket)
                    raise SchedulerClosed()
            unreserved = self.admission.admit(fn.admission)
        except Throttled as exc:
            if gate is not None:
                gate.leave(ticket)
            self.observers.throttled(fn.name, exc.reason)
            raise
        inv = Invocation(
            function_name=fn.name,
            version=target.version,
            memory_mb=config.memory_mb,
            timeout_s=config.timeout_s,
            payload=body,
            invoked_arn=invoked_arn,
            log_limit=self.settings.max_log_bytes,
            request_id=request_id,
            client_context=client_context,
            cognito_identity=cognito_identity,
            trace_id=tracing.trace_header(config.tracing, trace_id),
            tenant_id=tenant_id,
            platform=fn.pool.platform,
        )
        inv.admitted_at = time.perf_counter()
        try:
            result = await target.pool.invoke(inv, fn.admission.bucket)
            if self._ending and result is not None and result.error_type is not None:
                # Cut short by stop(): an answer that says so, not the environment's exit.
                raise SchedulerClosed("The server stopped before the invocation finished.")
        finally:
            self.admission.release(fn.admission, unreserved)
            if gate is not None:
                gate.leave(ticket)
            self._freed.set()  # wakes every waiter of capacity_freed; clearing keeps later ones waiting
            self._freed.clear()
            if self._closing and not self.admission.in_flight:
                self._drained.set()
        if result is None:  # it needed a new environment, and the scaling rate is used up
            throttle = scale_throttle(fn.admission)
            self.observers.throttled(fn.name, throttle.reason)
            raise throttle
        result.latency_s = time.perf_counter() - inv.admitted_at
        self.observers.invocation_finished(fn.name, result, target.pool.provisioned.target > 0)
        return result

    def parked(self) -> dict[tuple[str, str], int]:
        """Idle (or frozen) environments by function and version, for those that have any:
        what an invocation could be given at once."""
        found: dict[tuple[str, str], int] = {}
        for fn in self._functions.values():
            targets: list[Target] = [fn, *fn.versions.versions.values()]
            for target in targets:
                count = len(target.pool.idle) + len(target.pool.provisioned_idle)
                if count:
                    found[fn.name, target.version] = count
        return found

    def idle_count(self, function_name: str, version: str = LATEST) -> int:
        """Idle (or frozen) environments of one version of a function (0 if there is none)."""
        fn = self._functions.get(function_name)
        target = fn if fn is None or version == LATEST else fn.versions.versions.get(version)
        return 0 if target is None else len(target.pool.idle) + len(target.pool.provisioned_idle)

    def capacity(self, function_name: str) -> int:
        """How many more invocations of the function could be admitted now (0: the next one
        would be throttled for concurrency)."""
        return self.admission.available(self.get_function(function_name).admission)

    async def capacity_freed(self) -> None:
        """Return when the next invocation (of any function) ends and hands its slot back."""
        await self._freed.wait()
