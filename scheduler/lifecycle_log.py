"""The scheduler's own log of what it does with environments: started, reaped, retired, killed.

    Pool ─observers─► LifecycleLog ─► logger "lambda_scheduler.lifecycle"

INFO says what the scheduler decided (an environment started, was reaped after its idle TTL,
recycled at its maximum lifetime, retired by a configuration change, killed at its deadline).
What the engine already reports at WARNING or ERROR — an environment that exited on its own,
broke the protocol or ran out of memory, a provisioned Init that failed — is repeated here only
at DEBUG, so the log says each thing once at the default level. The wording and the levels are
``stops.STOP_RULES``', the table the pool and the metrics read too.
"""

from __future__ import annotations

import asyncio
import logging

from .engine.environment import Environment
from .engine.observer import Observer
from .engine.stops import STOP_RULES, StopReason, lifecycle_level, stop_line

log = logging.getLogger("lambda_scheduler.lifecycle")


def _kind(env: Environment) -> str:
    return "provisioned" if env.provisioned else "on-demand"


class LifecycleLog(Observer):
    def environment_started(self, function: str, env: Environment, ok: bool, init_s: float) -> None:
        if ok:
            log.info("environment %d of %s started (%s, Init %.1f ms)", env.pid, function, _kind(env), init_s * 1e3)
        else:
            # The invocation's INIT_REPORT, or the pool's error for a provisioned Init, says why.
            log.debug("environment %d of %s failed Init after %.1f ms", env.pid, function, init_s * 1e3)

    def environment_stopped(self, function: str, env: Environment, reason: StopReason) -> None:
        rule = STOP_RULES[reason]
        level = lifecycle_level(rule)
        if not log.isEnabledFor(level):
            return
        age = asyncio.get_running_loop().time() - env.created_at
        line = stop_line(env.pid, function, env.provisioned, rule)
        log.log(level, "%s; %d invocations in %.1f s", line, env.invocations, age)
