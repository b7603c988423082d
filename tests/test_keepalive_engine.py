"""Keep-alive in the engine (pool.py + idle.py), with real environments: the fixed TTL reaps idle
environments only, and a pre-warming window retires an environment at once and starts a warm
replacement when the next call is due. The hybrid policy's windows are scripted here, for
determinism; the policy itself is tested in test_keepalive.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scheduler import Scheduler
from scheduler.cli import build_parser, configs
from scheduler.config import SchedulerConfig
from scheduler.engine.environment import Environment, EnvState
from scheduler.engine.keepalive import FixedTTL, Hybrid, Window
from scheduler.engine.observer import Observer
from scheduler.engine.stops import StopReason
from scheduler.errors import ConfigError

from .conftest import MakeScheduler, fn, until

_PARKED = (EnvState.IDLE, EnvState.FROZEN)
# Short TTLs make the reaper tick every idle_ttl_s / 4.
_TICK_TTL = 0.2


class Scripted:
    """A keep-alive policy that answers the windows it is given, in order (the last repeats),
    and records what it was told."""

    name = "scripted"

    def __init__(self, *windows: Window) -> None:
        self.windows = list(windows)
        self.arrivals: list[float] = []
        self.asked: list[float] = []  # loop time of each window() call

    def invoked(self, function: str, now: float) -> None:
        self.arrivals.append(now)

    def window(self, function: str, now: float) -> Window:
        self.asked.append(now)
        return self.windows.pop(0) if len(self.windows) > 1 else self.windows[0]


class Lifecycle(Observer):
    """Environments' starts and stops, as events a test can await."""

    def __init__(self) -> None:
        self.started: list[Environment] = []
        self.stopped: dict[int, StopReason] = {}  # pid -> reason
        self._changed = asyncio.Event()

    def environment_started(self, function: str, env: Environment, ok: bool, init_s: float) -> None:
        self.started.append(env)
        self._changed.set()

    def environment_stopped(self, function: str, env: Environment, reason: StopReason) -> None:
        self.stopped[env.pid] = reason
        self._changed.set()

    async def until_started(self, count: int, timeout: float = 10.0) -> Environment:
        await self._wait(lambda: len(self.started) >= count, timeout)
        return self.started[count - 1]

    async def until_stopped(self, pid: int, timeout: float = 10.0) -> StopReason:
        await self._wait(lambda: pid in self.stopped, timeout)
        return self.stopped[pid]

    async def _wait(self, done: object, timeout: float) -> None:
        assert callable(done)
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()


def _only(s: Scheduler, name: str) -> Environment:
    (env,) = s.environments(name)
    return env


async def test_fixed_reaps_an_idle_environment_after_its_ttl_and_never_a_busy_one(
    make_scheduler: MakeScheduler, tmp_path: Path
) -> None:
    seen = Lifecycle()
    ttl = 0.3
    s = await make_scheduler(fn("hold", "basic.wait_for_file"), idle_ttl_s=ttl, keep_alive="fixed", observers=[seen])
    assert s.keep_alive.name == "fixed"
    release = tmp_path / "go"
    busy_call = asyncio.ensure_future(s.invoke("hold", {"path": str(release)}))
    busy = await seen.until_started(1)
    idle_call = await s.invoke("hold", {"path": str(tmp_path)})  # exists: returns at once
    assert idle_call.start == "cold"
    idle = next(e for e in s.environments("hold") if e is not busy)
    assert idle.idle_until == idle.last_used + ttl
    loop = asyncio.get_running_loop()
    assert await seen.until_stopped(idle.pid) is StopReason.IDLE_TIMEOUT
    assert loop.time() >= idle.last_used + ttl
    assert busy.state is EnvState.BUSY and busy.alive  # busy for longer than the TTL: kept
    release.touch()
    assert (await busy_call).error_type is None
    assert busy.state in _PARKED
    assert await seen.until_stopped(busy.pid) is StopReason.IDLE_TIMEOUT
    assert loop.time() >= busy.last_used + ttl


async def test_a_pre_warming_window_retires_the_environment_and_starts_a_warm_one_on_time(
    make_scheduler: MakeScheduler,
) -> None:
    prewarm, keep = 0.5, 0.6
    policy = Scripted(Window(prewarm, keep), Window(0.0, keep))
    seen = Lifecycle()
    s = await make_scheduler(fn("f", "basic.whoami"), idle_ttl_s=_TICK_TTL, keep_alive_policy=policy, observers=[seen])
    first = await s.invoke("f")
    assert first.start == "cold" and first.init_duration_ms is not None
    assert len(policy.arrivals) == 1
    cold = seen.started[0]
    assert await seen.until_stopped(cold.pid) is StopReason.PREWARMED
    pool = s.get_function("f").pool
    assert pool.keep_alive.prewarm_pending

    warm = await seen.until_started(2)
    assert warm.created_at - policy.asked[0] >= prewarm - 0.01  # not before it was due...
    assert warm.created_at - policy.asked[0] < prewarm + 2.0  # ...and about then
    assert not warm.provisioned and warm.state in _PARKED and not pool.keep_alive.prewarm_pending

    second = await s.invoke("f")
    assert second.start == "warm" and second.init_duration_ms is None
    assert "Init Duration" not in second.log
    assert _only(s, "f") is warm
    # The second window keeps it warm for `keep` seconds from this call, then it is reaped.
    loop = asyncio.get_running_loop()
    assert await seen.until_stopped(warm.pid) is StopReason.IDLE_TIMEOUT
    assert loop.time() >= warm.last_used + keep
    assert loop.time() < warm.last_used + keep + 2.0


async def test_a_pre_warmed_environment_left_unused_is_reaped_after_its_keep_alive(
    make_scheduler: MakeScheduler,
) -> None:
    keep = 0.4
    seen = Lifecycle()
    s = await make_scheduler(
        fn("f", "basic.noop"), idle_ttl_s=_TICK_TTL, keep_alive_policy=Scripted(Window(0.1, keep)), observers=[seen]
    )
    await s.invoke("f")
    warm = await seen.until_started(2)
    assert warm.idle_until == warm.last_used + keep
    assert await seen.until_stopped(warm.pid) is StopReason.IDLE_TIMEOUT
    assert asyncio.get_running_loop().time() >= warm.last_used + keep
    assert not s.get_function("f").pool.keep_alive.prewarm_pending  # nothing new is pre-warmed


async def test_a_cold_start_that_leaves_an_idle_environment_cancels_the_pre_warm(
    make_scheduler: MakeScheduler,
) -> None:
    policy = Scripted(Window(30.0, 1.0), Window(0.0, 30.0))
    s = await make_scheduler(fn("f", "basic.noop"), idle_ttl_s=_TICK_TTL, keep_alive_policy=policy)
    keep_alive = s.get_function("f").pool.keep_alive
    await s.invoke("f")
    assert keep_alive.prewarm_pending
    again = await s.invoke("f")  # nothing idle: a cold start, and its environment stays
    assert again.start == "cold"
    assert not keep_alive.prewarm_pending
    assert _only(s, "f").state in _PARKED


async def test_the_pre_warm_timer_is_cancelled_on_stop_and_on_update(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("f", "basic.noop"), keep_alive_policy=Scripted(Window(30.0, 1.0)))
    pool = s.get_function("f").pool
    await s.invoke("f")
    assert pool.keep_alive.prewarm_pending
    s.update_function(s.get_function("f").config.replace(memory_mb=256))  # a new pool
    assert not pool.keep_alive.prewarm_pending
    new_pool = s.get_function("f").pool
    await s.invoke("f")
    assert new_pool.keep_alive.prewarm_pending
    await s.stop()
    assert not new_pool.keep_alive.prewarm_pending
    await until(lambda: not new_pool.environments and not pool.environments)  # the fixture checks processes


def test_the_setting_is_validated_and_read_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SchedulerConfig().keep_alive == "fixed"
    with pytest.raises(ConfigError, match="keep_alive"):
        SchedulerConfig(keep_alive="lru")  # type: ignore[arg-type]
    monkeypatch.setenv("LAMBDA_SCHEDULER_KEEP_ALIVE", "hybrid")
    assert configs(build_parser().parse_args(["serve"]))[0].keep_alive == "hybrid"
    assert configs(build_parser().parse_args(["serve", "--keep-alive", "fixed"]))[0].keep_alive == "fixed"


def test_the_scheduler_makes_the_configured_policy() -> None:
    fixed = Scheduler(idle_ttl_s=30).keep_alive
    assert isinstance(fixed, FixedTTL) and fixed.ttl_s == 30
    hybrid = Scheduler(keep_alive="hybrid", idle_ttl_s=30).keep_alive
    assert isinstance(hybrid, Hybrid) and hybrid.fallback_ttl_s == 30
