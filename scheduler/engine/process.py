"""An environment's process: its pid and pidfd, the signals sent to it, and its exit.

The zygote forks the process and reaps it, so its exit status arrives from the zygote; a pidfd
(where the kernel has them) makes every signal reach this process and never a later one that
reused the pid. Decoding a wait status into Lambda's words is ``logs.describe_exit``.
The process leads its own process group — the zygote's child calls setsid — so
what a handler forks is signalled with it: frozen and thawed together, and killed with it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable


class Process:
    __slots__ = ("exit_status", "pid", "pidfd")

    def __init__(self) -> None:
        self.pid = 0
        self.pidfd = -1
        self.exit_status: int | None = None  # set once the zygote has reaped it

    def spawned(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.pidfd = pidfd

    def signal(self, sig: int) -> None:
        """The process itself (through its pidfd) and then its group."""
        if self.pid <= 0 or self.exit_status is not None:
            return
        try:
            if self.pidfd >= 0:
                signal.pidfd_send_signal(self.pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except OSError:
            pass
        self.signal_group(sig)

    def signal_group(self, sig: int) -> None:
        """One syscall for the whole group: the hot path's freeze and thaw."""
        if self.pid <= 0:
            return
        try:
            os.killpg(self.pid, sig)
        except OSError:
            pass

    def exited(self, status: int) -> None:
        """Reaped. Whatever the handler forked dies now too: the group id cannot be reused
        while any member lives, so this never hits a stranger."""
        self.exit_status = status
        self.signal_group(signal.SIGKILL)

    def watch_exit(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[int], None]) -> None:
        """When nobody will report the exit (the zygote is gone), wait for it on the pidfd."""
        pidfd = self.pidfd
        if pidfd < 0:
            on_exit(signal.SIGKILL)
            return

        def readable() -> None:
            loop.remove_reader(pidfd)
            on_exit(signal.SIGKILL)

        loop.add_reader(pidfd, readable)

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

