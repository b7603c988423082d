"""Helpers for tests that check which processes exist, without sleeping on races."""

from __future__ import annotations

import os
import select
import time

ZYGOTE_MARK = b"scheduler.worker.zygote"


def zygote_family(owner: int | None = None) -> set[int]:
    """Every process forked from a zygote (the zygotes and all environments) — of the
    scheduler in process ``owner`` (default: this one), whose pid is in their command line."""
    # argv is NUL-separated and the zygote's socket fd sits between the module and --owner,
    # so the two are matched as separate arguments.
    owner_arg = f"--owner={owner or os.getpid()}".encode()
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        args = cmdline.split(b"\0")
        if ZYGOTE_MARK in args and owner_arg in args and state != b"Z":
            pids.add(int(entry))
    return pids


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def wait_gone(pids: set[int], timeout: float = 5.0) -> set[int]:
    """Wait (on pidfds, not by sleeping) until none of ``pids`` runs; returns the survivors."""
    deadline = time.monotonic() + timeout
    fds = {}
    for pid in pids:
        try:
            fds[pid] = os.pidfd_open(pid)
        except OSError:
            pass
    try:
        pending = {pid for pid in fds if alive(pid)}
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fds[p] for p in pending], [], [], left)
            done = {p for p in pending if fds[p] in ready}
            pending -= done
            pending = {p for p in pending if alive(p)}
        return {pid for pid in pids if alive(pid)}
    finally:
        for fd in fds.values():
            os.close(fd)


def cgroup_leftovers(owner: int | None = None) -> list[str]:
    """cgroup directories of the schedulers in process ``owner`` (default: this one). Other
    test runs create and remove cgroups meanwhile: a directory vanishing mid-walk is fine."""
    prefix = f"lambda-scheduler-{owner or os.getpid()}-"
    found: list[str] = []
    for top, dirs, _files in os.walk("/sys/fs/cgroup", onerror=lambda _: None):
        for name in dirs:
            if name.startswith(prefix):
                found.append(os.path.join(top, name))
        dirs[:] = [d for d in dirs if not d.startswith("lambda-scheduler-")]
    return found
