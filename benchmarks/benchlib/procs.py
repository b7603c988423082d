"""Processes the benchmarks start, and what /proc says about them.

Every server is started in a session of its own (``start_new_session``), so that stopping it
can reach the processes it spawned (serverless-offline's Python runners, our zygote and
environments) through its process group — by the id of the process we started, never by a
name pattern.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Server:
    """A server process we started: its pid (= its process group), URL and log file."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, grace_s: float = 10.0) -> float:
        """SIGTERM to the group, SIGKILL after ``grace_s``; returns seconds until it exited."""
        started = time.perf_counter()
        if self.proc.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Anything of its group still alive (a runner it orphaned) goes too.
        _signal_group(self.pid, signal.SIGKILL)
        return time.perf_counter() - started


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_server(
    name: str,
    command: Sequence[str],
    *,
    log: Path,
    ready: Callable[[str], str | None],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> Server:
    """Start ``command``; ``ready(log_text)`` returns the URL once the server accepts requests
    (or None while it does not). The log file takes stdout and stderr, so a chatty server
    never blocks on a full pipe."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("wb")
    proc = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    out.close()
    deadline = time.monotonic() + timeout_s
    server = Server(name, proc, "", log)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before it was ready; see {log}:\n{tail(log)}")
        url = ready(log.read_text(errors="replace"))
        if url:
            server.url = url
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s; see {log}:\n{tail(log)}")


def url_in_log(pattern: str = r"at (http://\S+)") -> Callable[[str], str | None]:
    regex = re.compile(pattern)

    def ready(text: str) -> str | None:
        match = regex.search(text)
        return match.group(1) if match else None

    return ready


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- /proc ------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children lists of all its threads, recursively)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one live process (its own threads, not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def group_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU of a server process and, apart, of everything it spawned that is still alive."""
    return {"server": cpu_seconds(pid), "children": sum(cpu_seconds(p) for p in descendants(pid))}


@dataclass(frozen=True)
class Memory:
    rss_kb: int
    pss_kb: int
    uss_kb: int  # private clean + private dirty: what the process alone holds


def memory(pid: int) -> Memory | None:
    """From /proc/<pid>/smaps_rollup (kernel ≥ 4.14)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            values[key.strip()] = int(parts[0])
    return Memory(
        values.get("Rss", 0), values.get("Pss", 0), values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    )


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
