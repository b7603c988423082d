"""Why an environment stops, and the one table that says what follows from each reason.

    Environment ──EnvEvent(old, new, reason, detail)──► Pool.on_environment_event
                                                          │ STOP_RULES[reason]
                     ┌────────────────────────────────────┼───────────────────────────┐
                 pool action                     metric label (observer)      log line (pool, lifecycle_log)

A reason is set once, by whoever ends the environment first (the pool retiring it, the
deadline, a bad frame, the memory watchdog, the exit itself); later causes do not overwrite
it, except that a kernel OOM kill seen at exit wins (it is what really ended the process).
Every decision on a stop is made here, on the enum: nothing parses free text.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass


class StopReason(enum.Enum):
    # The pool's decisions (a graceful Shutdown: SIGTERM, grace, SIGKILL).
    IDLE_TIMEOUT = "idle_timeout"  # idle past its keep-alive window
    LIFETIME = "lifetime"  # reached the maximum lifetime
    CONFIG_CHANGE = "config_change"  # the function was updated or removed
    SHUTDOWN = "shutdown"  # the scheduler is stopping
    PROVISIONED_LOWERED = "provisioned_lowered"  # surplus after provisioned concurrency was lowered
    PREWARMED = "prewarmed"  # retired at once by a keep-alive policy that pre-warms a replacement
    TMP_OVER_QUOTA = "tmp_over_quota"  # /tmp above the function's ephemeral storage
    # Ends the engine imposes (SIGKILL).
    TIMEOUT = "timeout"  # an invocation reached the function timeout
    INIT_TIMEOUT = "init_timeout"  # Init did not finish under its limit
    OUT_OF_MEMORY = "out_of_memory"  # above its memory size (cgroup OOM kill or the watchdog)
    INIT_FAILED = "init_failed"  # Init ended without Ready (the process died during it)
    INIT_ERROR = "init_error"  # the handler's Init raised (InitFailed)
    PROTOCOL_ERROR = "protocol_error"  # a frame that does not decode, or is not expected now
    # Ends that happen to it.
    CONTROL_CLOSED = "control_closed"  # the worker closed its control pipe (it is exiting)
    CRASH = "crash"  # the process exited on its own
    ZYGOTE_LOST = "zygote_lost"  # the fork server died, and its children with it
    SPAWN_FAILED = "spawn_failed"  # the zygote could not fork it


class PoolAction(enum.Enum):
    REPLACE = "replace"  # a provisioned environment is replaced, if the pool still wants it
    NOTHING = "nothing"  # a deliberate reduction: no replacement


@dataclass(frozen=True, slots=True)
class StopRule:
    action: PoolAction
    label: str  # lambda_environment_stops_total{reason}: a small, stable set
    level: int  # WARNING: an anomaly the engine reports itself; INFO/DEBUG: the lifecycle log only
    text: str  # what happened, in "environment 12 of fn (on-demand) <text>"


_R = PoolAction.REPLACE
_N = PoolAction.NOTHING
_INFO = logging.INFO
_WARN = logging.WARNING
_GONE = "gone: exited, crashed or broke the protocol"

STOP_RULES: dict[StopReason, StopRule] = {
    StopReason.IDLE_TIMEOUT: StopRule(_N, "idle", _INFO, "reaped: idle for the idle TTL"),
    StopReason.LIFETIME: StopRule(_R, "lifetime", _INFO, "recycled: reached its maximum lifetime"),
    StopReason.CONFIG_CHANGE: StopRule(_N, "config_change", _INFO, "retired: the function's configuration changed"),
    StopReason.SHUTDOWN: StopRule(_N, "shutdown", logging.DEBUG, "shut down"),
    StopReason.PROVISIONED_LOWERED: StopRule(
        _N, "provisioned_change", _INFO, "retired: provisioned concurrency was lowered"
    ),
    StopReason.PREWARMED: StopRule(_N, "idle", _INFO, "retired: its keep-alive policy pre-warms a replacement"),
    StopReason.TMP_OVER_QUOTA: StopRule(_R, "ephemeral_storage", _INFO, "retired: /tmp exceeded its ephemeral storage"),
    StopReason.TIMEOUT: StopRule(_R, "timeout", _INFO, "killed: its invocation reached the function timeout"),
    StopReason.INIT_TIMEOUT: StopRule(_R, "timeout", _INFO, "killed: its Init reached its time limit"),
    StopReason.OUT_OF_MEMORY: StopRule(_R, "out_of_memory", _WARN, "killed: out of memory"),
    StopReason.INIT_FAILED: StopRule(_R, "init_failure", _INFO, "discarded: its Init failed"),
    StopReason.INIT_ERROR: StopRule(_R, "init_failure", _INFO, "discarded: its Init failed"),
    StopReason.PROTOCOL_ERROR: StopRule(_R, "error", _WARN, "killed: broke the protocol"),
    StopReason.CONTROL_CLOSED: StopRule(_R, "error", _WARN, _GONE),
    StopReason.CRASH: StopRule(_R, "error", _WARN, _GONE),
    StopReason.ZYGOTE_LOST: StopRule(_R, "error", _INFO, "killed: the zygote exited"),
    StopReason.SPAWN_FAILED: StopRule(_R, "error", _WARN, "never started: the zygote could not fork it"),
}

# The metric's label set, for its help text and for tests.
STOP_LABELS = tuple(sorted({rule.label for rule in STOP_RULES.values()}))


def lifecycle_level(rule: StopRule) -> int:
    """What the engine already reports at WARNING is repeated in the lifecycle log at DEBUG,
    so the log says each thing once at the default level."""
    return logging.DEBUG if rule.level >= logging.WARNING else rule.level


def stop_line(pid: int, function: str, provisioned: bool, rule: StopRule) -> str:
    """The one wording of a stop: ``environment 12 of fn (on-demand) reaped: …``."""
    kind = "provisioned" if provisioned else "on-demand"
    return f"environment {pid} of {function} ({kind}) {rule.text}"

