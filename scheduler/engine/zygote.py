"""The scheduler's handle on the zygote process (see ``scheduler.worker.zygote``).

Spawn requests go out with the child's pipe ends attached; replies come back as callbacks on
the environment that asked (``on_spawned``, ``on_spawn_failed``, ``on_exit``), called
synchronously from the socket reader, so an exit can never be seen before its spawn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Protocol

import msgspec

from ..errors import ZygoteError
from .protocol import Exited, FromZygote, Hello, Spawn, Spawned, SpawnFailed

log = logging.getLogger("lambda_scheduler.zygote")

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
_MAX_MESSAGE = 1 << 16


class SpawnWatcher(Protocol):
    def on_spawned(self, pid: int, pidfd: int) -> None: ...
    def on_spawn_failed(self, message: str) -> None: ...
    def on_exit(self, status: int) -> None: ...
    def on_zygote_lost(self) -> None: ...


class ZygoteClient:
    def __init__(
        self, python: str = sys.executable, preload: tuple[str, ...] = (), path: tuple[str, ...] | None = None
    ) -> None:
        """``path``: what the zygote imports the worker from, first on its import path
        (default: the folder holding this package; another interpreter's: runtimes.py)."""
        self.python = python
        self._preload = preload
        self._own_path = path is None  # the server's own import path, as the server has it
        self._path = (_PACKAGE_PARENT,) if path is None else path
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(FromZygote)
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._hello: asyncio.Future[int] | None = None
        self._next_id = 0
        self._spawning: dict[int, SpawnWatcher] = {}
        self._running: dict[int, SpawnWatcher] = {}
        self._outbox: deque[tuple[bytes, list[int]]] = deque()
        self._restart: asyncio.Task[None] | None = None
        self._reaping: asyncio.Future[bool] | None = None
        self.pid = 0

    @property
    def alive(self) -> bool:
        return self._sock is not None and self._hello is not None and self._hello.done()

    async def start(self, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*self._path, env.get("PYTHONPATH")]))
        with theirs:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 - once per scheduler; fork+exec returns at once
                # --owner names this process in the command line, which every environment
                # inherits: a process listing tells whose environments are whose.
                [self.python, "-m", "scheduler.worker.zygote", str(theirs.fileno()), f"--owner={os.getpid()}", *self._preload],
                pass_fds=[theirs.fileno()],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                env=env,
                # `-m` puts the working directory first on the import path, before PYTHONPATH:
                # another interpreter's zygote starts in / so that only self._path can give it
                # the package. The server's own keeps the directory, where --preload may look.
                cwd=None if self._own_path else "/",
            )
        ours.setblocking(False)
        self._sock = ours
        self._hello = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        try:
            self.pid = await asyncio.wait_for(asyncio.shield(self._hello), timeout)
        except (TimeoutError, ZygoteError):
            await self.stop()
            raise ZygoteError("the zygote did not start; see its output above") from None
        log.debug("zygote %d ready", self.pid)

    def spawn(self, request: Spawn, fds: list[int], watcher: SpawnWatcher) -> None:
        """Ask for one environment. The caller keeps ownership of ``fds`` (close after)."""
        if self._sock is None:
            raise ZygoteError("the zygote is not running")
        self._next_id += 1
        request.env_id = self._next_id
        self._spawning[request.env_id] = watcher
        data = self._encoder.encode(request)
        if self._outbox:
            self._outbox.append((data, [os.dup(fd) for fd in fds]))
            return
        try:
            socket.send_fds(self._sock, [data], fds)
        except BlockingIOError:
            self._outbox.append((data, [os.dup(fd) for fd in fds]))
            asyncio.get_running_loop().add_writer(self._sock.fileno(), self._flush)

    def _flush(self) -> None:
        assert self._sock is not None
        while self._outbox:
            data, fds = self._outbox[0]
            try:
                socket.send_fds(self._sock, [data], fds)
            except BlockingIOError:
                return
            self._outbox.popleft()
            for fd in fds:
                os.close(fd)
        asyncio.get_running_loop().remove_writer(self._sock.fileno())

    def _on_readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self._sock, _MAX_MESSAGE, 4)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._lost()
                return
            try:
                msg = self._decoder.decode(data)
            except msgspec.DecodeError:
                log.error("undecodable message from the zygote; restarting it")
                for fd in fds:
                    os.close(fd)
                self._lost()
                return
            self._dispatch(msg, fds)

    def _dispatch(self, msg: object, fds: list[int]) -> None:
        match msg:
            case Spawned(env_id=env_id, pid=pid):
                watcher = self._spawning.pop(env_id, None)
                pidfd = fds[0] if fds else -1
                if watcher is None:
                    if pidfd >= 0:
                        os.close(pidfd)
                    return
                self._running[pid] = watcher
                watcher.on_spawned(pid, pidfd)
            case SpawnFailed(env_id=env_id, message=message):
                watcher = self._spawning.pop(env_id, None)
                if watcher is not None:
                    watcher.on_spawn_failed(message)
            case Exited(pid=pid, status=status):
                watcher = self._running.pop(pid, None)
                if watcher is not None:
                    watcher.on_exit(status)
            case Hello(pid=pid):
                if self._hello is not None and not self._hello.done():
                    self._hello.set_result(pid)

    def _lost(self) -> None:
        """The zygote is gone; so are its children (they die with it)."""
        self._close_socket()
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(ZygoteError("the zygote exited during start-up"))
        spawning, self._spawning = self._spawning, {}
        running, self._running = self._running, {}
        for watcher in spawning.values():
            watcher.on_spawn_failed("the zygote exited")
        for watcher in running.values():
            watcher.on_zygote_lost()
        if self._proc is not None:
            # Reap it in the background: a restart replaces self._proc.
            self._reaping = asyncio.ensure_future(_wait_exit(self._proc, 5.0))
            self._proc = None

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        if self._outbox:
            loop.remove_writer(sock.fileno())
        sock.close()
        while self._outbox:
            for fd in self._outbox.popleft()[1]:
                os.close(fd)

    async def ensure_running(self) -> None:
        """Restart the zygote if it died; concurrent callers share one restart."""
        if self._sock is not None:
            return
        if self._restart is None or self._restart.done():
            if self.pid:  # it ran before (a first start is no news)
                log.warning("the zygote is gone; starting a new one")
            self._restart = asyncio.ensure_future(self.start())
        await asyncio.shield(self._restart)

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the socket: the zygote kills what is left of its children, reaps them, exits."""
        self._close_socket()
        if self._reaping is not None:
            await self._reaping
        proc, self._proc = self._proc, None
        if proc is not None and not await _wait_exit(proc, timeout):
            proc.kill()
            await _wait_exit(proc, timeout)


async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for a child to exit — as an event on its pidfd, not by polling — and reap it."""
    if proc.poll() is not None:
        return True
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(proc.pid)
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        loop.remove_reader(pidfd)
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await asyncio.wait_for(exited, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    proc.wait()  # it has exited: this only reaps it
    return True
