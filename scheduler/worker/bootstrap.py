"""What a freshly forked environment does before any user code runs.

Runs in the child of the zygote, single-threaded, right after ``fork()``: take a session of its
own (so the whole process tree can be signalled and no terminal signal reaches it), die with
the zygote, put the pipes on stdout/stderr, apply resource isolation, replace the environment
variables with Lambda's, and hand over to the runtime loop.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import sys
import tempfile
from typing import NoReturn

from ..engine.isolation.child import enter_environment
from ..engine.protocol import Spawn
from . import runtime, snaphooks

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGKILL when the parent goes; exit now if it already went."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _wire_fds(log_fd: int) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)


def _close_inherited(keep: list[int]) -> None:
    """Close every descriptor but ``keep``: one the zygote (or a preloaded module) left open
    on a directory would let user code escape its view of the filesystem with openat()."""
    low = 0
    for fd in sorted(keep):
        if fd > low:  # closerange(0, 0) would close every descriptor (close_range(0, ~0))
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def become_environment(spawn: Spawn, fds: list[int], zygote_pid: int, base_path: list[str]) -> NoReturn:
    control_in, control_out, log_fd = fds
    os.setsid()
    die_with_parent(zygote_pid)
    _reset_signals()
    _wire_fds(log_fd)
    _close_inherited([0, 1, 2, control_in, control_out])
    random.seed()  # the zygote's generator state is shared by every fork otherwise
    enter_environment(spawn.isolation, zygote_pid, die_with_parent, [spawn.task_root, *spawn.sys_path], base_path)
    runtime.oom_on_memory_error = spawn.isolation.oom_on_memory_error
    os.environ.clear()
    os.environ.update(spawn.environ)
    tempfile.tempdir = None  # found again from this environment's TMPDIR
    os.chdir(spawn.task_root)
    sys.path[:] = [*spawn.sys_path, *base_path]
    sys.argv = ["/var/runtime/bootstrap"]
    # Lambda's runtimes bring snapshot-restore-py whether SnapStart applies or not: code that
    # registers hooks imports everywhere; only a snapshot runs them (worker/snapshot.py).
    snaphooks.install()
    runtime.main(control_in, control_out, spawn.handler)
