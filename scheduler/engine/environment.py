"""One execution environment, seen from the scheduler: a handle on a forked worker process.

    STARTING ──Ready──► IDLE|FROZEN ⇄ BUSY ──► STOPPING ──exit──► DEAD
        │                      │         │         ▲
        └─init failed/timeout──┴─────────┴─timeout, crash, protocol error (SIGKILL)

An idle environment is FROZEN (SIGSTOP to its process group) when freezing is on — at once,
or once it has stayed idle for the freeze delay — and continued (SIGCONT) when it is given its
next invocation or shut down.

All of an environment's state lives here, and every state change goes through ``_set_state``.
Leaving service is reported to the owner as one :class:`EnvEvent` (→ STOPPING, then → DEAD),
carrying the :class:`~scheduler.engine.stops.StopReason` set by whoever ended it first.
What remains here is the state machine and the one call in flight (its waiter and deadline).
The pipes and their reading are :mod:`.channel`'s, the pid, signals and exit :mod:`.process`'s.
Nothing polls: frames and output arrive through event-loop readers, the deadline is the
scheduler's one deadline timer (:mod:`.deadlines`) that SIGKILLs the process, and the exit
status arrives from the zygote, which reaps it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import msgspec

from ..errors import SpawnError
from . import protocol
from .channel import DRAIN_READS, Channel
from .deadlines import Deadlines
from .logs import LogBuffer, describe_exit
from .process import Process
from .protocol import START_RESTORE, FunctionError, InitFailed, OutOfMemory, Ready, Response, Restore, Spawn
from .stops import StopReason

if TYPE_CHECKING:
    from .isolation.manager import EnvResources
    from .zygote import ZygoteClient

log = logging.getLogger("lambda_scheduler.environment")

_encoder = msgspec.msgpack.Encoder()


class EnvState(str, enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    FROZEN = "frozen"  # idle and stopped (SIGSTOP): its threads make no progress
    BUSY = "busy"
    STOPPING = "stopping"
    DEAD = "dead"


_PARKED = (EnvState.IDLE, EnvState.FROZEN)
_TRANSITIONS: dict[EnvState, frozenset[EnvState]] = {
    EnvState.STARTING: frozenset({EnvState.IDLE, EnvState.FROZEN, EnvState.BUSY, EnvState.STOPPING}),
    EnvState.IDLE: frozenset({EnvState.BUSY, EnvState.FROZEN, EnvState.STOPPING}),
    EnvState.FROZEN: frozenset({EnvState.BUSY, EnvState.STOPPING}),
    EnvState.BUSY: frozenset({EnvState.IDLE, EnvState.FROZEN, EnvState.STOPPING}),
    EnvState.STOPPING: frozenset({EnvState.DEAD}),
    EnvState.DEAD: frozenset(),
}


class Died:
    """The process exited (or was killed) before answering."""

    __slots__ = ("reason", "status")

    def __init__(self, status: int, reason: StopReason | None) -> None:
        self.status = status
        self.reason = reason


class TimedOut:
    __slots__ = ()


TIMED_OUT = TimedOut()

StartOutcome = Ready | InitFailed | Died | TimedOut
RunOutcome = Response | FunctionError | Died | TimedOut


@dataclass(frozen=True, slots=True)
class EnvEvent:
    """One state change, for the environment's owner. Only the changes that take it out of
    service (→ STOPPING, → DEAD) are reported: the hot-path ones (BUSY ⇄ IDLE, FROZEN) are
    made at the owner's request, and echoing them back would cost a call and an allocation
    per invocation for nothing."""

    env: Environment
    old: EnvState
    new: EnvState
    reason: StopReason
    detail: str = ""


class EnvironmentOwner(Protocol):
    def on_environment_event(self, event: EnvEvent) -> None: ...
    def on_output(self, env: Environment, data: bytes) -> None: ...


class Environment:
    __slots__ = (
        "_armed",
        "_channel",
        "_deadline",
        "_deadlines",
        "_exited",
        "_init_limit",
        "_loop",
        "_process",
        "_request_id",
        "_restoring",
        "_sink",
        "_waiter",
        "created_at",
        "idle_until",
        "invocations",
        "last_used",
        "log_stream",
        "max_rss_kb",
        "owner",
        "provisioned",
        "resources",
        "state",
        "stop_detail",
        "stop_reason",
    )

    def __init__(self, owner: EnvironmentOwner, provisioned: bool, log_stream: str, deadlines: Deadlines) -> None:
        self.owner = owner
        self.provisioned = provisioned
        self.log_stream = log_stream
        self.state = EnvState.STARTING
        self._loop = asyncio.get_running_loop()
        self.created_at = self.last_used = self._loop.time()
        # Loop time at which an idle on-demand environment is reaped (set by its pool's
        # keep-alive whenever it goes idle); never, until then.
        self.idle_until = math.inf
        self.invocations = 0
        self.max_rss_kb = 0
        self.stop_reason: StopReason | None = None  # set once, by whoever ends it first
        self.stop_detail = ""  # what a protocol error or an exit status said
        self._process = Process()
        self._channel = Channel(self._loop, self)
        self._waiter: asyncio.Future[StartOutcome] | asyncio.Future[RunOutcome] | None = None
        self._deadlines = deadlines  # the scheduler's one timer for every pending deadline
        self._armed = False  # a deadline of ours is watched
        self._request_id = ""
        self._sink: LogBuffer | None = None
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._deadline = 0.0  # perf_counter time of the pending Init or invocation deadline
        self._init_limit = 0.0  # seconds Init may take, counted from the fork
        self.resources: EnvResources | None = None  # its cgroup / TMPDIR / watchdog entry
        self._restoring = False  # forked from a snapshot: Restore once it is in its cgroup

    def __repr__(self) -> str:
        return f"<Environment pid={self.pid} {self.state.value}{' provisioned' if self.provisioned else ''}>"

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def exit_status(self) -> int | None:
        return self._process.exit_status

    @property
    def oom(self) -> bool:
        """Ended for going over its memory size."""
        return self.stop_reason is StopReason.OUT_OF_MEMORY

    # --- state ----------------------------------------------------------------------------

    def _set_state(self, new: EnvState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"environment {self.pid}: illegal transition {self.state.value} -> {new.value}")
        was, self.state = self.state, new
        if new is EnvState.STOPPING or new is EnvState.DEAD:
            reason = self.stop_reason or StopReason.CRASH
            self.owner.on_environment_event(EnvEvent(self, was, new, reason, self.stop_detail))

    def park(self, freeze: bool) -> None:
        """Between invocations: IDLE, or FROZEN (its whole process group stopped)."""
        self._sink = None
        self.last_used = self._loop.time()
        self._set_state(EnvState.IDLE)
        if freeze:
            self.freeze()

    def freeze(self) -> None:
        """Stop an idle environment: its background threads make no progress until thawed."""
        self._set_state(EnvState.FROZEN)
        self._process.signal_group(signal.SIGSTOP)

    @property
    def alive(self) -> bool:
        return self.state in (EnvState.STARTING, EnvState.IDLE, EnvState.FROZEN, EnvState.BUSY)

    # --- start and Init -------------------------------------------------------------------

    def start(
        self, zygote: ZygoteClient, request: Spawn, init_log: LogBuffer, timeout: float, extra_fds: tuple[int, ...] = ()
    ) -> asyncio.Future[StartOutcome]:
        """Fork the worker and run Init; resolves with Ready, InitFailed, Died or TIMED_OUT.
        ``extra_fds`` go to the child after the pipes (a snapshot's socket); the caller's."""
        child_ends = self._channel.open()
        self._restoring = request.start == START_RESTORE
        self._sink = init_log
        waiter: asyncio.Future[StartOutcome] = self._loop.create_future()
        self._waiter = waiter
        try:
            zygote.spawn(request, [*child_ends, *extra_fds], self)
        except Exception as exc:  # noqa: BLE001 - the zygote is gone: this start failed
            self.on_spawn_failed(str(exc))
        finally:
            for fd in child_ends:
                os.close(fd)
        # Until the zygote forks, the same limit bounds the wait for it; the Init limit itself
        # starts again at the fork (below): time queued behind other cold starts in our fork
        # server is not Init, and counting it made bursts of cold starts time out their Init.
        self._init_limit = timeout
        self._arm(time.perf_counter() + timeout)
        return waiter

    def on_spawned(self, pid: int, pidfd: int) -> None:
        """From the zygote: forked."""
        self._process.spawned(pid, pidfd)
        if self.state is EnvState.STARTING and self._armed:
            self._cancel_timer()
            self._arm(time.perf_counter() + self._init_limit)
        if self.resources is not None:
            self.resources.attach(pid, self)
        if self.stop_reason is not None:
            self._process.signal(signal.SIGKILL)
        elif self._restoring:
            self._restore()

    def _restore(self) -> None:
        """A fork of a snapshot cannot enter its own cgroup (the snapshot dropped the rights to
        it): it waits until moved there from here, and runs no code of the function before."""
        try:
            if self.resources is not None:
                self.resources.move_into_cgroup(self.pid)
        except OSError as exc:
            self.kill(StopReason.SPAWN_FAILED, f"could not move it into its cgroup: {exc}")
            return
        self._channel.send(protocol.frame(_encoder, Restore()))

    def over_limit(self, reason: StopReason, peak_kb: int = 0) -> None:
        """The process went over a limit that ends it (its memory size: the fallback
        watchdog, or the worker's own OutOfMemory frame). That is what ended it, whatever
        else was under way, so the reason replaces an earlier one."""
        if self.state is EnvState.DEAD:
            return
        self.max_rss_kb = max(self.max_rss_kb, peak_kb)
        self.stop_reason = reason
        self.kill(reason)

    def on_spawn_failed(self, message: str) -> None:
        """From the zygote (or its pipe): the fork did not happen."""
        self.stop_reason = self.stop_reason or StopReason.SPAWN_FAILED
        self.stop_detail = message
        self._resolve_exception(SpawnError(f"Could not start an execution environment: {message}"))
        self._finish(-1)

    # --- invoke ---------------------------------------------------------------------------

    def run(self, frame: protocol.Invoke, sink: LogBuffer, deadline: float) -> asyncio.Future[RunOutcome]:
        """Send one invocation; resolves with its reply, or Died / TIMED_OUT. ``deadline`` is
        perf_counter time; at that moment the process is killed and TIMED_OUT returned."""
        if self.state is EnvState.FROZEN:
            self._process.signal_group(signal.SIGCONT)
        self._set_state(EnvState.BUSY)
        self.invocations += 1
        self._request_id = frame.request_id
        self._sink = sink
        waiter: asyncio.Future[RunOutcome] = self._loop.create_future()
        self._waiter = waiter
        self._arm(deadline)
        self._channel.send(protocol.frame(_encoder, frame))
        return waiter

    # --- what the channel reads -----------------------------------------------------------

    def on_frame(self, msg: object) -> None:
        if type(msg) is OutOfMemory:
            self.over_limit(StopReason.OUT_OF_MEMORY, msg.max_rss_kb)
            return
        waiter = self._waiter
        if self.state is EnvState.BUSY and type(msg) in (Response, FunctionError):
            if msg.request_id != self._request_id:  # type: ignore[attr-defined]
                self.kill(StopReason.PROTOCOL_ERROR, f"reply for request {msg.request_id!r}")  # type: ignore[attr-defined]
                return
        elif not (self.state is EnvState.STARTING and type(msg) in (Ready, InitFailed)):
            self.kill(StopReason.PROTOCOL_ERROR, f"unexpected {type(msg).__name__} while {self.state.value}")
            return
        if type(msg) is InitFailed and self.stop_reason is None:
            # The runtime exits right after reporting a failed Init: its exit may be read
            # before the pool acts on this reply, and must not count as a crash.
            self.stop_reason = StopReason.INIT_ERROR
        if waiter is None or waiter.done():
            return
        self._cancel_timer()
        # The runtime flushes its output before it replies, so all of it is in the log pipe by
        # now; read it into this invocation's sink before the reply is handed on. The log
        # pipe's own reader is not enough: the loop may run it only after the caller resumed
        # (seen once in a CI run of tests/test_invoke.py), and the output then lands outside the
        # invocation it belongs to. The cost is one read, EAGAIN when nothing is left.
        self._channel.read_output(DRAIN_READS)
        self.max_rss_kb = getattr(msg, "max_rss_kb", self.max_rss_kb)
        self._waiter = None
        waiter.set_result(msg)  # type: ignore[arg-type]

    def on_channel_broken(self, reason: StopReason, detail: str) -> None:
        self.kill(reason, detail)

    def on_output(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink.append(data)
        else:
            self.owner.on_output(self, data)  # between invocations: the environment's own log

    # --- ending ---------------------------------------------------------------------------

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        self._armed = True
        self._deadlines.watch(self, deadline)

    @property
    def deadline(self) -> float:
        """The perf_counter time the pending Init or invocation is killed at."""
        return self._deadline

    def expire(self) -> None:
        """From the deadline watch: the pending Init or invocation ran out of time."""
        self._armed = False
        self.kill(StopReason.INIT_TIMEOUT if self.state is EnvState.STARTING else StopReason.TIMEOUT)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            self._channel.read_output(DRAIN_READS)  # what it printed before the deadline
            waiter.set_result(TIMED_OUT)

    def _cancel_timer(self) -> None:
        if self._armed:
            self._armed = False
            self._deadlines.unwatch(self)

    def kill(self, reason: StopReason, detail: str = "") -> None:
        """SIGKILL the environment. Its pending call, if any, resolves when the exit arrives."""
        if self.state is EnvState.DEAD:
            return
        if self.stop_reason is None or self.stop_reason is reason:
            self.stop_reason = reason
            self.stop_detail = self.stop_detail or detail
            log.debug("killing environment %d: %s %s", self.pid, reason.value, detail)
        if self.state is not EnvState.STOPPING:
            self._set_state(EnvState.STOPPING)
        self._process.signal(signal.SIGKILL)

    def terminate(self, reason: StopReason = StopReason.SHUTDOWN) -> None:
        """Start Lambda's Shutdown: leave service now and send SIGTERM."""
        if self.state in (EnvState.STOPPING, EnvState.DEAD):
            return
        self.stop_reason = self.stop_reason or reason
        frozen = self.state is EnvState.FROZEN
        self._set_state(EnvState.STOPPING)
        self._process.signal(signal.SIGTERM)
        if frozen:
            self._process.signal(signal.SIGCONT)  # thawed so that it can act on the SIGTERM

    async def shutdown(self, grace: float) -> None:
        """Lambda's Shutdown: SIGTERM, up to ``grace`` seconds, then SIGKILL."""
        if self.state is EnvState.DEAD:
            return
        self.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), grace)
        except TimeoutError:
            self._process.signal(signal.SIGKILL)
            await self._exited

    async def wait_exited(self) -> int:
        """The exit status, once the process is gone and its handle closed (shielded: a
        waiter that is cancelled does not cancel it for the others)."""
        return await asyncio.shield(self._exited)

    def on_exit(self, status: int) -> None:
        """From the zygote: the process is gone and reaped."""
        # The exit report and the worker's last frames travel on different fds, so the exit
        # can arrive first: whatever the worker wrote before dying is read before it counts.
        if self.state is not EnvState.DEAD:
            self._channel.read_frames(DRAIN_READS, False)
        if self.state is EnvState.DEAD:
            return
        if self.resources is not None and self.resources.oom_killed():
            self.stop_reason = StopReason.OUT_OF_MEMORY  # the kernel's verdict wins
        if self.stop_reason is StopReason.OUT_OF_MEMORY:
            peak = self.resources.peak_kb() if self.resources is not None else None
            self.max_rss_kb = max(self.max_rss_kb, peak or 0)
        elif self.stop_reason is None or self.stop_reason is StopReason.CONTROL_CLOSED:
            # Nobody ended it: it exited on its own (closing its pipe first, or not).
            self.stop_reason = self.stop_reason or StopReason.CRASH
            self.stop_detail = describe_exit(status)
        self._channel.read_output(DRAIN_READS)
        self._finish(status)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Died(status, self.stop_reason))

    def on_zygote_lost(self) -> None:
        """The zygote died, so this process is being killed (parent-death signal). Nobody
        will report its exit: wait for it on the pidfd ourselves."""
        self.stop_reason = self.stop_reason or StopReason.ZYGOTE_LOST
        self._process.signal(signal.SIGKILL)
        self._process.watch_exit(self._loop, self.on_exit)

    def _resolve_exception(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self, status: int) -> None:
        self._process.exited(status)
        if self.state is not EnvState.DEAD and self.state is not EnvState.STOPPING:
            self._set_state(EnvState.STOPPING)
        self._cancel_timer()
        self._sink = None
        self._channel.close()
        self._process.close()
        if self.state is not EnvState.DEAD:
            self._set_state(EnvState.DEAD)  # its owner forgets it: every fd is closed by now
        if not self._exited.done():
            self._exited.set_result(status)
