"""Resources of an execution environment, on the privileged path (cgroups, a mount namespace,
a dropped uid — what this host allows to root) and on the forced fallback (RSS watchdog,
address-space rlimit, TMPDIR), and once as a really unprivileged user."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scheduler import Scheduler
from scheduler.engine.stops import StopReason

from .conftest import FUNCTIONS, MakeScheduler, fn
from .procs import cgroup_leftovers, wait_gone, zygote_family

MODES = ["auto", "fallback"]
ROOT = os.geteuid() == 0


def _json(result) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return json.loads(result.payload)  # type: ignore[no-any-return]


async def test_the_mechanisms_are_reported(make_scheduler: MakeScheduler) -> None:
    auto = await make_scheduler()
    forced = await make_scheduler(isolation="fallback")
    assert forced.isolation.describe() == {
        "memory": "rss-watchdog",
        "cpu": "none",
        "pids": "rlimit-nproc",
        "tmp": "tmpdir",
        "freeze": "sigstop",
        "user": "unchanged",
    }
    mechanisms = auto.isolation.describe()
    if ROOT and Path("/sys/fs/cgroup/memory/cgroup.procs").exists():  # this project's machines
        assert mechanisms == {
            "memory": "cgroup-v1",
            "cpu": "cgroup-v1",
            "pids": "cgroup-v1",
            "tmp": "tmpfs-namespace",
            "freeze": "sigstop",
            "user": "uid-per-function",
        }
    assert (await make_scheduler(freeze_idle=False)).isolation.describe()["freeze"] == "off"


@pytest.mark.parametrize("mode", MODES)
async def test_going_over_memory_kills_the_environment(make_scheduler: MakeScheduler, mode: str) -> None:
    s = await make_scheduler(fn("hog", "resources.hog", memory_mb=128, timeout_s=20), isolation=mode)
    ok = await s.invoke("hog", {"mb": 32})
    assert ok.error_type is None and _json(ok) == "survived"
    result = await s.invoke("hog", {"mb": 400})
    assert result.error_type == "Runtime.ExitError"
    assert _json(result)["errorMessage"] == f"RequestId: {result.request_id} Error: Runtime exited with error: signal: killed"
    assert "Status: error\tError Type: Runtime.OutOfMemory\n" in result.log
    assert result.report_error_type == "Runtime.OutOfMemory"
    assert 100 <= result.max_memory_used_mb <= 400
    after = await s.invoke("hog", {"mb": 16})
    assert after.error_type is None and after.start == "cold"


async def test_a_sudden_huge_allocation_in_the_fallback_is_out_of_memory(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("huge", "resources.huge"), isolation="fallback")
    result = await s.invoke("huge", {"gb": 8})  # past RLIMIT_AS: a MemoryError, reported as OOM
    assert result.error_type == "Runtime.ExitError" and result.report_error_type == "Runtime.OutOfMemory"
    assert (await s.invoke("huge", {"gb": 0})).error_type is None


@pytest.mark.parametrize("mode", MODES)
async def test_max_memory_used_is_the_real_peak(make_scheduler: MakeScheduler, mode: str) -> None:
    s = await make_scheduler(fn("peak", "resources.peak", memory_mb=512), isolation=mode)
    small = await s.invoke("peak", {"mb": 1})
    big = await s.invoke("peak", {"mb": 120})
    assert small.max_memory_used_mb < 100
    assert small.max_memory_used_mb + 100 <= big.max_memory_used_mb < 512
    assert f"Max Memory Used: {big.max_memory_used_mb} MB\t" in big.log


@pytest.mark.parametrize("mode", MODES)
async def test_each_environment_has_its_own_tmp(make_scheduler: MakeScheduler, tmp_path: Path, mode: str) -> None:
    s = await make_scheduler(fn("tmp", "basic.tmp_write"), fn("read", "basic.tmp_read"), fn("hold", "basic.wait_for_file"), isolation=mode)
    first = _json(await s.invoke("tmp", {"name": "note", "value": "one"}))
    # The same environment reads it back later (persistence across invocations)...
    s.update_function(s.functions["tmp"].config.replace(handler="basic.tmp_read"))
    # ...but a new environment of the same function, and other functions, do not see it.
    fresh = _json(await s.invoke("tmp", {"name": "note"}))
    other = _json(await s.invoke("read", {"name": "note"}))
    assert fresh["pid"] != first["pid"] and fresh["value"] is None and other["value"] is None
    assert not Path("/tmp/note").exists() or mode == "fallback"


async def test_a_tmp_write_past_the_quota_fails_with_enospc(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("fill", "resources.fill_tmp", memory_mb=1024, ephemeral_storage_mb=512, timeout_s=30))
    if s.isolation.describe()["tmp"] != "tmpfs-namespace":
        pytest.skip("this host gives no mount namespace")
    result = _json(await s.invoke("fill", {"mb": 600}))
    assert result["errno"] == "ENOSPC" and 400 <= result["written_mb"] <= 512


async def test_a_tmp_over_quota_retires_the_environment_in_the_fallback(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("fill", "resources.fill_tmp", ephemeral_storage_mb=512, timeout_s=30), isolation="fallback")
    first = await s.invoke("fill", {"mb": 520})
    assert _json(first) == {"written_mb": 520, "errno": None}
    env = next(iter(s.environments("fill")), None)
    if env is not None:
        await asyncio.wait_for(env.wait_exited(), 10)
        assert env.stop_reason is StopReason.TMP_OVER_QUOTA
    again = await s.invoke("fill", {"mb": 1})
    assert again.start == "cold"


@pytest.mark.parametrize("freeze", [True, False])
async def test_a_frozen_environment_makes_no_progress(make_scheduler: MakeScheduler, freeze: bool) -> None:
    s = await make_scheduler(fn("tick", "basic.ticker"), freeze_idle=freeze, freeze_delay_s=0)
    first = _json(await s.invoke("tick"))  # starts a thread that counts every millisecond
    env = next(iter(s.environments("tick")))
    assert env.state.value == ("frozen" if freeze else "idle")
    await asyncio.sleep(0.3)  # time passes while the environment is parked: that is the test
    second = await s.invoke("tick")
    assert second.start == "warm" and second.error_type is None
    progress = _json(second) - first
    if freeze:
        assert progress < 20  # only while the invocations ran
    else:
        assert progress > 100


async def test_an_idle_environment_is_frozen_after_the_delay(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("tick", "basic.ticker"), freeze_delay_s=0.05)
    first = _json(await s.invoke("tick"))
    env = next(iter(s.environments("tick")))
    assert env.state.value == "idle"  # reused within the delay, it would never be stopped
    while env.state.value != "frozen":
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)  # frozen: the thread makes no progress from here on
    progress = _json(await s.invoke("tick")) - first
    assert progress < 150  # ≈ 50 ms of ticking before the freeze, none in the 300 ms after


async def test_a_fork_bomb_is_contained(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("bomb", "resources.fork_bomb", timeout_s=10), max_processes=24)
    if s.isolation.describe()["pids"] != "cgroup-v1" and s.isolation.describe()["pids"] != "cgroup-v2":
        pytest.skip("no pids cgroup here (the unprivileged test covers RLIMIT_NPROC)")
    result = _json(await s.invoke("bomb", {"attempts": 500}))
    assert 10 <= result["forked"] < 24
    s.remove_function("bomb")  # its environment, and every process it forked, go away


async def test_cpu_share_follows_memory(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(
        fn("small", "resources.spin", memory_mb=128, timeout_s=30), fn("vcpu", "resources.spin", memory_mb=1769, timeout_s=30)
    )
    if s.isolation.describe()["cpu"] == "none":
        pytest.skip("no cpu controller here")
    work = {"n": 1_500_000}
    await s.invoke("small", {"n": 1})
    await s.invoke("vcpu", {"n": 1})
    fast = _json(await s.invoke("vcpu", work))["seconds"]
    slow = _json(await s.invoke("small", work))["seconds"]
    assert slow > 4 * fast, (slow, fast)  # 128 MB gets ≈7 % of a core, 1,769 MB a whole one


async def test_handlers_run_as_their_own_unprivileged_user(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    if not ROOT:
        pytest.skip("needs root to drop privileges")
    protected = tmp_path / "scheduler-state"
    protected.write_text("the scheduler's file\n")
    protected.chmod(0o644)
    s = await make_scheduler(fn("a", "resources.identity"), fn("b", "resources.identity"))
    event = {"protected": str(protected), "scheduler_pid": os.getpid()}
    a, b = _json(await s.invoke("a", event)), _json(await s.invoke("b", event))
    assert a["uid"] >= 50_000 and b["uid"] >= 50_000 and a["uid"] != b["uid"]
    assert a["write"] == "EACCES" and a["signal"] == "EPERM"
    assert protected.read_text() == "the scheduler's file\n"


async def test_cgroups_are_recycled(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("w", "basic.whoami"))
    if s.isolation.cgroups is None:
        pytest.skip("no cgroups here")
    await s.invoke("w")
    first = next(iter(s.environments("w")))
    assert first.resources is not None and not first.resources.recycled
    name = first.resources.cgroup.name  # type: ignore[union-attr]
    s.update_function(s.functions["w"].config.replace(memory_mb=256))  # retires the environment
    await asyncio.wait_for(first.wait_exited(), 5)
    await s.invoke("w")
    second = next(iter(s.environments("w")))
    assert second.resources is not None and second.resources.recycled
    assert second.resources.cgroup.name == name  # type: ignore[union-attr]


def test_an_unprivileged_user_gets_the_fallback(tmp_path: Path) -> None:
    """The scheduler itself as uid 65534 (keeping only the right to read files, since this
    machine's Python lives under /root): no cgroup or namespace rights, so auto picks the
    fallback, and RLIMIT_NPROC contains a fork bomb."""
    if not ROOT:
        pytest.skip("needs root to switch users")
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    script = textwrap.dedent(
        f"""
        import asyncio, json
        from scheduler import Scheduler, FunctionConfig
        async def main():
            functions = [
                FunctionConfig(name="bomb", handler="resources.fork_bomb", code_dir={str(FUNCTIONS)!r}, timeout_s=10),
                FunctionConfig(name="hog", handler="resources.hog", code_dir={str(FUNCTIONS)!r}, timeout_s=20),
            ]
            async with Scheduler(functions, max_processes=24, state_dir={str(state)!r}) as s:
                bomb = await s.invoke("bomb", {{"attempts": 500}})
                hog = await s.invoke("hog", {{"mb": 400}})
                print(json.dumps({{"mechanisms": s.isolation.describe(), "reasons": s.isolation.reasons,
                                   "forked": json.loads(bomb.payload)["forked"],
                                   "hog": [hog.error_type, hog.report_error_type]}}), flush=True)
        asyncio.run(main())
        """
    )
    command = [
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
        sys.executable, "-c", script,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "TMPDIR": str(state)}
    proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["mechanisms"]["memory"] == "rss-watchdog" and out["mechanisms"]["tmp"] == "tmpdir"
    assert out["mechanisms"]["pids"] == "rlimit-nproc" and out["mechanisms"]["user"] == "unchanged"
    assert any("not writable" in r for r in out["reasons"]) and any("not root" in r for r in out["reasons"])
    assert 1 <= out["forked"] <= 24
    assert out["hog"] == ["Runtime.ExitError", "Runtime.OutOfMemory"]


async def test_nothing_is_left_after_stop(tmp_path: Path) -> None:
    s = Scheduler([fn("w", "basic.whoami")], init_timeout_s=5)
    await s.start()
    await s.invoke("w")
    assert cgroup_leftovers() if s.isolation.cgroups is not None else True
    await s.stop()
    assert not cgroup_leftovers()
    assert not wait_gone(zygote_family(), timeout=5)
