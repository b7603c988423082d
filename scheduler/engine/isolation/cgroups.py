"""Per-environment cgroups: memory limit, CPU quota, pids limit, OOM and peak-memory readings.

    <our cgroup>/lambda-scheduler-<pid>-<n>/env-<k>      (v1: one such dir per controller)

A *set* is one environment's cgroup(s). The child enters its set itself (writes its pid to
``cgroup.procs``) before any user code runs. Sets are recycled: when an environment exits, its
set is emptied and handed to the next environment, so a busy scheduler stops creating and
removing cgroups, and a limit already in place is not written again.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .probe import HostCapabilities

log = logging.getLogger("lambda_scheduler.isolation")

CPU_PERIOD_US = 20_000  # short enough that 128 MB (7 % of a core) gets > 1 ms per period
_KILL_ROUNDS = 50


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    return path.read_text()


def _read_keyed(path: Path, key: str) -> int:
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


class CgroupSet(Protocol):
    name: str

    def procs_files(self) -> list[str]: ...
    def assign(self, memory_bytes: int, max_processes: int) -> None: ...
    def limit_cpu(self, cores: float) -> None: ...
    def oom_kills(self) -> int: ...
    def peak_bytes(self) -> int: ...
    def pids(self) -> list[int]: ...
    def create(self) -> None: ...
    def remove(self) -> None: ...


class V1Set:
    """One environment's cgroups on the v1 hierarchies (memory, cpu, pids)."""

    def __init__(self, name: str, dirs: dict[str, Path]) -> None:
        self.name = name
        self.dirs = dirs
        self._oom_base = 0
        self._limits: tuple[int, int] | None = None  # what assign() last wrote

    def create(self) -> None:
        for path in self.dirs.values():
            path.mkdir(exist_ok=True)

    def procs_files(self) -> list[str]:
        return [str(path / "cgroup.procs") for path in self.dirs.values()]

    def assign(self, memory_bytes: int, max_processes: int) -> None:
        mem = self.dirs["memory"]
        cpu = self.dirs["cpu"]
        if self._limits != (memory_bytes, max_processes):
            memsw = mem / "memory.memsw.limit_in_bytes"
            has_swap_accounting = memsw.exists()
            if has_swap_accounting:
                _write(memsw, "-1")  # so the memory limit may move either way
            _write(mem / "memory.limit_in_bytes", str(memory_bytes))
            if has_swap_accounting:
                _write(memsw, str(memory_bytes))  # no swap beyond the limit, as on Lambda
            _write(self.dirs["pids"] / "pids.max", str(max_processes))
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            self._limits = (memory_bytes, max_processes)
        with contextlib.suppress(OSError):
            _write(mem / "memory.max_usage_in_bytes", "0")  # the peak is this environment's
        self._oom_base = _read_keyed(mem / "memory.oom_control", "oom_kill")
        _write(cpu / "cpu.cfs_quota_us", "-1")  # Init runs unthrottled; the quota comes after

    def limit_cpu(self, cores: float) -> None:
        _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(max(1000, int(CPU_PERIOD_US * cores))))

    def oom_kills(self) -> int:
        return _read_keyed(self.dirs["memory"] / "memory.oom_control", "oom_kill") - self._oom_base

    def peak_bytes(self) -> int:
        return int(_read(self.dirs["memory"] / "memory.max_usage_in_bytes"))

    def pids(self) -> list[int]:
        return [int(p) for p in _read(self.dirs["pids"] / "cgroup.procs").split()]

    def remove(self) -> None:
        for path in self.dirs.values():
            with contextlib.suppress(FileNotFoundError):
                path.rmdir()


class V2Set:
    """One environment's cgroup on the unified hierarchy."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._oom_base = 0

    def create(self) -> None:
        self.path.mkdir(exist_ok=True)

    def procs_files(self) -> list[str]:
        return [str(self.path / "cgroup.procs")]

    def assign(self, memory_bytes: int, max_processes: int) -> None:
        _write(self.path / "memory.max", str(memory_bytes))
        with contextlib.suppress(OSError):
            _write(self.path / "memory.swap.max", "0")
        _write(self.path / "pids.max", str(max_processes))
        _write(self.path / "cpu.max", f"max {CPU_PERIOD_US}")
        self._oom_base = self._events("oom_kill")

    def _events(self, key: str) -> int:
        return _read_keyed(self.path / "memory.events", key)

    def limit_cpu(self, cores: float) -> None:
        _write(self.path / "cpu.max", f"{max(1000, int(CPU_PERIOD_US * cores))} {CPU_PERIOD_US}")

    def oom_kills(self) -> int:
        return self._events("oom_kill") - self._oom_base

    def peak_bytes(self) -> int:
        peak = self.path / "memory.peak"
        return int(_read(peak)) if peak.exists() else int(_read(self.path / "memory.current"))

    def pids(self) -> list[int]:
        return [int(p) for p in _read(self.path / "cgroup.procs").split()]

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.rmdir()


def kill_all(cgroup: CgroupSet) -> bool:
    """SIGKILL every process in the set until it is empty (a fork bomb's children included:
    the pids limit bounds how many can appear). True when the set is empty."""
    for _ in range(_KILL_ROUNDS):
        try:
            pids = cgroup.pids()
        except OSError:
            return True
        if not pids:
            return True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.sched_yield()  # let the killed exit before looking again
    return not cgroup.pids()


class CgroupTree:
    """Our subtree of cgroups and the recycled environment sets in it."""

    def __init__(self, caps: HostCapabilities, keep: int = 64) -> None:
        self.caps = caps
        self.version = caps.cgroup_version
        self.keep = keep  # emptied sets kept for reuse; beyond, they are removed
        self.name = f"lambda-scheduler-{os.getpid()}-{next(_TREES)}"
        self._roots: list[Path] = []
        self._free: deque[CgroupSet] = deque()
        self._all: dict[str, CgroupSet] = {}
        self._counter = 0

    # --- the subtree ----------------------------------------------------------------------

    def open(self) -> None:
        if self.version == 1:
            for base in self.caps.v1_dirs.values():
                _remove_stale(base)
                root = base / self.name
                root.mkdir(exist_ok=True)
                self._roots.append(root)
        else:
            assert self.caps.v2_dir is not None
            base = self.caps.v2_dir
            _remove_stale(base)
            root = base / self.name
            root.mkdir(exist_ok=True)
            self._roots.append(root)
            # Environments need these controllers in their own cgroups.
            _write(base / "cgroup.subtree_control", "+memory +cpu +pids")
            _write(root / "cgroup.subtree_control", "+memory +cpu +pids")

    def close(self) -> None:
        """Kill what is left and remove every cgroup we made. Blocking: run it in a thread.
        A killed process keeps its cgroup populated until it is reaped (by init, for orphans
        a handler forked), so removal is retried for a while."""
        for cgroup in self._all.values():
            kill_all(cgroup)
        deadline = time.monotonic() + _REMOVE_PATIENCE_S
        pending = list(self._all.values())
        while pending:
            pending = [c for c in pending if not _try(c.remove)]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        for cgroup in pending:
            log.warning("could not remove cgroup %s", cgroup.name)
        self._all.clear()
        self._free.clear()
        for root in self._roots:
            while not _try(root.rmdir) and time.monotonic() < deadline:
                time.sleep(0.01)
        self._roots.clear()

    def _new_set(self) -> CgroupSet:
        self._counter += 1
        name = f"env-{self._counter}"
        cgroup: CgroupSet
        if self.version == 1:
            cgroup = V1Set(name, {c: base / self.name / name for c, base in self.caps.v1_dirs.items()})
        else:
            assert self.caps.v2_dir is not None
            cgroup = V2Set(name, self.caps.v2_dir / self.name / name)
        cgroup.create()
        self._all[name] = cgroup
        return cgroup

    # --- handing sets out and taking them back --------------------------------------------

    def acquire(self) -> tuple[CgroupSet, bool]:
        """A set for a new environment, and whether it is a recycled one."""
        if self._free:
            return self._free.pop(), True
        return self._new_set(), False

    def release(self, cgroup: CgroupSet) -> None:
        """The environment exited: empty the set and keep it for the next one."""
        if not kill_all(cgroup):
            log.warning("cgroup %s still has processes; dropping it", cgroup.name)
            return
        if len(self._free) < self.keep:
            self._free.append(cgroup)
        else:
            self._all.pop(cgroup.name, None)
            with contextlib.suppress(OSError):
                cgroup.remove()


_TREES = itertools.count(1)  # several schedulers may run in one process (tests do)
_REMOVE_PATIENCE_S = 5.0


def _try(action: Callable[[], None]) -> bool:
    try:
        action()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _remove_stale(base: Path) -> None:
    """Remove subtrees left by schedulers that were killed (their pid is gone)."""
    for entry in base.glob("lambda-scheduler-*"):
        try:
            pid = int(entry.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        for child in sorted(entry.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir():
                _kill_and_rmdir(child)
        _kill_and_rmdir(entry)
        log.warning("removed the cgroups %s of a scheduler that is gone (pid %d)", entry, pid)


def _kill_and_rmdir(path: Path) -> None:
    procs = path / "cgroup.procs"
    with contextlib.suppress(OSError):
        for pid in procs.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    try:
        path.rmdir()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EBUSY):
            raise
