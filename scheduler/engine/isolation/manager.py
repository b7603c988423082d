"""Choosing and running the isolation of environments: one :class:`Isolation` per scheduler,
one :class:`EnvResources` per environment.

    Scheduler.start ─► Isolation.start: probe the host, pick the strongest mechanism for each
                       resource (or the fallback when forced), report the choice
    Starter.start ─► Isolation.prepare(config): the function's uid lease (uids)
                  ─► Isolation.allocate(config) ─► EnvResources
         .spec      what the child applies to itself (scheduler.engine.isolation.child)
         .environ   extra variables (TMPDIR in the fallback)
         .on_ready  the CPU quota, once Init is done (Lambda's Init is not throttled by memory)
         .oom_killed / .peak_kb / .tmp_over_quota   readings when an invocation ends
         .release   after the process exited: kill what is left, recycle the cgroup, remove TMPDIR
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Protocol

from ...config import FunctionConfig, SchedulerConfig
from ..protocol import IsolationSpec
from ..stops import StopReason
from . import view
from .cgroups import CgroupSet, CgroupTree
from .fallback import ADDRESS_SPACE_HEADROOM, MemoryWatchdog, TmpDirs, tree_bytes, user_task_count
from .probe import HostCapabilities, probe
from .uids import UidLeases

log = logging.getLogger("lambda_scheduler.isolation")

MB = 1 << 20
ONE_VCPU_MB = 1769  # Lambda: 1,769 MB of memory = one vCPU
_WATCH_INTERVAL_S = 0.05
_NPROC_REFRESH_S = 5.0


def cpu_cores(memory_mb: int, host_cores: int) -> float:
    return min(float(host_cores), memory_mb / ONE_VCPU_MB)


def readable_by_others(path: Path) -> bool:
    """Do ``path``'s own mode bits let a user with no groups in common read it (and search it,
    for a directory)? Missing paths count as readable: nothing there to need."""
    try:
        st = path.resolve().stat()
    except OSError:
        return True
    return bool(st.st_mode & stat.S_IROTH) and (not stat.S_ISDIR(st.st_mode) or bool(st.st_mode & stat.S_IXOTH))


def reachable_by_others(path: Path) -> bool:
    """Can a user with no groups in common read ``path`` (search every ancestor, read it)?"""
    path = path.resolve()
    if not readable_by_others(path):
        return False
    for parent in path.parents:
        try:
            if not parent.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


class LimitedProcess(Protocol):
    """What the limits enforced from here need of an environment (environment.Environment)."""

    def over_limit(self, reason: StopReason, peak_kb: int = 0) -> None: ...


class EnvResources:
    """One environment's share of the isolation."""

    def __init__(self, iso: Isolation, config: FunctionConfig) -> None:
        self.iso = iso
        self.memory_bytes = config.memory_mb * MB
        self.cores = cpu_cores(config.memory_mb, os.cpu_count() or 1)
        self.tmp_limit = config.ephemeral_storage_mb * MB
        self.cgroup: CgroupSet | None = None
        self.recycled = False
        self.tmp_dir: Path | None = None
        self.environ: dict[str, str] = {}
        self.pid = 0
        self.oom_flag = False
        self.spec = IsolationSpec()

    def attach(self, pid: int, env: LimitedProcess) -> None:
        """The process exists: the fallback watchdog starts watching it, and tells ``env``
        when it goes over its memory size."""
        self.pid = pid
        if self.iso.watchdog is not None:
            self.iso.watchdog.watch(pid, self.memory_bytes, lambda rss: env.over_limit(StopReason.OUT_OF_MEMORY, rss // 1024))

    def move_into_cgroup(self, pid: int) -> None:
        """Put ``pid`` in this environment's cgroup from outside (a fork of a snapshot)."""
        for procs in self.spec.cgroup_procs:
            Path(procs).write_text(str(pid))

    def on_ready(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.limit_cpu(self.cores)
            except OSError as exc:
                log.warning("could not set the CPU quota of %s: %s", self.cgroup.name, exc)

    def oom_killed(self) -> bool:
        if self.oom_flag:
            return True
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                return self.cgroup.oom_kills() > 0
        return False

    def peak_kb(self) -> int | None:
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                return self.cgroup.peak_bytes() // 1024
        return None

    def tmp_over_quota(self) -> bool:
        return self.tmp_dir is not None and tree_bytes(self.tmp_dir) > self.tmp_limit

    def release(self) -> None:
        if self.iso.watchdog is not None and self.pid:
            self.iso.watchdog.unwatch(self.pid)
        if self.cgroup is not None and self.iso.cgroups is not None:
            self.iso.cgroups.release(self.cgroup)
            self.cgroup = None
        if self.tmp_dir is not None:
            TmpDirs.remove(self.tmp_dir)
            self.tmp_dir = None


class Isolation:
    def __init__(self, settings: SchedulerConfig) -> None:
        self.settings = settings
        self.caps: HostCapabilities | None = None
        self.cgroups: CgroupTree | None = None
        self.namespaces = False
        self.tmpdirs: TmpDirs | None = None
        self.watchdog: MemoryWatchdog | None = None
        self.mechanisms: dict[str, str] = {}
        self.reasons: list[str] = []
        self.leases: UidLeases | None = None
        self._leasing: dict[str, asyncio.Future[int]] = {}
        self._checked: set[tuple[str, ...]] = set()  # (function, code, layers...) checked for the sandbox uid
        self._readable: dict[str, bool] = {}  # path -> readable by the sandbox uids (the shared ones recur)
        self._uid_tasks = 0
        self._task: asyncio.Task[None] | None = None
        self._code: dict[str, tuple[str, ...]] = {}  # function -> its code and layers (real paths)
        self._layout: tuple[list[str], list[str]] | None = None  # (hidden, shared), made when needed

    # --- choosing -------------------------------------------------------------------------

    async def start(self) -> None:
        forced = self.settings.isolation == "fallback"
        caps = await asyncio.to_thread(probe, not forced, not forced)
        self.caps = caps
        if caps.cgroup_version:
            tree = CgroupTree(caps)
            try:
                await asyncio.to_thread(tree.open)
                self.cgroups = tree
            except OSError as exc:
                self.reasons.append(f"cgroups unusable: {exc}")
                await asyncio.to_thread(tree.close)
        elif not forced:
            self.reasons.append(caps.cgroup_reason)
        self.namespaces = caps.mount_namespace
        if not self.namespaces and not forced:
            self.reasons.append(caps.mount_reason)
        if self.cgroups is None:
            self.watchdog = MemoryWatchdog()
            self._uid_tasks = user_task_count(os.getuid())
        if not self.namespaces:
            self.tmpdirs = TmpDirs(self.settings.state_dir)
            self.tmpdirs.open()
        self.mechanisms = self._describe(forced)
        if self.mechanisms["user"] == "uid-per-function":
            assert self.settings.sandbox_uid_base is not None
            self.leases = UidLeases(self.settings.sandbox_uid_base)
            await asyncio.to_thread(self.leases.open)
        log.info(
            "isolation: %s%s",
            ", ".join(f"{k}={v}" for k, v in self.mechanisms.items()),
            f" (fallback because: {'; '.join(self.reasons)})" if self.reasons else "",
        )
        if self.watchdog is not None:
            self._task = asyncio.ensure_future(self._watch())

    def _describe(self, forced: bool) -> dict[str, str]:
        kind = f"cgroup-v{self.cgroups.version}" if self.cgroups else None
        return {
            "memory": kind or "rss-watchdog",
            "cpu": kind or "none",
            "pids": kind or "rlimit-nproc",
            "tmp": "tmpfs-namespace" if self.namespaces else "tmpdir",
            "freeze": "sigstop" if self.settings.freeze_idle else "off",
            "user": self._user_mechanism(forced),
        }

    def _user_mechanism(self, forced: bool) -> str:
        if forced:
            return "unchanged"
        if os.geteuid() != 0:
            return "unchanged"
        if self.settings.sandbox_uid_base is None:
            return "root-without-capabilities"
        return "uid-per-function"

    def describe(self) -> dict[str, str]:
        """The mechanism in use for each resource (for the log and an info metric)."""
        return dict(self.mechanisms)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        contained = self.cgroups is not None  # then nothing an environment forked outlives it
        if self.cgroups is not None:
            await asyncio.to_thread(self.cgroups.close)
            self.cgroups = None
        if self.tmpdirs is not None:
            self.tmpdirs.close()
            self.tmpdirs = None
        if self.leases is not None:
            # Last: every environment (and, with cgroups, all they forked) is gone by now.
            self.leases.close(clean=contained)
            self.leases = None

    async def _watch(self) -> None:
        """The fallback's memory watchdog, and its refresh of the user's process count."""
        assert self.watchdog is not None
        loop = asyncio.get_running_loop()
        next_nproc = loop.time() + _NPROC_REFRESH_S
        while True:
            self.watchdog.check()
            if loop.time() >= next_nproc:
                self._uid_tasks = await asyncio.to_thread(user_task_count, os.getuid())
                next_nproc = loop.time() + _NPROC_REFRESH_S
            await asyncio.sleep(_WATCH_INTERVAL_S)

    # --- one environment ------------------------------------------------------------------

    def allocate(self, config: FunctionConfig, base_path: list[str]) -> EnvResources:
        res = EnvResources(self, config)
        spec = res.spec
        if self.cgroups is not None:
            res.cgroup, res.recycled = self.cgroups.acquire()
            res.cgroup.assign(res.memory_bytes, self.settings.max_processes)
            spec.cgroup_procs = res.cgroup.procs_files()
        else:
            spec.address_space_bytes = res.memory_bytes + ADDRESS_SPACE_HEADROOM
            spec.oom_on_memory_error = True
            spec.max_processes = self._uid_tasks + self.settings.max_processes
        if self.namespaces:
            spec.tmp_mb = config.ephemeral_storage_mb
            spec.hidden, spec.shared = self._view_layout()
        elif self.tmpdirs is not None:
            res.tmp_dir = self.tmpdirs.new()
            res.environ["TMPDIR"] = str(res.tmp_dir)
        user = self.mechanisms.get("user")
        if user in ("uid-per-function", "root-without-capabilities"):
            spec.drop_capabilities = True
        if user == "uid-per-function":
            spec.uid = spec.gid = self._uid_for(config.name)
            self._check_paths(config, base_path, spec.uid)
            if res.tmp_dir is not None:
                os.chown(res.tmp_dir, spec.uid, spec.gid)
        return res

    # --- what the view hides -----------------------------------------------------------

    def set_function(self, name: str, config: FunctionConfig | None) -> None:
        """The scheduler's functions, as they change (None: removed): the code and layers of
        each one are private roots in every other function's view."""
        dirs = () if config is None else tuple(os.path.realpath(p) for p in (config.code_dir, *config.layers))
        if self._code.get(name, ()) != dirs:
            if dirs:
                self._code[name] = dirs
            else:
                self._code.pop(name, None)
            self._layout = None

    def _view_layout(self) -> tuple[list[str], list[str]]:
        """(hidden, shared) of every environment's view (``view.Layout``). Private roots: the
        configured ones (the template's folder), every function's code and layers, the
        scheduler's source checkout; only the topmost of nested ones, none in a system folder."""
        if self._layout is None:
            checkout = view.source_checkout()
            candidates = {os.path.realpath(p) for p in self.settings.private_paths}
            candidates.update(d for dirs in self._code.values() for d in dirs)  # real paths already
            if checkout is not None:
                candidates.add(checkout)
            roots: list[str] = []
            for path in sorted(filter(view.hideable, candidates)):  # a parent before what it holds
                if not any(path == r or path.startswith(r + "/") for r in roots):
                    roots.append(path)
            self._layout = roots, sorted({os.path.realpath(p) for p in self.settings.shared_paths})
        hidden, shared = self._layout
        return list(hidden), list(shared)

    async def prepare(self, config: FunctionConfig) -> None:
        """Before ``allocate``: lease the function's uid if it has none yet — in a thread,
        since making sure no process still runs as it scans /proc."""
        if self.leases is None or self.leases.get(config.name) is not None:
            return
        pending = self._leasing.get(config.name)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self.leases.lease, config.name))
            self._leasing[config.name] = pending
            pending.add_done_callback(lambda _: self._leasing.pop(config.name, None))
        await asyncio.shield(pending)

    def _uid_for(self, function: str) -> int:
        assert self.leases is not None
        uid = self.leases.get(function)
        return uid if uid is not None else self.leases.lease(function)  # not prepared: lease here

    def _check_paths(self, config: FunctionConfig, base_path: list[str], uid: int) -> None:
        """Warn, once per function and code, about a path its environments need but cannot
        read: they hold no capability. With a mount namespace only the path's own mode matters
        (closed ancestors are replaced in the environment's view); without one, theirs too."""
        key = (config.name, str(config.code_dir), *map(str, config.layers))
        if key in self._checked:
            return
        self._checked.add(key)
        readable = readable_by_others if self.namespaces else reachable_by_others

        def ok(path: str) -> bool:
            known = self._readable.get(path)
            if known is None:
                known = self._readable[path] = readable(Path(path))
            return known

        paths = [str(config.code_dir), *map(str, config.layers), *base_path]
        blocked = next((p for p in paths if not ok(p)), None)
        if blocked is not None:
            log.warning(
                "function %s: %s is not readable by other users, and its environments run as uid %d "
                "with no capability: give it o+rX%s",
                config.name,
                blocked,
                uid,
                " (the folders above it can stay private)"
                if self.namespaces
                else " and make its folders searchable (o+x)",
            )


def interpreter_path() -> list[str]:
    """The scheduler's own import path, which environments inherit through the zygote."""
    return [p for p in sys.path if p and os.path.isdir(p)]
