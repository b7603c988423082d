"""The fallback for hosts without cgroup or namespace rights: same observable results, cruder
means.

- Memory: a watchdog reads each running environment's RSS from /proc and kills one that goes
  over its memory size; an address-space rlimit with headroom turns a sudden huge allocation
  into a MemoryError, which the runtime reports as out of memory before dying. Either way the
  caller sees ``Runtime.ExitError`` "signal: killed" and the REPORT says
  ``Runtime.OutOfMemory``.
- Ephemeral storage: a directory per environment, given as TMPDIR (``tempfile`` uses it),
  whose size is checked after each invocation; an environment over its quota is retired.
- Processes: RLIMIT_NPROC (per user, so: the user's current count plus the allowance).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")

# RLIMIT_AS must leave room for what Python maps but never touches (thread stacks, arenas).
ADDRESS_SPACE_HEADROOM = 1 << 30


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def tree_bytes(root: Path) -> int:
    """Bytes used by the files under ``root`` (allocated blocks, so sparse files count as what
    they really take)."""
    total = 0
    stack = [str(root)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


def user_task_count(uid: int) -> int:
    """Processes of ``uid`` now (what RLIMIT_NPROC counts against, roughly)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count


class TmpDirs:
    """One private directory per environment under a root made for this scheduler."""

    def __init__(self, parent: str | None) -> None:
        self.root: Path | None = None
        self._parent = parent
        self._n = 0

    def open(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="lambda-scheduler-tmp-", dir=self._parent))

    def new(self) -> Path:
        assert self.root is not None
        self._n += 1
        path = self.root / f"env-{self._n}"
        path.mkdir(mode=0o700)
        return path

    @staticmethod
    def remove(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


class MemoryWatchdog:
    """Checks the RSS of watched environments; calls ``over`` for one above its limit."""

    def __init__(self) -> None:
        self._watched: dict[int, tuple[int, Callable[[int], None]]] = {}

    def watch(self, pid: int, limit: int, over: Callable[[int], None]) -> None:
        self._watched[pid] = (limit, over)

    def unwatch(self, pid: int) -> None:
        self._watched.pop(pid, None)

    def check(self) -> None:
        for pid, (limit, over) in list(self._watched.items()):
            rss = rss_bytes(pid)
            if rss is not None and rss > limit:
                self._watched.pop(pid, None)
                over(rss)
