"""Starting a pool's environments: the cold start with its Init retry, and starts ahead of demand.

    cold_start(inv) ─► Init under the Init limit ─► Ready: the invoke phase starts now
                       └─ failed or timed out ─► a second Init in a fresh environment, inside the
                          invoke phase and under the function's timeout (as Lambda retries it);
                          a second failure is the invocation's result
    start_ahead(provisioned) ─► Init outside any invocation (provisioned, or pre-warmed by the
                                keep-alive policy): its output goes to the environment's own log
    prewarm(keep_alive_s) ─► start_ahead, then warm for keep_alive_s (the keep-alive's timer)

Every start goes through ``start``: the zygote, the function's isolation, its environment
variables, and the observers' ``environment_started``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from . import envvars, logs
from .environment import TIMED_OUT, Died, Environment, StartOutcome
from .invocation import Invocation, InvocationResult
from .logs import LogBuffer
from .protocol import START_RESTORE, InitFailed, Ready, Spawn
from .stops import StopReason

if TYPE_CHECKING:
    from .pool import Pool

log = logging.getLogger("lambda_scheduler.pool")

_INIT_EXIT_ERROR = "Runtime.ExitError"
OOM = "Runtime.OutOfMemory"


class Starter:
    __slots__ = ("_base_env", "_pool", "_sys_path")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._base_env = envvars.base_environment(pool.config, pool.ctx.settings, pool.version)
        self._sys_path = envvars.code_path(pool.config)

    async def start(self, provisioned: bool, sink: LogBuffer, timeout: float) -> tuple[Environment, StartOutcome]:
        pool = self._pool
        ctx, config = pool.ctx, pool.config
        zygote = pool.zygote
        if not zygote.alive:
            await zygote.ensure_running()
        await ctx.isolation.prepare(config)  # the function's uid, leased host-wide once
        env = Environment(pool, provisioned, logs.log_stream_name(pool.version), ctx.deadlines)
        pool.environments.add(env)
        resources = ctx.isolation.allocate(config, pool.base_path)
        env.resources = resources
        environ = envvars.environment_for(self._base_env, env.log_stream, provisioned)
        environ.update(resources.environ)
        if pool.spawn_kind == START_RESTORE:
            environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
        request = Spawn(0, config.handler, str(config.task_root), self._sys_path, environ, resources.spec, pool.spawn_kind)
        began = time.perf_counter()
        outcome = await env.start(zygote, request, sink, timeout)
        ok = type(outcome) is Ready
        if ok:
            resources.on_ready()
        else:
            env.kill(StopReason.INIT_ERROR if type(outcome) is InitFailed else StopReason.INIT_FAILED)
        ctx.observer.environment_started(config.name, env, ok, time.perf_counter() - began)
        return env, outcome

    async def cold_start(self, inv: Invocation) -> tuple[Environment, float] | InvocationResult:
        """Start an environment for ``inv``: (environment, invoke deadline), or the result of
        an Init that failed twice."""
        pool = self._pool
        platform = pool.platform
        init_log = LogBuffer(pool.ctx.settings.max_log_bytes)
        restore = pool.spawn_kind == START_RESTORE
        if platform.is_json:
            inv.parts.append(platform.restore_start(pool.version) if restore else platform.init_start())
        inv.parts.append(init_log)
        began = time.perf_counter()
        env, outcome = await self.start(False, init_log, pool.ctx.settings.init_timeout_s)
        init_ms = (time.perf_counter() - began) * 1000
        if type(outcome) is Ready:
            inv.init_ms = init_ms
            inv.restored = restore
            if restore and platform.is_json:
                inv.parts.append(platform.restore_report(init_ms))
            inv.log_start()
            return env, pool.invoke_deadline()
        inv.parts.append(self._init_report(init_ms, "init", outcome))
        # Lambda retries a failed Init inside the invoke phase, under the function timeout.
        inv.init_ms = None
        inv.log_start()
        deadline = pool.invoke_deadline()
        began = time.perf_counter()
        env, outcome = await self.start(False, inv.output, pool.config.timeout_s)
        if type(outcome) is Ready:
            return env, deadline
        inv.log_stream = env.log_stream
        elapsed_ms = (time.perf_counter() - began) * 1000
        inv.log_text(self._init_report(elapsed_ms, "invoke", outcome))
        if outcome is TIMED_OUT:
            return inv.finish_timeout(elapsed_ms, env.max_rss_kb)
        if type(outcome) is InitFailed:
            return inv.finish_init_error(outcome.error_type, outcome.payload, elapsed_ms, env.max_rss_kb)
        assert isinstance(outcome, Died)
        return inv.finish_exit(outcome.status, elapsed_ms, env.max_rss_kb, OOM if env.oom else None)

    async def start_ahead(self, provisioned: bool, timeout: float) -> tuple[Environment, StartOutcome, LogBuffer]:
        """Start an environment ahead of demand (provisioned, or pre-warmed by the keep-alive
        policy): Init runs outside any invocation, so its output goes to the environment's own
        log, and its first invocation is not a cold start (no Init Duration in its REPORT)."""
        pool = self._pool
        sink = LogBuffer(pool.ctx.settings.max_log_bytes)
        env, outcome = await self.start(provisioned, sink, timeout)
        if type(outcome) is Ready and len(sink):
            pool.ctx.observer.environment_output(pool.config.name, env, sink.text().encode())
        return env, outcome, sink

    def prewarm(self, keep_alive_s: float) -> None:
        """The keep-alive's pre-warm timer fired: start an on-demand environment now. It takes
        no scaling token: it replaces the one the policy retired, and no invocation waits."""
        pool = self._pool
        if not pool.retired:
            pool.ctx.background(self._prewarm_one(keep_alive_s))

    async def _prewarm_one(self, keep_alive_s: float) -> None:
        pool = self._pool
        env, outcome, sink = await self.start_ahead(False, pool.ctx.settings.init_timeout_s)
        if type(outcome) is not Ready:
            # No retry: the next invocation starts cold, and reports the failure if it recurs.
            log.info(
                "pre-warmed environment of %s failed Init (%s)\n%s", pool.config.name, describe(outcome), sink.text()
            )
            return
        if pool.retired:
            pool.retire(env, pool.retire_reason)
            return
        pool.keep_alive.warmed(env, keep_alive_s)

    def _init_report(self, init_ms: float, phase: str, outcome: StartOutcome) -> str:
        platform = self._pool.platform
        if outcome is TIMED_OUT:
            return platform.init_report(init_ms, phase, "timeout")
        error_type = outcome.error_type if type(outcome) is InitFailed else _INIT_EXIT_ERROR
        return platform.init_report(init_ms, phase, "error", error_type)


def describe(outcome: StartOutcome) -> str:
    """A start's outcome in a log line."""
    if outcome is TIMED_OUT:
        return "timeout"
    if type(outcome) is InitFailed:
        return outcome.error_type
    if isinstance(outcome, Died):
        return logs.describe_exit(outcome.status)
    return "ready"
