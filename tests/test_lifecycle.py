"""Shutdown: graceful stop, SIGTERM then SIGKILL, and no process outliving the scheduler —
even when the scheduler or the zygote is killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scheduler import SchedulerClosed
from scheduler.engine.environment import EnvState

from .conftest import FUNCTIONS, MakeScheduler, fn
from .procs import alive, wait_gone, zygote_family


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_graceful_stop_lets_in_flight_calls_finish(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("hold", "basic.wait_for_file"), fn("other", "basic.noop"))
    await s.invoke("other")
    release = tmp_path / "go"
    call = asyncio.ensure_future(s.invoke("hold", {"path": str(release)}))
    await _until(lambda: s.admission.in_flight == 1 and any(e.state is EnvState.BUSY for e in s.environments("hold")))
    stopping = asyncio.ensure_future(s.stop())
    await _until(lambda: s._closing)
    with pytest.raises(SchedulerClosed):
        await s.invoke("other")
    assert not stopping.done()
    release.touch()
    result = await call
    assert result.error_type is None
    await stopping
    assert not s.zygote.alive


async def test_stop_kills_what_outlives_the_drain_timeout(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("hang", "faults.hang", timeout_s=60), drain_timeout_s=0.2)
    call = asyncio.ensure_future(s.invoke("hang"))
    await _until(lambda: s.admission.in_flight == 1 and bool(s.environments("hang")))
    await asyncio.wait_for(s.stop(), 5)
    # The runtime was shut down under it: the caller is told the server stopped (a 503).
    with pytest.raises(SchedulerClosed, match="stopped before the invocation finished"):
        await call


async def test_shutdown_escalates_to_sigkill(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("stubborn", "faults.ignore_sigterm"), shutdown_timeout_s=0.3)
    await s.invoke("stubborn")
    env = next(iter(s.environments("stubborn")))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await s.stop()
    assert loop.time() - began >= 0.3
    assert os.WIFSIGNALED(env.exit_status or 0) and os.WTERMSIG(env.exit_status or 0) == signal.SIGKILL


async def test_shutdown_gives_the_runtime_sigterm_first(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    marker = tmp_path / "terminated"
    (code / "graceful.py").write_text(
        textwrap.dedent(
            f"""
            import signal, sys
            def on_term(signum, frame):
                open({str(marker)!r}, "w").write("bye")
                sys.exit(0)
            signal.signal(signal.SIGTERM, on_term)
            def handler(event, context):
                return "hi"
            """
        )
    )
    s = await make_scheduler(fn("g", "graceful.handler", code_dir=code))
    await s.invoke("g")
    env = next(iter(s.environments("g")))
    await s.stop()
    assert marker.read_text() == "bye"
    assert env.exit_status == 0


async def test_killing_the_zygote_is_survivable(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("who", "basic.whoami"))
    first = json.loads((await s.invoke("who")).payload)["pid"]
    old_zygote = s.zygote.pid
    env = next(iter(s.environments("who")))
    os.kill(old_zygote, signal.SIGKILL)
    await asyncio.wait_for(env.wait_exited(), 5)  # its environments die with it
    assert not alive(first)
    result = await s.invoke("who")
    assert result.error_type is None and result.start == "cold"
    assert s.zygote.pid != old_zygote


def test_killing_the_scheduler_leaves_no_environment_behind(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        from scheduler import Scheduler, FunctionConfig
        async def main():
            s = Scheduler([FunctionConfig(name="w", handler="basic.whoami", code_dir={str(FUNCTIONS)!r})])
            await s.start()
            pids = [json.loads((await s.invoke("w")).payload)["pid"] for _ in range(1)]
            results = await asyncio.gather(*(s.invoke("w") for _ in range(3)))
            pids += [json.loads(r.payload)["pid"] for r in results]
            print(json.dumps({{"zygote": s.zygote.pid, "envs": pids}}), flush=True)
            await asyncio.sleep(3600)
        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        pids = {info["zygote"], *info["envs"]}
        assert all(alive(p) for p in pids)
        proc.kill()
        proc.wait(5)
        assert not wait_gone(pids, timeout=5)
        assert not wait_gone(zygote_family(owner=proc.pid), timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
