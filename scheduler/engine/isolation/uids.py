"""Host-wide leases on sandbox uids: two servers on one host never run functions as one uid.

    Isolation.start   ─► UidLeases.open      pick the lock directory
    Starter.start ─► Isolation.prepare ─► UidLeases.lease(function)   (once per function)
    Isolation.stop    ─► UidLeases.close     every lease released

A lease is an exclusive ``flock`` on ``<dir>/<uid>.lock``, held through a descriptor of the
scheduler process (close-on-exec, so the zygote never holds one): the kernel drops it when
the process dies, however it dies, so a killed server's uids come free by themselves. Before
a uid is handed out, whatever still runs as it — a killed server's stragglers, such as a
process a handler forked that outlived its environment — is killed; a uid that belongs to an
account of the password database, or whose processes will not die, is skipped.

The lock file says how its last holder let go: it holds the holder's pid while leased, and
``clean`` once released by a server whose environments were all killed through their cgroups.
Only a uid last released that way is handed out without looking through /proc (a few ms on a
busy host) — a uid never leased before, or left by a server that died, is always looked at.

Lock files are never deleted: unlinking a lock file while another server is about to lock
it would let two servers each hold a lock on a different file of the same name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import pwd
import select
import signal
import stat
import threading
import time
from pathlib import Path

log = logging.getLogger("lambda_scheduler.isolation")

LOCK_DIRS = ("/run/lambda-scheduler/uids", "/var/lib/lambda-scheduler/uids", "/var/tmp/lambda-scheduler-uids")
SPAN = 100_000  # uids from the base: the range SchedulerConfig leaves room for
_KILL_WAIT_S = 2.0
_CLEAN = b"clean\n"
# How long one look through /proc answers for every uid: a process can only start as a free
# uid at the hands of whoever leases it, so a recent look is as good as a new one.
_SNAPSHOT_S = 2.0


class UidLeaseError(RuntimeError):
    pass


def lock_directory(candidates: tuple[str, ...] = LOCK_DIRS) -> Path:
    """The first candidate that is (or can be made) a directory of ours, 0700, writable.
    Every server on the host goes down the same list, so they all meet in the same one."""
    for candidate in candidates:
        try:
            os.makedirs(candidate, mode=0o700, exist_ok=True)
            st = os.lstat(candidate)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                continue  # someone else's (or a link): not a place to trust
            if stat.S_IMODE(st.st_mode) != 0o700:
                os.chmod(candidate, 0o700)
            if os.access(candidate, os.W_OK):
                return Path(candidate)
        except OSError:
            continue
    raise UidLeaseError(f"no usable directory for uid leases among {', '.join(candidates)}")


def processes_by_uid() -> dict[int, list[int]]:
    """uid -> pids of the live (not zombie) processes with it as their real, effective, saved or
    file-system uid. (The owner of /proc/PID says nothing: a process that changed uid shows as
    root.)"""
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{entry.name}/status", "rb") as f:
            for line in f:
                if line.startswith(b"State:") and line.split()[1] == b"Z":
                    break
                if line.startswith(b"Uid:"):
                    for uid in set(map(int, line.split()[1:5])):
                        found.setdefault(uid, []).append(int(entry.name))
                    break
    return found


def processes_of(uid: int) -> list[int]:
    return processes_by_uid().get(uid, [])


def _kill_all(pids: list[int], timeout: float) -> bool:
    """SIGKILL ``pids``; True once every one of them is gone (waited for on pidfds)."""
    fds = []
    for pid in pids:
        with contextlib.suppress(OSError):
            fds.append(os.pidfd_open(pid))
    try:
        for fd in fds:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        pending = list(fds)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select(pending, [], [], left)
            pending = [fd for fd in pending if fd not in ready]
        return True
    finally:
        for fd in fds:
            os.close(fd)


class UidLeases:
    """This server's leases: one uid per function, held until :meth:`close`."""

    def __init__(self, base: int, span: int = SPAN, directory: Path | None = None) -> None:
        self.base = base
        self.span = span
        self.directory = directory
        self._by_function: dict[str, int] = {}
        self._fds: dict[int, int] = {}  # uid -> the descriptor holding its lock
        self._lock = threading.Lock()  # leases are taken in threads (the /proc scan is slow)
        self._accounts = {entry.pw_uid for entry in pwd.getpwall()}  # read once: ≈ 0.2 ms a look-up
        self._snapshot: tuple[float, dict[int, list[int]]] = (-_SNAPSHOT_S, {})

    def open(self) -> None:
        if self.directory is None:
            self.directory = lock_directory()

    def get(self, function: str) -> int | None:
        return self._by_function.get(function)

    def held(self) -> dict[str, int]:
        return dict(self._by_function)

    def lease(self, function: str) -> int:
        """``function``'s uid: the one it already has, else the lowest free one from the base."""
        with self._lock:
            uid = self._by_function.get(function)
            if uid is not None:
                return uid
            for uid in range(self.base, self.base + self.span):
                if uid not in self._fds and self._take(uid):
                    self._by_function[function] = uid
                    return uid
        raise UidLeaseError(f"no free uid in {self.base}..{self.base + self.span - 1} for function {function}")

    def _take(self, uid: int) -> bool:
        assert self.directory is not None, "open() first"
        path = self.directory / f"{uid}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # another server's, now
            raise
        if uid in self._accounts or (os.pread(fd, 16, 0) != _CLEAN and not self._clear(uid)):
            os.close(fd)  # unlocks
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for whoever wonders whose lock it is
        self._fds[uid] = fd
        return True

    def _clear(self, uid: int) -> bool:
        taken, running = self._snapshot
        if time.monotonic() - taken > _SNAPSHOT_S:
            self._snapshot = taken, running = time.monotonic(), processes_by_uid()
        leftovers = running.get(uid)
        if not leftovers:
            return True
        log.warning("uid %d: killing %d processes left by a server that is gone: %s", uid, len(leftovers), leftovers)
        self._snapshot = (-_SNAPSHOT_S, {})  # stale now
        if _kill_all(leftovers, _KILL_WAIT_S) and not processes_of(uid):
            return True
        log.warning("uid %d: processes of an earlier holder will not die; skipping the uid", uid)
        return False

    def close(self, clean: bool = False) -> None:
        """Release every lease: only once no environment of this server runs any more.
        ``clean``: nothing of ours can still run as these uids (cgroups killed it all)."""
        with self._lock:
            for fd in self._fds.values():
                if clean:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, 0)
                        os.pwrite(fd, _CLEAN, 0)
                os.close(fd)
            self._fds.clear()
            self._by_function.clear()
