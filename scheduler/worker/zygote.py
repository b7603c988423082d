"""The zygote: a small, single-threaded process that forks execution environments.

Started once by the scheduler (``python -m scheduler.worker.zygote FD [PRELOAD...]``), it
imports the worker runtime and any preload modules, freezes its heap, then waits on a
SOCK_SEQPACKET socket::

    scheduler ──Spawn + 3 fds──► zygote ──fork──► environment (bootstrap → runtime.main)
    scheduler ◄──Spawned + pidfd── zygote
    scheduler ◄──Exited(pid, status)── zygote   (a pidfd per child; the zygote reaps them)

Forking from here, not from the scheduler, keeps fork cheap (a small heap, no threads, no
event loop) and safe. The zygote dies with the scheduler (PR_SET_PDEATHSIG) and its children
die with it, so no environment outlives the scheduler.
"""

from __future__ import annotations

import errno
import gc
import importlib
import os
import select
import signal
import socket
import sys
import traceback

import msgspec

from ..engine.isolation import child
from ..engine.protocol import START_SNAPSHOT, Exited, Hello, Spawn, Spawned, SpawnFailed
from . import bootstrap

_MAX_MESSAGE = 1 << 18
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Spawn)


class Zygote:
    """Forks environments and reports their exits.

    Exits are observed through one pidfd per child (readable once the child has exited), not
    SIGCHLD: environments are stopped and continued between invocations (freeze/thaw), and a
    SIGCHLD for each of those would wake this process for nothing.
    """

    def __init__(self, sock: socket.socket, base_path: list[str]) -> None:
        self.sock = sock
        self.base_path = base_path
        self.children: dict[int, int] = {}  # pid -> pidfd
        self.pid = os.getpid()
        self.poller = select.epoll()
        self.poller.register(sock.fileno(), select.EPOLLIN)
        self.by_fd: dict[int, int] = {}  # pidfd -> pid

    def send(self, msg: msgspec.Struct, fds: list[int] | None = None) -> None:
        data = _encoder.encode(msg)
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.send(data)

    def spawn(self, spawn: Spawn, fds: list[int]) -> None:
        expected = 4 if spawn.start == START_SNAPSHOT else 3  # a snapshot's: its socket too
        if len(fds) != expected:
            self.send(SpawnFailed(spawn.env_id, f"expected {expected} file descriptors, got {len(fds)}"))
            return
        if spawn.isolation.tmp_mb > 0:
            # Here, not in the child: kept for the next fork while the layout stays the same.
            child.view_planner(self.base_path, child.layout_of(spawn.isolation))
        try:
            pid = os.fork()
        except OSError as exc:
            self.send(SpawnFailed(spawn.env_id, f"fork failed: {exc}"))
            return
        if pid == 0:
            self._child(spawn, fds)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = pidfd
        self.by_fd[pidfd] = pid
        self.poller.register(pidfd, select.EPOLLIN)
        self.send(Spawned(spawn.env_id, pid), [pidfd])

    def _child(self, spawn: Spawn, fds: list[int]) -> None:
        try:
            self.sock.close()
            self.poller.close()
            for pidfd in self.children.values():
                os.close(pidfd)
            if spawn.start == START_SNAPSHOT:
                from . import snapshot  # only in the child: the zygote's heap stays as it was

                snapshot.become_snapshot(spawn, fds, self.pid, self.base_path)
            bootstrap.become_environment(spawn, fds, self.pid, self.base_path)
        except BaseException:  # noqa: BLE001 - nothing may return into the zygote's loop
            traceback.print_exc()
        finally:
            os._exit(127)

    def reap(self, pidfd: int) -> None:
        pid = self.by_fd.pop(pidfd, None)
        if pid is None:
            return
        self.poller.unregister(pidfd)
        try:
            result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        except ChildProcessError:
            result = None
        os.close(pidfd)
        del self.children[pid]
        status = _wait_status(result)
        self.send(Exited(pid, status))

    def kill_all(self) -> None:
        for pid in list(self.children):
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for pid, pidfd in list(self.children.items()):
            try:
                os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
            except ChildProcessError:
                pass
            os.close(pidfd)
        self.children.clear()

    def serve(self) -> None:
        self.send(Hello(self.pid))
        sock_fd = self.sock.fileno()
        while True:
            try:
                events = self.poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == sock_fd:
                    if not self._receive():
                        return
                else:
                    self.reap(fd)

    def _receive(self) -> bool:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_MESSAGE, 8)
        except InterruptedError:
            return True
        except OSError as exc:
            return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)  # anything else: shut down
        if not data:
            return False  # the scheduler closed the socket: shut down
        try:
            spawn = _decoder.decode(data)
        except msgspec.DecodeError:
            for fd in fds:
                os.close(fd)
            return True
        try:
            self.spawn(spawn, fds)
        finally:
            for fd in fds:
                os.close(fd)
        return True


def _wait_status(result: os.waitid_result | None) -> int:
    """A waitid() result as the raw status word waitpid() would have given."""
    if result is None:
        return 0
    if result.si_code == os.CLD_EXITED:
        return (result.si_status & 0xFF) << 8
    return result.si_status & 0x7F  # killed or dumped: the signal number


def main(argv: list[str]) -> None:
    sock_fd = int(argv[0])
    parent = os.getppid()
    bootstrap.die_with_parent(parent)
    # A terminal's Ctrl-C is the scheduler's to handle; SIGTERM means stop like EOF does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    startup_dir = os.getcwd()
    preload = [arg for arg in argv[1:] if not arg.startswith("--owner=")]
    for module in ("scheduler.engine.isolation.child", *preload):
        importlib.import_module(module)
    base_path = [p for p in sys.path if p and p != startup_dir]
    gc.collect()
    gc.freeze()  # keep the heap's pages shared with every fork instead of touched by the GC
    zygote = Zygote(socket.socket(fileno=sock_fd), base_path)
    try:
        zygote.serve()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        zygote.kill_all()


if __name__ == "__main__":
    main(sys.argv[1:])
