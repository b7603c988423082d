"""Isolation applied by a freshly forked environment to itself, before any user code runs.

Order matters: enter the cgroups first (everything after is charged and limited), then the
mount namespace and its private view (``view``: needs root), then rlimits, then the uid, and
every capability last; a credential change clears the parent-death signal, so it is set again
afterwards.
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Callable

from ...errors import IsolationFailed
from ..protocol import IsolationSpec
from . import view

PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise IsolationFailed(f"{what}: {os.strerror(err)}")


def _enter_cgroups(procs_files: list[str]) -> None:
    pid = str(os.getpid()).encode()
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 63


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _clear_capability_sets() -> None:
    """Effective, permitted and inheritable all empty (setuid alone leaves inheritable)."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid`` (if >= 0) holding no capability at all, for good."""
    # While CAP_SETPCAP is still held: an empty bounding set means not even a setuid-root or
    # file-capability program could bring one back (no new privileges, below, says so too).
    for cap in range(_last_capability() + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    _check(_libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "do not keep capabilities")
    if uid >= 0:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)  # root to another uid, KEEPCAPS off: permitted and effective are emptied
    _clear_capability_sets()  # inheritable too, and all of them for a uid that stays 0
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no new privileges")


_planner: view.Planner | None = None


def layout_of(spec: IsolationSpec) -> view.Layout:
    return view.Layout(tuple(spec.hidden), tuple(spec.shared))


def view_planner(common: list[str], layout: view.Layout) -> view.Planner:
    """The planner for environments whose shared import path is ``common`` and whose view has
    ``layout``: made in the zygote (at start-up, and again before a fork when the scheduler's
    layout changed) and inherited by every fork."""
    global _planner
    if _planner is None or _planner.key != (tuple(common), layout):
        _planner = view.Planner(common, layout)
    return _planner


def enter_environment(
    spec: IsolationSpec,
    zygote_pid: int,
    die_with_parent: Callable[[int], None],
    own: list[str],
    common: list[str],
) -> None:
    """Apply ``spec`` to this (child) process. ``own``: the function's paths (task root,
    layers); ``common``: the import path every environment shares. Both stay visible."""
    if spec.cgroup_procs:
        _enter_cgroups(spec.cgroup_procs)
    if spec.tmp_mb > 0:
        view.build(view_planner(common, layout_of(spec)).plan(own), spec.tmp_mb)
    if spec.address_space_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (spec.address_space_bytes, spec.address_space_bytes))
    if spec.max_processes > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (spec.max_processes, spec.max_processes))
    if spec.uid >= 0 or spec.drop_capabilities:
        _drop_privileges(spec.uid, spec.gid)
        die_with_parent(zygote_pid)  # a credential change clears the parent-death signal
