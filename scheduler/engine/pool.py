"""The environments of one function configuration, and how an invocation gets one.

Routing, in Lambda's order: an idle provisioned environment; else an idle
on-demand environment, most recently used first (so surplus ones sit at the cold end of the
deque and age out); else a new environment, if the function's scaling allowance has a token.
How long an idle environment stays, and pre-warming, are the keep-alive's (idle.py), which
asks the scheduler's keep-alive policy (keepalive.py).

Starting environments (the cold start and its Init retry, pre-warming) is the starter's
(starter.py); how many provisioned environments there are, the provisioned controller's
(provisioned.py). The pool keeps the environments, routes to them, parks, freezes and retires
them, and takes their events. A pool is bound to one configuration: when the function is
updated the pool is retired, its idle environments shut down, and busy ones shut down when
their invocation ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from ..config import FunctionConfig, SchedulerConfig
from .deadlines import Deadlines
from .environment import TIMED_OUT, Died, EnvEvent, Environment, EnvState
from .idle import KeepAlive
from .invocation import Invocation, InvocationResult
from .isolation.manager import interpreter_path
from .keepalive import KeepAlivePolicy
from .observer import Observer
from .platform_log import PlatformLog
from .protocol import START_INIT, FunctionError, Response
from .provisioned import Provisioned
from .starter import OOM, Starter
from .status import Kind, ProvisionedStatus
from .stops import STOP_RULES, PoolAction, StopReason, stop_line

if TYPE_CHECKING:
    from .isolation.manager import Isolation
    from .zygote import ZygoteClient

log = logging.getLogger("lambda_scheduler.pool")

_PARKED = (EnvState.IDLE, EnvState.FROZEN)


class ScaleAllowance(Protocol):
    """Admission's say on a new environment (admission.ScalingBucket): asked before each
    cold start; False means the function's scaling rate is used up."""

    def take(self) -> bool: ...


class PoolContext:
    """What a pool needs from the scheduler that owns it."""

    def __init__(
        self,
        zygote: ZygoteClient,
        settings: SchedulerConfig,
        background: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        observer: Observer,
        isolation: Isolation,
        policy: KeepAlivePolicy,
        deadlines: Deadlines,
    ) -> None:
        self.zygote = zygote
        self.settings = settings
        self.background = background
        self.observer = observer
        self.isolation = isolation
        self.policy = policy  # one for the whole scheduler: it keeps per-function history
        self.deadlines = deadlines  # one timer for every environment's pending deadline
        self.base_path = interpreter_path()


class Pool:
    def __init__(
        self,
        ctx: PoolContext,
        config: FunctionConfig,
        version: str = "$LATEST",
        zygote: ZygoteClient | None = None,
        base_path: list[str] | None = None,
    ) -> None:
        """``version``: "$LATEST" or a published version's number (its own environments).
        ``zygote``: the one of the interpreter the function's runtime runs on, whose import
        path is ``base_path`` (default: the server's own, ``ctx``'s)."""
        self.ctx = ctx
        self.config = config
        self.version = version
        self.zygote = zygote or ctx.zygote
        self.spawn_kind = START_INIT  # START_RESTORE: self.zygote is a SnapStart snapshot's
        self.base_path = base_path if base_path is not None else ctx.base_path
        self.idle: deque[Environment] = deque()  # on-demand; most recently used at the right
        self.provisioned_idle: deque[Environment] = deque()
        self.environments: set[Environment] = set()
        self.retired = False
        self.retire_reason = StopReason.CONFIG_CHANGE
        self._loop = asyncio.get_running_loop()
        self._drained: asyncio.Future[None] = self._loop.create_future()
        self._freeze_timer: asyncio.TimerHandle | None = None
        self.platform = PlatformLog(config, ctx.settings.region)  # its invocations' platform records
        self.starter = Starter(self)
        self.provisioned = Provisioned(self, config.provisioned_concurrency)
        self._invoked = ctx.policy.invoked  # bound once: the hot path makes just the call
        self.keep_alive = KeepAlive(
            config.name,
            ctx.policy,
            self.idle,
            self.provisioned_idle,
            ctx.settings.max_lifetime_s,
            park=self._park,
            retire=self.retire,
            prewarm=self.starter.prewarm,
        )

    # --- routing --------------------------------------------------------------------------

    def take_idle(self, inv: Invocation) -> Environment | None:
        """An idle environment for ``inv`` (setting its start type), or None."""
        if self.provisioned_idle:
            inv.start = "provisioned"
            return self.provisioned_idle.pop()
        if self.idle:
            inv.start = "warm"
            return self.idle.pop()
        return None

    async def invoke(self, inv: Invocation, allowance: ScaleAllowance) -> InvocationResult | None:
        """Run ``inv`` in an environment; None if it needs a new one and ``allowance`` has
        no token left (the caller throttles it: the pool knows nothing of Lambda's limits)."""
        self._invoked(self.config.name, self._loop.time())
        env = self.take_idle(inv)
        if env is not None:
            inv.log_start()
            return await self._run(env, inv, self.invoke_deadline())
        if not allowance.take():
            return None
        inv.start = "cold"
        started = await self.starter.cold_start(inv)
        if isinstance(started, InvocationResult):
            return started
        env, deadline = started
        return await self._run(env, inv, deadline)

    def invoke_deadline(self) -> float:
        """The deadline of an invocation whose invoke phase starts now (perf_counter time)."""
        return time.perf_counter() + self.config.timeout_s

    async def _run(self, env: Environment, inv: Invocation, deadline: float) -> InvocationResult:
        """``deadline``: perf_counter time. Durations and deadlines use perf_counter: uvloop's
        loop clock only ticks in milliseconds, and is read once per loop iteration."""
        began = time.perf_counter()
        inv.log_stream = env.log_stream
        deadline_ms = int((time.time() + (deadline - began)) * 1000)
        waiter = env.run(inv.frame(deadline_ms), inv.output, deadline)
        try:
            outcome = await waiter
        except asyncio.CancelledError:
            # The caller went away; the invocation runs on (as on Lambda) and the
            # environment comes back to the pool when it answers.
            waiter.add_done_callback(lambda _: self.release(env))
            raise
        if type(outcome) is Response:
            result = inv.finish_response(outcome)
            self.release(env)
        elif type(outcome) is FunctionError:
            result = inv.finish_error(outcome)
            self.release(env)
        elif outcome is TIMED_OUT:
            result = inv.finish_timeout((time.perf_counter() - began) * 1000, env.max_rss_kb)
        else:
            assert isinstance(outcome, Died)
            result = inv.finish_exit(
                outcome.status, (time.perf_counter() - began) * 1000, env.max_rss_kb, OOM if env.oom else None
            )
        return result

    def release(self, env: Environment) -> None:
        """An environment finished an invocation: back to idle, or retired."""
        if env.state is not EnvState.BUSY:
            return  # killed in the meantime
        if self.retired:
            self.retire(env, self.retire_reason)
            return
        if self.keep_alive.expired(env, self._loop.time()):
            self.retire(env, StopReason.LIFETIME)
            return
        if env.provisioned and self.provisioned.surplus():
            self.retire(env, StopReason.PROVISIONED_LOWERED)
            return
        resources = env.resources
        if resources is not None and resources.tmp_dir is not None and resources.tmp_over_quota():
            self.retire(env, StopReason.TMP_OVER_QUOTA)
            return
        if env.provisioned:
            self.park_provisioned(env)
        else:
            self.keep_alive.settle(env)

    def park_provisioned(self, env: Environment) -> None:
        self._park(env)
        self.provisioned_idle.append(env)

    def ensure_provisioned(self) -> list[asyncio.Task[None]]:
        """Start or retire provisioned environments until exactly the target are live."""
        return self.provisioned.ensure()

    # --- freezing idle environments -------------------------------------------------------

    def _park(self, env: Environment) -> None:
        """Idle now; frozen now, or once it has stayed idle for the freeze delay. A signal to
        stop and another to continue cost a cross-CPU wakeup each: an environment reused
        within the delay (any busy one) is never stopped at all."""
        settings = self.ctx.settings
        if not settings.freeze_idle or settings.freeze_delay_s <= 0:
            env.park(settings.freeze_idle)
            return
        env.park(False)
        if self._freeze_timer is None:
            self._freeze_timer = self._loop.call_later(settings.freeze_delay_s, self._freeze_due)

    def _freeze_due(self) -> None:
        """The freeze sweep: idle environments unused for the delay are stopped. It walks the
        idle queues instead of recording each park, so an invocation adds nothing to it; while
        any idle environment is left unfrozen it comes back, at most every quarter delay (the
        loop clock ticks in milliseconds: a shorter wait could find nothing due and spin)."""
        self._freeze_timer = None
        delay = self.ctx.settings.freeze_delay_s
        now = self._loop.time()
        due = now - delay
        earliest = math.inf
        for queue in (self.idle, self.provisioned_idle):
            for env in queue:
                if env.state is not EnvState.IDLE:
                    continue
                if env.last_used <= due:
                    env.freeze()
                elif env.last_used < earliest:
                    earliest = env.last_used
        if earliest < math.inf:
            wait = max(earliest + delay - now, delay / 4)
            self._freeze_timer = self._loop.call_later(wait, self._freeze_due)

    # --- keep-alive and retirement --------------------------------------------------------

    def reap(self, now: float) -> int:
        """The reaper's tick: idle environments past their keep-alive window or their maximum
        lifetime are retired (idle.py). Busy ones are never touched."""
        return self.keep_alive.reap(now)

    def retire(self, env: Environment, reason: StopReason) -> None:
        """Shut an environment down gracefully (SIGTERM, grace, SIGKILL) in the background."""
        if env.state is EnvState.DEAD:
            return
        log.debug("retiring environment %d of %s: %s", env.pid, self.config.name, reason.value)
        env.terminate(reason)
        self.ctx.background(env.shutdown(self.ctx.settings.shutdown_timeout_s))

    def retire_all(self, reason: StopReason = StopReason.CONFIG_CHANGE) -> None:
        """This configuration is replaced or removed (or the scheduler stops): idle
        environments go now, busy ones when their invocation ends."""
        self.retired = True
        self.retire_reason = reason
        self.keep_alive.cancel_prewarm()
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
            self._freeze_timer = None
        for queue in (self.idle, self.provisioned_idle):
            while queue:
                self.retire(queue.popleft(), reason)
        self._check_drained()

    # --- the environments' events ---------------------------------------------------------

    def on_environment_event(self, event: EnvEvent) -> None:
        """The one path by which an environment tells its pool that it left service."""
        env = event.env
        if event.new is EnvState.STOPPING:
            if event.old in _PARKED:  # off the idle queue, whoever stopped it
                queue = self.provisioned_idle if env.provisioned else self.idle
                try:
                    queue.remove(env)
                except ValueError:
                    pass  # taken off by the caller that retires it
            if self.provisioned.stopping(env) and STOP_RULES[event.reason].action is PoolAction.REPLACE:
                self.ensure_provisioned()
        elif event.new is EnvState.DEAD:
            self._forget(env, event.reason, event.detail)

    def _forget(self, env: Environment, reason: StopReason, detail: str) -> None:
        self.environments.discard(env)
        if env.resources is not None:
            env.resources.release()
        rule = STOP_RULES[reason]
        if rule.level >= logging.WARNING:
            line = stop_line(env.pid, self.config.name, env.provisioned, rule)
            log.warning("%s%s", line, f": {detail}" if detail else "")
        self.ctx.observer.environment_stopped(self.config.name, env, reason)
        self._check_drained()

    def on_output(self, env: Environment, data: bytes) -> None:
        self.ctx.observer.environment_output(self.config.name, env, data)

    def _check_drained(self) -> None:
        if self.retired and not self.environments and not self._drained.done():
            self._drained.set_result(None)

    async def wait_drained(self) -> None:
        """Wait until this pool is retired and its last environment has exited."""
        await asyncio.shield(self._drained)

    # --- what the engine reports (status.FunctionStatus) ----------------------------------

    def environment_counts(self) -> dict[tuple[Kind, EnvState], int]:
        out: dict[tuple[Kind, EnvState], int] = {(k, s): 0 for k in ("on_demand", "provisioned") for s in EnvState}
        for env in self.environments:
            out["provisioned" if env.provisioned else "on_demand", env.state] += 1
        return out

    def provisioned_status(self, busy: int) -> ProvisionedStatus:
        return self.provisioned.status(busy)

    @property
    def drained(self) -> asyncio.Future[None]:
        return self._drained

    @property
    def settled(self) -> asyncio.Future[None]:
        return self.provisioned.settled
