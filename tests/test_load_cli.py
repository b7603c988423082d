"""``lambda-scheduler load`` as a user runs it: a real process, its stdout a terminal (a pty),
against a real server; the live line, the final table, the JSON and the plots."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MakeServer, fn


def read_until_closed(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def run_cli(*args: str) -> tuple[int, str]:
    """Run ``lambda-scheduler load ARGS`` with a terminal as its stdout."""
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scheduler", "load", *args, stdout=slave, stderr=subprocess.STDOUT
    )
    os.close(slave)
    try:
        output = await asyncio.wait_for(asyncio.to_thread(read_until_closed, master), 60)
    finally:
        os.close(master)
    return await proc.wait(), output.decode()


async def test_load_command_draws_progress_and_writes_json_and_plots(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(fn("hello", "basic.echo"), fn("slow", "basic.sleep", timeout_s=5))
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"seconds": 0.01}, {"seconds": 0.02}]))
    out = tmp_path / "run.json"
    code, text = await run_cli(
        "--endpoint-url",
        served.url,
        "--function",
        "hello=3",
        "--function",
        f"slow=1@{events}",
        "--stage",
        "1s:40-120",
        "--stage",
        "1s:120",
        "--interval",
        "0.5s",
        "--seed",
        "4",
        "--json",
        str(out),
        "--plots",
        str(tmp_path / "plots"),
    )
    assert code == 0, text
    # The live line, redrawn in place on the terminal, once per interval.
    live = [part for part in text.split("\r") if "answered" in part and "in flight" in part]
    assert len(live) >= 3, text
    assert "cold" in live[-1] and "p99" in live[-1]
    # The final table.
    assert "open loop, fixed arrivals, 40→120/s for 1 s, then 120/s for 1 s" in text
    assert "latency ms" in text and "all (from intended)" in text and "harness" in text
    doc = json.loads(out.read_text())
    expected = 80 + 120  # the area under the two stages
    assert doc["totals"]["sent"] == doc["totals"]["completed"] == expected
    assert doc["totals"]["ok"] == expected and doc["totals"]["errors"] == 0
    assert doc["starts"]["cold"] + doc["starts"]["warm"] == expected and doc["starts"]["cold"] >= 2
    assert set(doc["by_function"]) == {"hello", "slow"}
    assert doc["by_function"]["slow"]["latency_ms"]["min"] >= 10.0
    assert len(doc["timeline"]) >= 4
    assert doc["latency_ms"]["p50"] <= doc["latency_ms"]["p99"] <= doc["latency_ms"]["max"]
    pytest.importorskip("matplotlib")
    for name in ("latency_cdf.png", "over_time.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_load_command_usage_errors() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scheduler",
        "load",
        "--function",
        "f",
        "--concurrency",
        "4",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"a closed loop needs --requests or --duration" in err
