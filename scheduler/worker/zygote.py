"""The zygote: a small, single-threaded process that forks execution environments.

Started once by the scheduler (``python -m scheduler.worker.zygote FD [PRELOAD...]``), it
imports the worker runtime and any preload modules, freezes its heap, then waits on a
SOCK_SEQPACKET socket::

    scheduler ──Spawn + 3 fds──► zygote ──fork──► environment (bootstrap → runtime.main)
    scheduler ◄──Spawned + pidfd── zygote
    scheduler ◄──Exited(pid, status)── zygote   (on SIGCHLD; the zygote reaps its children)

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

from ..protocol import Exited, Hello, Spawn, Spawned, SpawnFailed
from . import bootstrap

_MAX_MESSAGE = 1 << 18
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Spawn)


class Zygote:
    def __init__(self, sock: socket.socket, base_path: list[str]) -> None:
        self.sock = sock
        self.base_path = base_path
        self.children: set[int] = set()
        self.pid = os.getpid()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def send(self, msg: msgspec.Struct, fds: list[int] | None = None) -> None:
        data = _encoder.encode(msg)
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.send(data)

    def spawn(self, spawn: Spawn, fds: list[int]) -> None:
        if len(fds) != 3:
            self.send(SpawnFailed(spawn.env_id, f"expected 3 file descriptors, got {len(fds)}"))
            return
        try:
            pid = os.fork()
        except OSError as exc:
            self.send(SpawnFailed(spawn.env_id, f"fork failed: {exc}"))
            return
        if pid == 0:
            self._child(spawn, fds)
        pidfd = -1
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pass
        self.children.add(pid)
        self.send(Spawned(spawn.env_id, pid, pidfd >= 0), [pidfd] if pidfd >= 0 else None)
        if pidfd >= 0:
            os.close(pidfd)

    def _child(self, spawn: Spawn, fds: list[int]) -> None:
        try:
            self.sock.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            bootstrap.become_environment(spawn, fds, self.pid, self.base_path)
        except BaseException:  # noqa: BLE001 - nothing may return into the zygote's loop
            traceback.print_exc()
        finally:
            os._exit(127)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.send(Exited(pid, status))

    def kill_all(self) -> None:
        for pid in list(self.children):
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.children.clear()

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.send(Hello(self.pid))
        while True:
            try:
                readable, _, _ = select.select([self.sock, self.wake_r], [], [])
            except InterruptedError:
                continue
            if self.wake_r in readable:
                self._drain_wakeups()
                self.reap()
            if self.sock in readable and not self._receive():
                return

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _receive(self) -> bool:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_MESSAGE, 8)
        except InterruptedError:
            return True
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return True
            return False
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


def main(argv: list[str]) -> None:
    sock_fd = int(argv[0])
    parent = os.getppid()
    bootstrap.die_with_parent(parent)
    # A terminal's Ctrl-C is the scheduler's to handle; SIGTERM means stop like EOF does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    startup_dir = os.getcwd()
    for module in argv[1:]:
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
