"""Isolation applied by a freshly forked environment to itself, before any user code runs.

Order matters: enter the cgroups first (everything after is charged and limited), then the
mount namespace and its private tmpfs mounts (needs root), then rlimits, and drop privileges
last; dropping clears the parent-death signal, so it is set again afterwards.
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Callable

from ..protocol import IsolationSpec

CLONE_NEWNS = 0x00020000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
CAP_DAC_READ_SEARCH = 2
_CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class IsolationFailed(RuntimeError):
    pass


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


_PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def _covered(paths: list[str]) -> list[str]:
    """The paths under a private dir that must stay visible, without ones nested in others."""
    inside = sorted({os.path.realpath(p) for p in paths if any(_under(p, d) for d in _PRIVATE_DIRS)})
    kept: list[str] = []
    for path in inside:
        if os.path.isdir(path) and not any(_under(path, k) for k in kept):
            kept.append(path)
    return kept


def _under(path: str, directory: str) -> bool:
    real = os.path.realpath(path)
    return real == directory or real.startswith(directory + "/")


def _private_tmp(size_mb: int, keep: list[str]) -> None:
    """A mount namespace of our own with fresh tmpfs on /tmp (sized like Lambda's ephemeral
    storage), /var/tmp and /dev/shm, gone with the environment. Directories the function
    needs that live there (its code, a virtualenv) are bound back at the same paths."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    kept = _covered(keep)
    held = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in kept]
    for directory in _PRIVATE_DIRS:
        if not os.path.isdir(directory):
            continue
        mb = size_mb if directory == "/tmp" else min(size_mb, 64)
        options = f"size={mb}m,mode=1777".encode()
        _check(_libc.mount(b"tmpfs", directory.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options), f"tmpfs on {directory}")
    for path, fd in held:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _check(_libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None), f"keep {path}")
        os.close(fd)


def _set_capabilities(keep: list[int]) -> None:
    """Effective, permitted and inheritable sets = ``keep``; ambient too, so a subprocess the
    handler runs (another python) keeps them."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    mask = [0, 0]
    for cap in keep:
        mask[cap // 32] |= 1 << (cap % 32)
    header = Header(_CAP_VERSION_3, 0)
    data = (Data * 2)(*(Data(m, m, m) for m in mask))
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    for cap in keep:
        _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "raise ambient capability")


def _drop_privileges(uid: int, gid: int, keep_read_search: bool) -> None:
    if keep_read_search:
        _check(_libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "keep capabilities")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if keep_read_search:
        _set_capabilities([CAP_DAC_READ_SEARCH])
    # No setuid binary or file capability can give back what was dropped.
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no new privileges")


def enter_environment(
    spec: IsolationSpec, zygote_pid: int, die_with_parent: Callable[[int], None], needed: list[str]
) -> None:
    """Apply ``spec`` to this (child) process. ``needed``: directories user code reads (its
    task root, import path), which must stay visible."""
    if spec.cgroup_procs:
        _enter_cgroups(spec.cgroup_procs)
    if spec.tmp_mb > 0:
        _private_tmp(spec.tmp_mb, needed)
    if spec.address_space_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (spec.address_space_bytes, spec.address_space_bytes))
    if spec.max_processes > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (spec.max_processes, spec.max_processes))
    if spec.uid >= 0:
        _drop_privileges(spec.uid, spec.gid, spec.keep_read_search)
        die_with_parent(zygote_pid)  # a credential change clears the parent-death signal
