"""A SnapStart snapshot: a process that ran a version's Init once and forks its environments.

    runtime's zygote ──fork──► snapshot (Init, before-snapshot hooks, Ready) ──serves on its socket──┐
    scheduler ──Spawn(start=restore) + 3 fds──► snapshot ──fork──► environment                  ◄──┘
    scheduler ──writes the pid into its cgroup, then Restore──► environment
                  (after-restore hooks, Ready) ──► invocations as usual

Lambda restores a Firecracker snapshot of the initialised microVM; here a fork of the
initialised process stands in for it: the handler module's state (imports, clients, module
globals) is the snapshot's, copy-on-write, in every environment. The snapshot process entered
its isolation (cgroup, mount namespace, uid) when it was forked, and its forks inherit that
view; the scheduler moves each fork into a cgroup of its own before it runs any code.

Runs inside environments, on the function's interpreter: Python 3.9 syntax only.
"""

from __future__ import annotations

import gc
import os
import random
import socket
import sys
import tempfile
import traceback
from typing import NoReturn

import msgspec

from ..engine import protocol
from ..engine.isolation.child import enter_environment
from ..engine.protocol import Restore, Spawn, SpawnFailed
from . import bootstrap, logsetup, runtime, snaphooks
from .zygote import Zygote

_restore_decoder = msgspec.msgpack.Decoder(Restore)


class RestoreServer(Zygote):
    """The snapshot's fork server: the zygote's loop, with restored environments as children."""

    def __init__(self, sock: socket.socket, base_path: list[str], handler: runtime.Handler) -> None:
        super().__init__(sock, base_path)
        self.handler = handler

    def spawn(self, spawn: Spawn, fds: list[int]) -> None:
        if len(fds) != 3:
            self.send(SpawnFailed(spawn.env_id, f"expected 3 file descriptors, got {len(fds)}"))
            return
        # No view to plan: the forks share the snapshot's (see the module's docstring).
        super().spawn(protocol.Spawn(spawn.env_id, spawn.handler, spawn.task_root, [], spawn.environ), fds)

    def _child(self, spawn: Spawn, fds: list[int]) -> None:
        try:
            self.sock.close()
            self.poller.close()
            for pidfd in self.children.values():
                os.close(pidfd)
            _become_restored(spawn, fds, self.pid, self.handler)
        except BaseException:  # noqa: BLE001 - nothing may return into the server's loop
            traceback.print_exc()
        finally:
            os._exit(127)


def _read_restore(fd: int) -> None:
    """Block until the scheduler's Restore frame: it comes once this process is in its cgroup."""
    data = b""
    while len(data) < protocol.HEADER:
        chunk = os.read(fd, protocol.HEADER - len(data))
        if not chunk:
            os._exit(0)  # the scheduler gave up on this environment
        data += chunk
    size = int.from_bytes(data, "big")
    body = b""
    while len(body) < size:
        chunk = os.read(fd, size - len(body))
        if not chunk:
            os._exit(0)
        body += chunk
    _restore_decoder.decode(body)


def _become_restored(spawn: Spawn, fds: list[int], snapshot_pid: int, handler: runtime.Handler) -> NoReturn:
    control_in, control_out, log_fd = fds
    os.setsid()
    bootstrap.die_with_parent(snapshot_pid)
    bootstrap._reset_signals()
    bootstrap._wire_fds(log_fd)
    bootstrap._close_inherited([0, 1, 2, control_in, control_out])
    runtime.attach(control_in, control_out)
    _read_restore(control_in)
    # The heap stays frozen (gc.freeze in the snapshot): the collector leaves the snapshot's
    # objects alone, so their pages stay shared with the snapshot and the other forks.
    os.environ.clear()
    os.environ.update(spawn.environ)
    tempfile.tempdir = None  # found again from this environment's TMPDIR
    # Lambda's Python runtime reseeds random after a restore: every fork would otherwise draw
    # the snapshot's sequence.
    random.seed()
    runtime.restored(snaphooks.run_after_restore)
    runtime.serve(handler)


def become_snapshot(spawn: Spawn, fds: list[int], zygote_pid: int, base_path: list[str]) -> NoReturn:
    """In a fork of the runtime's zygote: the environment's set-up, Init with the before-snapshot
    hooks, Ready, then serve forks on the fourth fd until the scheduler closes it."""
    control_in, control_out, log_fd, sock_fd = fds
    os.setsid()
    bootstrap.die_with_parent(zygote_pid)
    bootstrap._reset_signals()
    bootstrap._wire_fds(log_fd)
    bootstrap._close_inherited([0, 1, 2, control_in, control_out, sock_fd])
    enter_environment(
        spawn.isolation, zygote_pid, bootstrap.die_with_parent, [spawn.task_root, *spawn.sys_path], base_path
    )
    runtime.oom_on_memory_error = spawn.isolation.oom_on_memory_error
    os.environ.clear()
    os.environ.update(spawn.environ)
    tempfile.tempdir = None
    os.chdir(spawn.task_root)
    sys.path[:] = [*spawn.sys_path, *base_path]
    sys.argv = ["/var/runtime/bootstrap"]
    runtime.attach(control_in, control_out)
    logsetup.install()
    snaphooks.install()
    handler = runtime._init(spawn.handler, snaphooks.run_before_snapshot)
    logsetup.flush()
    gc.collect()
    gc.freeze()  # keep the initialised heap shared with every fork
    server = RestoreServer(socket.socket(fileno=sock_fd), [*spawn.sys_path, *base_path], handler)
    try:
        server.serve()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        server.kill_all()
    os._exit(0)
