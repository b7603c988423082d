"""SnapStart on the scheduler's side: one version's snapshot process and the fork server it is.

    publish (ApplyOn=PublishedVersions) ─► Snapshot.take(): the runtime's zygote forks the
        snapshot (Init + before-snapshot hooks) ─► Ready: the version is Active, and its pool
        forks every environment from the snapshot (SnapshotClient) instead of the zygote
                                             ─► InitFailed / exit / timeout: the version is Failed

The worker's half is ``scheduler.worker.snapshot``. The snapshot is an Environment of its own
(pipes, exit, Init deadline), owned here, never in its pool's: it serves no invocation.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import AHEAD_INIT_LIMIT_S
from ..errors import ZygoteError
from . import envvars, logs
from .environment import Died, EnvEvent, Environment, EnvState
from .logs import LogBuffer
from .protocol import START_RESTORE, START_SNAPSHOT, InitFailed, Ready, Spawn
from .stops import StopReason
from .zygote import ZygoteClient

if TYPE_CHECKING:
    from .pool import Pool

log = logging.getLogger("lambda_scheduler.snapstart")



class SnapshotState(enum.Enum):
    """A version's State while SnapStart applies to it, as Lambda reports it."""

    PENDING = "Pending"
    ACTIVE = "Active"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class SnapshotView:
    """What the API reports of a snapshot (FunctionStatus.snapshot)."""

    state: SnapshotState
    reason_code: str | None
    reason: str | None


class SnapshotClient(ZygoteClient):
    """The fork server a snapshot process becomes once Init is done. It is not started here:
    its socket is handed over (``adopt``); a snapshot that is gone is not replaced."""

    def __init__(self, python: str) -> None:
        super().__init__(python)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def adopt(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._sock = sock
        self._hello = loop.create_future()
        # Failed when the snapshot exits before serving: its failure is reported by Snapshot.
        self._hello.add_done_callback(lambda f: f.cancelled() or f.exception())
        loop.add_reader(sock.fileno(), self._on_readable)

    async def start(self, timeout: float = 30.0) -> None:
        raise ZygoteError("the SnapStart snapshot of this version is gone")

    async def ensure_running(self) -> None:
        await asyncio.shield(self.ready)  # raises the snapshot's failure
        if self._sock is None or self._hello is None:
            raise ZygoteError("the SnapStart snapshot of this version is gone")
        await asyncio.shield(self._hello)


class Snapshot:
    """One published version's snapshot. ``state`` and ``reason`` are what the API reports."""

    def __init__(self, pool: Pool, runtime_zygote: ZygoteClient) -> None:
        self.pool = pool
        self.runtime_zygote = runtime_zygote
        self.client = SnapshotClient(runtime_zygote.python)
        self.state = SnapshotState.PENDING
        self.reason_code: str | None = None
        self.reason: str | None = None
        self.env: Environment | None = None
        self.closing = False  # the version was deleted: the snapshot's exit is expected
        self.init_log = LogBuffer(pool.ctx.settings.max_log_bytes)
        pool.zygote = self.client
        pool.spawn_kind = START_RESTORE

    def view(self) -> SnapshotView:
        return SnapshotView(self.state, self.reason_code, self.reason)

    async def take(self) -> None:
        """Run Init once in the snapshot process; the version is Active or Failed after."""
        try:
            outcome = await self._start()
        except Exception as exc:  # noqa: BLE001 - whatever stopped it, the version failed
            self._failed("InternalError", str(exc))
            return
        if type(outcome) is Ready:
            env = self.env
            if env is not None and len(self.init_log):  # Init's output: the snapshot's own log
                self.pool.ctx.observer.environment_output(self.pool.config.name, env, self.init_log.text().encode())
            self.state = SnapshotState.ACTIVE
            self.client.ready.set_result(None)
            log.info(
                "%s:%s: SnapStart snapshot ready (pid %d)",
                self.pool.config.name,
                self.pool.version,
                self.env.pid if self.env else 0,
            )
            return
        if type(outcome) is InitFailed:
            self._failed("FunctionError", f"Init failed: {outcome.error_type}")
        elif isinstance(outcome, Died):
            self._failed("FunctionError", f"Init did not finish: {logs.describe_exit(outcome.status)}")
        else:
            self._failed("FunctionError", "Init did not finish: timed out")

    async def _start(self) -> object:
        pool, ctx = self.pool, self.pool.ctx
        zygote = self.runtime_zygote
        if not zygote.alive:
            await zygote.ensure_running()
        await ctx.isolation.prepare(pool.config)
        env = Environment(self, False, logs.log_stream_name(pool.version), ctx.deadlines)
        self.env = env
        resources = ctx.isolation.allocate(pool.config, pool.base_path)
        env.resources = resources
        environ = envvars.environment_for(
            envvars.base_environment(pool.config, ctx.settings, pool.version), env.log_stream, False
        )
        environ.update(resources.environ)
        environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
        request = Spawn(
            0,
            pool.config.handler,
            str(pool.config.task_root),
            envvars.code_path(pool.config),
            environ,
            resources.spec,
            START_SNAPSHOT,
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            waiter = env.start(
                zygote,
                request,
                self.init_log,
                max(AHEAD_INIT_LIMIT_S, pool.config.timeout_s),
                (theirs.fileno(),),
            )
        finally:
            theirs.close()
        self.client.adopt(ours)
        outcome = await waiter
        if type(outcome) is Ready:
            resources.on_ready()
        return outcome

    def _failed(self, code: str, reason: str) -> None:
        self.state = SnapshotState.FAILED
        self.reason_code, self.reason = code, reason
        log.warning(
            "%s:%s: SnapStart snapshot failed: %s\n%s",
            self.pool.config.name,
            self.pool.version,
            reason,
            self.init_log.text(),
        )
        if not self.client.ready.done():
            self.client.ready.set_exception(ZygoteError(f"the SnapStart snapshot failed: {reason}"))
            self.client.ready.exception()  # retrieved: nobody may ever invoke this version
        if self.env is not None:
            self.env.kill(StopReason.INIT_ERROR)

    async def close(self) -> None:
        """The version is deleted: once its environments (the snapshot's children) have all
        exited, close the fork server's socket, and the snapshot process exits."""
        self.closing = True
        await self.pool.wait_drained()
        await self.client.stop()
        if self.env is not None and self.env.alive:
            self.env.kill(StopReason.SHUTDOWN)
            await self.env.wait_exited()

    # --- EnvironmentOwner -------------------------------------------------------------------

    def on_environment_event(self, event: EnvEvent) -> None:
        if event.new is EnvState.DEAD:
            if event.env.resources is not None:
                event.env.resources.release()
            if self.state is SnapshotState.ACTIVE and not self.closing:
                log.warning(
                    "%s:%s: the SnapStart snapshot exited (%s)",
                    self.pool.config.name,
                    self.pool.version,
                    event.reason.value,
                )

    def on_output(self, env: Environment, data: bytes) -> None:
        log.debug("snapshot %d: %s", env.pid, data.decode(errors="replace").rstrip())
