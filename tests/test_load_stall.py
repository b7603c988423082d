"""A server stall under open-loop load shows in the latencies.

``lambda-scheduler serve`` runs in its own process; in the middle of an open-loop run the
test freezes it with SIGSTOP for 400 ms, then lets it go on with SIGCONT. Nothing can answer
during the freeze, so every request due in it is late by at least the rest of the freeze —
a physical lower bound the harness's numbers are checked against. The harness has only four
connections, so most of those requests were not even sent during the freeze: a harness that
measured from the send (coordinated omission) would miss them, and its service times show
exactly that.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scheduler.load import LoadConfig, OpenLoop, Stage, Target, run_load

from .procs import wait_gone

FUNCTIONS = Path(__file__).parent / "functions"

TEMPLATE = f"""\
Transform: AWS::Serverless-2016-10-31
Resources:
  Noop:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: noop
      CodeUri: {FUNCTIONS}
      Handler: basic.noop
      Runtime: python3.11
      ProvisionedConcurrencyConfig:
        ProvisionedConcurrentExecutions: 4
"""


def descendants(pid: int) -> set[int]:
    """The server's zygote and environments, from /proc's children lists."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = []
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children += (task / "children").read_text().split()
            except OSError:
                continue
        for child in map(int, children):
            found.add(child)
            todo.append(child)
    return found


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[tuple[int, str]]:
    """``lambda-scheduler serve`` on a free port: (pid, url). Stopped with SIGTERM (after a
    SIGCONT, in case the test failed while it was frozen)."""
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scheduler",
        "serve",
        str(template),
        "--port",
        "0",
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        match = re.search(rb"at (http://\S+)", line)
        assert match, line
        yield proc.pid, match.group(1).decode()
    finally:
        family = descendants(proc.pid)
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) in (0, -signal.SIGTERM)
        assert not wait_gone(family, timeout=5.0), "processes left behind"


async def test_a_frozen_server_shows_in_the_latencies(server_process: tuple[int, str]) -> None:
    pid, url = server_process
    rate, freeze = 200.0, 0.4
    config = LoadConfig(url, (Target("noop"),), OpenLoop((Stage(1.5, rate, rate),)), connections=4)
    run = asyncio.ensure_future(run_load(config))
    await asyncio.sleep(0.5)  # the first half second runs against a healthy server
    os.kill(pid, signal.SIGSTOP)
    frozen_at = time.perf_counter()
    await asyncio.sleep(freeze)
    thawed_at = time.perf_counter()
    os.kill(pid, signal.SIGCONT)
    result = await run
    r = result.recorder
    assert r.ok == r.sent == 300 and not r.errors

    # The lower bound: a request due at t in the freeze cannot be answered before the thaw.
    due = [r.started + i / rate for i in range(300)]
    late_by_100ms = sum(1 for t in due if frozen_at <= t <= thawed_at - 0.100)
    assert late_by_100ms >= 50
    assert r.latency.count_at_or_above(100_000) >= late_by_100ms
    first_due_in_freeze = min(t for t in due if t >= frozen_at)
    assert r.latency.max >= (thawed_at - first_due_in_freeze) * 1e6
    assert r.latency.percentile(0.9) >= 100_000

    # Measured from the send instead, only the four requests on the wire during the freeze
    # (and a few right after the thaw, on a busy machine) look slow.
    assert r.service.count_at_or_above(100_000) <= 10

    # The stall is the server's: the harness dispatched (nearly) on time — far less late than
    # the 400 ms freeze, whatever else runs on this machine — and names the requests that
    # waited for one of its connections.
    v = result.verdict
    assert v.dispatch_lag_ms["p99"] < 100
    assert any("free connection" in note for note in v.notes)

    # Over time: the interval of the thaw holds the slow answers.
    thaw_slot = r.intervals[int((thawed_at - r.started) / r.interval_s)]
    assert thaw_slot.latency.max >= 300_000
