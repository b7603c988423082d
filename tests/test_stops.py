"""Each StopReason: what the pool does, the metric label and the log line — from the one
table, ``stops.STOP_RULES`` — and, for a few, from real environments."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import pytest

from scheduler.engine.environment import EnvEvent, Environment, EnvState
from scheduler.engine.observer import Observer
from scheduler.engine.pool import Pool
from scheduler.engine.provisioned import Provisioned
from scheduler.engine.stops import STOP_LABELS, STOP_RULES, PoolAction, StopReason, lifecycle_level, stop_line

from .conftest import MakeScheduler, fn

R, N = PoolAction.REPLACE, PoolAction.NOTHING
I, W, D = logging.INFO, logging.WARNING, logging.DEBUG

# reason: (pool action, metric label, log level, line after "environment 7 of f (on-demand) ")
EXPECTED: dict[StopReason, tuple[PoolAction, str, int, str]] = {
    StopReason.IDLE_TIMEOUT: (N, "idle", I, "reaped: idle for the idle TTL"),
    StopReason.LIFETIME: (R, "lifetime", I, "recycled: reached its maximum lifetime"),
    StopReason.CONFIG_CHANGE: (N, "config_change", I, "retired: the function's configuration changed"),
    StopReason.SHUTDOWN: (N, "shutdown", D, "shut down"),
    StopReason.PROVISIONED_LOWERED: (N, "provisioned_change", I, "retired: provisioned concurrency was lowered"),
    StopReason.PREWARMED: (N, "idle", I, "retired: its keep-alive policy pre-warms a replacement"),
    StopReason.TMP_OVER_QUOTA: (R, "ephemeral_storage", I, "retired: /tmp exceeded its ephemeral storage"),
    StopReason.TIMEOUT: (R, "timeout", I, "killed: its invocation reached the function timeout"),
    StopReason.INIT_TIMEOUT: (R, "timeout", I, "killed: its Init reached its time limit"),
    StopReason.OUT_OF_MEMORY: (R, "out_of_memory", W, "killed: out of memory"),
    StopReason.INIT_FAILED: (R, "init_failure", I, "discarded: its Init failed"),
    StopReason.INIT_ERROR: (R, "init_failure", I, "discarded: its Init failed"),
    StopReason.PROTOCOL_ERROR: (R, "error", W, "killed: broke the protocol"),
    StopReason.CONTROL_CLOSED: (R, "error", W, "gone: exited, crashed or broke the protocol"),
    StopReason.CRASH: (R, "error", W, "gone: exited, crashed or broke the protocol"),
    StopReason.ZYGOTE_LOST: (R, "error", I, "killed: the zygote exited"),
    StopReason.SPAWN_FAILED: (R, "error", W, "never started: the zygote could not fork it"),
}


@pytest.mark.parametrize("reason", list(StopReason), ids=lambda r: r.value)
def test_each_reason_has_its_action_label_and_line(reason: StopReason) -> None:
    action, label, level, text = EXPECTED[reason]
    rule = STOP_RULES[reason]
    assert (rule.action, rule.label, rule.level) == (action, label, level)
    assert stop_line(7, "f", False, rule) == f"environment 7 of f (on-demand) {text}"
    assert stop_line(7, "f", True, rule) == f"environment 7 of f (provisioned) {text}"
    # What the engine reports at WARNING, the lifecycle log repeats at DEBUG only.
    assert lifecycle_level(rule) == (D if level >= W else level)


def test_the_metric_keeps_a_small_label_set() -> None:
    assert set(STOP_LABELS) == {
        "idle", "lifetime", "config_change", "shutdown", "provisioned_change", "ephemeral_storage",
        "timeout", "out_of_memory", "init_failure", "error",
    }  # fmt: skip


class _Ctx:
    """Just what Pool.on_environment_event touches."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.settings: Any = None


class _Stops(Observer):
    def __init__(self) -> None:
        self.reasons: list[tuple[str, StopReason]] = []

    def environment_stopped(self, function: str, env: Environment, reason: StopReason) -> None:
        self.reasons.append((function, reason))


class _FakeEnv:
    provisioned = True
    pid = 7
    resources = None


@pytest.mark.parametrize("reason", list(StopReason), ids=lambda r: r.value)
async def test_the_pool_acts_on_each_reason(reason: StopReason, caplog: pytest.LogCaptureFixture) -> None:
    """A provisioned environment leaving service is replaced, or not, as the table says; its
    exit reaches the observers with its reason, and anomalies are logged at WARNING."""
    observer = _Stops()
    pool = Pool.__new__(Pool)
    pool.ctx = _Ctx(observer)  # type: ignore[assignment]
    pool.config = fn("f", "basic.noop")
    pool.idle, pool.provisioned_idle = deque(), deque()
    pool.environments = set()
    pool.retired = False
    pool._drained = asyncio.get_running_loop().create_future()
    env: Any = _FakeEnv()
    pool.provisioned = Provisioned(pool, 1)
    pool.provisioned._allocated = {env}
    pool.environments.add(env)
    pool.provisioned_idle.append(env)
    replaced: list[bool] = []
    pool.ensure_provisioned = lambda: replaced.append(True) or []  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="lambda_scheduler.pool")

    pool.on_environment_event(EnvEvent(env, EnvState.IDLE, EnvState.STOPPING, reason))
    assert not pool.provisioned_idle and pool.provisioned.alive == 0
    assert replaced == ([True] if EXPECTED[reason][0] is R else [])
    pool.on_environment_event(EnvEvent(env, EnvState.STOPPING, EnvState.DEAD, reason, "why"))
    assert not pool.environments
    assert observer.reasons == [("f", reason)]
    warned = [r.getMessage() for r in caplog.records if r.name == "lambda_scheduler.pool"]
    line = f"environment 7 of f (provisioned) {EXPECTED[reason][3]}: why"
    assert warned == ([line] if EXPECTED[reason][2] >= W else [])


async def test_real_environments_stop_for_a_timeout_and_a_crash(make_scheduler: MakeScheduler) -> None:
    observer = _Stops()
    s = await make_scheduler(
        fn("hangs", "faults.hang", timeout_s=0.2), fn("crash", "faults.sigkill_self"), observers=[observer]
    )
    hung = await s.invoke("hangs")
    crashed = await s.invoke("crash")
    assert hung.status == "timeout" and crashed.error_type == "Runtime.ExitError"
    for _ in range(200):
        if len(observer.reasons) == 2:
            break
        await asyncio.sleep(0.01)
    got = dict(observer.reasons)
    assert got["hangs"] is StopReason.TIMEOUT
    # The worker's pipe closing and its exit race; either way it is the same anomaly.
    assert got["crash"] in (StopReason.CRASH, StopReason.CONTROL_CLOSED)
    assert STOP_RULES[got["crash"]].label == "error"
