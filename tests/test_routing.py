"""Routing (warm first, MRU, provisioned, spillover), concurrency limits and throttling,
keep-alive, and changing functions while they run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from scheduler import FunctionNotFound, InvalidParameterValue, Scheduler, Throttled
from scheduler.engine.environment import EnvState
from scheduler.engine.stops import StopReason

from .conftest import MakeScheduler, fn, wait_provisioned


def _pid(result) -> int:  # type: ignore[no-untyped-def]
    return int(json.loads(result.payload)["pid"])


class Holder:
    """Keeps invocations of basic.wait_for_file busy until released, one file each."""

    def __init__(self, s: Scheduler, name: str, tmp: Path) -> None:
        self.s, self.name, self.tmp, self.n = s, name, tmp, 0

    def start(self) -> tuple[asyncio.Future, Path]:  # type: ignore[type-arg]
        self.n += 1
        path = self.tmp / f"release-{self.n}"
        return asyncio.ensure_future(self.s.invoke(self.name, {"path": str(path)})), path

    async def until_busy(self, count: int) -> None:
        while sum(1 for e in self.s.environments(self.name) if e.state is EnvState.BUSY) < count:
            await asyncio.sleep(0.005)


async def test_concurrent_invocations_get_their_own_environments(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("hold", "basic.wait_for_file"))
    h = Holder(s, "hold", tmp_path)
    calls = [h.start() for _ in range(4)]
    await h.until_busy(4)
    for _, path in calls:
        path.touch()
    results = [await call for call, _ in calls]
    assert [r.start for r in results] == ["cold"] * 4
    assert len({_pid(r) for r in results}) == 4
    # All four are warm now; sequential calls reuse them.
    again = [await s.invoke("hold", {"path": str(calls[0][1])}) for _ in range(4)]
    assert all(r.start == "warm" for r in again)


async def test_most_recently_used_environment_first(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("hold", "basic.wait_for_file"), fn("other", "basic.whoami"))
    h = Holder(s, "hold", tmp_path)
    calls = [h.start() for _ in range(3)]
    await h.until_busy(3)
    released = []
    for call, path in calls:  # release in order: the last one released is the most recent
        path.touch()
        released.append(_pid(await call))
    done = tmp_path / "release-1"
    for _ in range(3):
        assert _pid(await s.invoke("hold", {"path": str(done)})) == released[-1]
    # An environment never serves another function.
    assert _pid(await s.invoke("other")) not in released


async def test_surplus_environments_age_out_while_the_hot_one_stays(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("hold", "basic.wait_for_file"), idle_ttl_s=0.4)
    h = Holder(s, "hold", tmp_path)
    calls = [h.start() for _ in range(3)]
    await h.until_busy(3)
    pids = []
    for call, path in calls:
        path.touch()
        pids.append(_pid(await call))
    cold_ones = [e for e in s.environments("hold") if e.pid in pids[:2]]
    done = str(tmp_path / "release-1")
    # Keep invoking: MRU keeps hitting the same environment, the other two age out.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while any(e.alive for e in cold_ones) and loop.time() < deadline:
        assert _pid(await s.invoke("hold", {"path": done})) == pids[2]
        await asyncio.sleep(0.05)
    assert not any(e.alive for e in cold_ones)
    assert [e.pid for e in s.environments("hold") if e.alive] == [pids[2]]


async def test_idle_ttl_reaps_idle_but_never_busy_environments(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("sleep", "basic.sleep"), idle_ttl_s=0.2)
    long_call = await s.invoke("sleep", {"seconds": 0.6})  # busy for 3 TTLs: not reaped
    assert long_call.error_type is None
    env = next(e for e in s.environments("sleep") if e.pid == _pid(long_call))
    assert env.state in (EnvState.IDLE, EnvState.FROZEN)
    await asyncio.wait_for(env.wait_exited(), 5)
    assert env.stop_reason is StopReason.IDLE_TIMEOUT
    assert (await s.invoke("sleep", {"seconds": 0})).start == "cold"


async def test_maximum_lifetime_recycles_a_busy_environment_after_its_call(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("sleep", "basic.sleep"), max_lifetime_s=0.3)
    first = await s.invoke("sleep", {"seconds": 0.5})  # outlives its lifetime while busy
    assert first.error_type is None
    second = await s.invoke("sleep", {"seconds": 0})
    assert second.start == "cold" and _pid(second) != _pid(first)


async def test_provisioned_environments_first_then_spillover(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("hold", "basic.wait_for_file", provisioned_concurrency=2), fn("env", "basic.environ", provisioned_concurrency=1))
    assert all(e.state in (EnvState.IDLE, EnvState.FROZEN) for e in s.environments("hold")) and len(s.environments("hold")) == 2
    h = Holder(s, "hold", tmp_path)
    calls = [h.start() for _ in range(3)]
    await h.until_busy(3)
    for _, path in calls:
        path.touch()
    results = [await c for c, _ in calls]
    assert sorted(r.start for r in results) == ["cold", "provisioned", "provisioned"]
    for r in results:
        assert ("Init Duration" in r.log.split("REPORT")[-1]) == (r.start == "cold")
    # Provisioned environments are preferred over the warm on-demand one.
    done = str(tmp_path / "release-1")
    assert [(await s.invoke("hold", {"path": done})).start for _ in range(3)] == ["provisioned"] * 3
    env = json.loads((await s.invoke("env")).payload)["environ"]
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"


async def test_provisioned_floor_is_kept(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("crash", "faults.sigkill_self", provisioned_concurrency=2))
    result = await s.invoke("crash")
    assert result.start == "provisioned" and result.error_type == "Runtime.ExitError"
    await wait_provisioned(s, "crash")
    assert sum(1 for e in s.environments("crash") if e.provisioned and e.state in (EnvState.IDLE, EnvState.FROZEN)) == 2
    s.set_provisioned_concurrency("crash", 1)
    alive = [e for e in s.environments("crash") if e.provisioned and e.alive]
    assert len(alive) == 1
    s.set_provisioned_concurrency("crash", 3)
    await wait_provisioned(s, "crash")
    assert sum(1 for e in s.environments("crash") if e.provisioned and e.state in (EnvState.IDLE, EnvState.FROZEN)) == 3


async def test_reserved_concurrency_throttles(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("hold", "basic.wait_for_file", reserved_concurrency=2), fn("zero", "basic.noop", reserved_concurrency=0), min_unreserved_concurrency=0)
    with pytest.raises(Throttled) as zero:
        await s.invoke("zero")
    assert zero.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert zero.value.body() == {"Reason": zero.value.reason, "Type": "User", "message": "Rate Exceeded."}
    h = Holder(s, "hold", tmp_path)
    calls = [h.start() for _ in range(2)]
    await h.until_busy(2)
    with pytest.raises(Throttled) as third:
        await s.invoke("hold", {"path": "unused"})
    assert third.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    for _, path in calls:
        path.touch()
    for c, _ in calls:
        assert (await c).error_type is None
    assert (await s.invoke("hold", {"path": str(calls[0][1])})).error_type is None


async def test_account_concurrency_throttles(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(
        fn("a", "basic.wait_for_file"),
        fn("b", "basic.wait_for_file"),
        fn("r", "basic.wait_for_file", reserved_concurrency=1),
        account_concurrency=3,
        min_unreserved_concurrency=0,
    )
    assert s.admission.unreserved_capacity == 2
    ha, hb, hr = Holder(s, "a", tmp_path / "a"), Holder(s, "b", tmp_path / "b"), Holder(s, "r", tmp_path / "r")
    for d in ("a", "b", "r"):
        (tmp_path / d).mkdir()
    a, b, r = ha.start(), hb.start(), hr.start()
    await ha.until_busy(1)
    await hb.until_busy(1)
    await hr.until_busy(1)
    with pytest.raises(Throttled) as exc:
        await s.invoke("a", {"path": "x"})
    assert exc.value.reason == "ConcurrentInvocationLimitExceeded"
    for call, path in (a, b, r):
        path.touch()
        assert (await call).error_type is None
    assert s.admission.in_flight == 0


async def test_reservations_leave_the_minimum_unreserved(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("a", "basic.noop"), account_concurrency=150)
    with pytest.raises(InvalidParameterValue, match=r"^Specified ReservedConcurrentExecutions .* below its minimum value of \[100\]\.$"):
        s.set_reserved_concurrency("a", 51)
    s.set_reserved_concurrency("a", 50)
    assert s.admission.unreserved_capacity == 100
    s.set_reserved_concurrency("a", None)
    assert s.admission.unreserved_capacity == 150


async def test_scaling_rate_limit(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("hold", "basic.wait_for_file"), scale_limit=2, scale_window_s=600)
    h = Holder(s, "hold", tmp_path)
    calls = [h.start() for _ in range(2)]
    await h.until_busy(2)
    with pytest.raises(Throttled) as exc:
        await s.invoke("hold", {"path": "x"})
    assert exc.value.reason == "FunctionInvocationRateLimitExceeded"
    assert s.admission.in_flight == 2  # the throttled call gave its slot back
    for _, path in calls:
        path.touch()
    for c, _ in calls:
        await c
    # Warm environments need no allowance.
    assert (await s.invoke("hold", {"path": str(calls[0][1])})).start == "warm"


async def test_update_function_moves_new_calls_to_new_environments(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    config = fn("f", "basic.wait_for_file", environment={"V": "1"})
    s = await make_scheduler(config)
    done = tmp_path / "done"
    done.touch()
    old = await s.invoke("f", {"path": str(done)})
    old_status, old_envs = s.functions["f"], s.environments("f")
    busy_path = tmp_path / "busy"
    h = Holder(s, "f", tmp_path)
    in_flight = asyncio.ensure_future(s.invoke("f", {"path": str(busy_path)}))
    await h.until_busy(1)
    s.update_function(config.replace(environment={"V": "2"}, handler="basic.environ"))
    new = await s.invoke("f")
    assert new.start == "cold" and json.loads(new.payload)["environ"]["V"] == "2"
    busy_path.touch()
    finished = await in_flight  # finishes on the old configuration
    assert finished.error_type is None and _pid(finished) == _pid(old)
    for env in old_envs:
        await asyncio.wait_for(env.wait_exited(), 5)
    assert old_status.drained.done()  # the old configuration has no environment left


async def test_concurrency_changes_keep_environments_warm(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("f", "basic.whoami"))
    first = await s.invoke("f")
    s.set_reserved_concurrency("f", 5)
    assert (await s.invoke("f")).start == "warm"
    assert _pid(await s.invoke("f")) == _pid(first)


async def test_add_and_remove_functions_while_running(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler()
    s.add_function(fn("late", "basic.whoami"))
    result = await s.invoke("late")
    assert result.error_type is None
    env = next(iter(s.environments("late")))
    s.remove_function("late")
    with pytest.raises(FunctionNotFound):
        await s.invoke("late")
    await asyncio.wait_for(env.wait_exited(), 5)
