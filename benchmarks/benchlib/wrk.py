"""Run Debian's wrk with benchmarks/invoke.lua and read its results.

wrk's own CPU time (from the rusage of the waited child) says whether it, the client, was
the bottleneck: with one thread, near 100 % of a core it could not send faster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from .procs import group_cpu_seconds
from .servers import BENCH

SCRIPT = BENCH / "invoke.lua"
CLIENT_SATURATED = 0.90  # of one core per wrk thread


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    path = wrk_path()
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else None


@dataclass
class WrkRun:
    url: str
    function: str
    connections: int
    duration_s: float
    rate: float
    latency_us: dict[str, float]
    errors: dict[str, int]
    requests: int
    wrk_cpu: float  # fraction of one core per wrk thread
    server_cpu: float  # the server process, fraction of one core
    server_children_cpu: float  # what it spawned (environments, runners), in cores
    client_bound: bool
    output: str
    checked_statuses: dict[str, int]
    function_errors: int

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("output")
        return d


def run_wrk(
    url: str,
    function: str,
    connections: int,
    duration_s: float,
    *,
    threads: int = 1,
    event: str = "{}",
    check: bool = False,
    server_pid: int | None = None,
    invocation_type: str | None = None,
) -> WrkRun:
    path = wrk_path()
    if path is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    threads = max(1, min(threads, connections))
    command = [
        path,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",  # wrk takes whole seconds only
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        function,
        event,
        *(["check" if check else "-", invocation_type] if invocation_type else ["check"] if check else []),
    ]
    before = group_cpu_seconds(server_pid) if server_pid else None
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    after = group_cpu_seconds(server_pid) if server_pid else None
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {output}")
    line = next((l for l in output.splitlines() if l.startswith("wrk-json ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no results: {output}")
    data = json.loads(line.removeprefix("wrk-json "))
    seconds = data["duration_us"] / 1e6
    wrk_cpu = (usage.ru_utime + usage.ru_stime) / wall / threads
    server = children = 0.0
    if before and after:
        server = (after["server"] - before["server"]) / wall
        # Children that exited during the run are not counted: a lower bound.
        children = max(0.0, after["children"] - before["children"]) / wall
    return WrkRun(
        url=url,
        function=function,
        connections=connections,
        duration_s=seconds,
        rate=data["requests"] / seconds if seconds else 0.0,
        latency_us=data["latency_us"],
        errors=data["errors"],
        requests=data["requests"],
        wrk_cpu=wrk_cpu,
        server_cpu=server,
        server_children_cpu=children,
        client_bound=wrk_cpu >= CLIENT_SATURATED,
        output=output,
        checked_statuses=data["checked_statuses"],
        function_errors=data["function_errors"],
    )
