"""The scheduler's own log of what it does with environments: started, reaped, retired, killed.

    Pool ─observers─► LifecycleLog ─► logger "lambda_scheduler.lifecycle"

INFO says what the scheduler decided (an environment started, was reaped after its idle TTL,
recycled at its maximum lifetime, retired by a configuration change, killed at its deadline).
What the engine already reports at WARNING or ERROR — an environment that exited on its own,
broke the protocol or ran out of memory, a provisioned Init that failed — is repeated here only
at DEBUG, so the log says each thing once at the default level.
"""

from __future__ import annotations

import asyncio
import logging

from .environment import Environment
from .observer import Observer
from .scheduler import Scheduler

log = logging.getLogger("lambda_scheduler.lifecycle")

# reason → (level, what happened); the reasons are observer.stop_reason's bounded set.
_STOPS: dict[str, tuple[int, str]] = {
    "idle": (logging.INFO, "reaped: idle for the idle TTL"),
    "lifetime": (logging.INFO, "recycled: reached its maximum lifetime"),
    "config_change": (logging.INFO, "retired: the function's configuration changed"),
    "provisioned_change": (logging.INFO, "retired: provisioned concurrency was lowered"),
    "timeout": (logging.INFO, "killed: its invocation reached the function timeout"),
    "init_failure": (logging.INFO, "discarded: its Init failed"),
    "shutdown": (logging.DEBUG, "shut down"),
    "out_of_memory": (logging.DEBUG, "killed: out of memory"),
    "error": (logging.DEBUG, "gone: exited, crashed or broke the protocol"),
}


def _kind(env: Environment) -> str:
    return "provisioned" if env.provisioned else "on-demand"


class LifecycleLog(Observer):
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def environment_started(self, function: str, env: Environment, ok: bool, init_s: float) -> None:
        if ok:
            log.info("environment %d of %s started (%s, Init %.1f ms)", env.pid, function, _kind(env), init_s * 1e3)
        else:
            # The invocation's INIT_REPORT, or the pool's error for a provisioned Init, says why.
            log.debug("environment %d of %s failed Init after %.1f ms", env.pid, function, init_s * 1e3)

    def environment_stopped(self, function: str, env: Environment, reason: str) -> None:
        if self.scheduler.closing:
            # Scheduler.stop retires pools as if their configuration changed; say what it is.
            reason = "shutdown"
        level, what = _STOPS.get(reason, (logging.INFO, f"stopped ({reason})"))
        if not log.isEnabledFor(level):
            return
        age = asyncio.get_running_loop().time() - env.created_at
        log.log(
            level,
            "environment %d of %s (%s) %s; %d invocations in %.1f s",
            env.pid,
            function,
            _kind(env),
            what,
            env.invocations,
            age,
        )
