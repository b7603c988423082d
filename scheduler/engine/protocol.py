"""Wire formats: control frames between the scheduler and an environment, and zygote messages.

Control channel (one pipe each way per environment)::

    +---------------------------+-------------------------------------------+
    | length: 4 bytes, big end. | msgspec msgpack body (tagged, array-like) |
    +---------------------------+-------------------------------------------+

The scheduler sends :class:`Invoke`; the environment answers :class:`Ready` or
:class:`InitFailed` once after Init, then one :class:`Response` or :class:`FunctionError` per
invoke, carrying the request id it answers. Anything else — a bad length, a body that does not
decode, a reply for another request id — is a protocol error, and the environment is destroyed.

The handler's stdout/stderr never touch this channel: they go to a separate log pipe.

Zygote socket (AF_UNIX SOCK_SEQPACKET, one message per datagram, file descriptors attached with
SCM_RIGHTS): :class:`Spawn` → :class:`Spawned` (+ pidfd) | :class:`SpawnFailed`, and
:class:`Exited` whenever an environment process is reaped.
"""

from __future__ import annotations

# Optional / Union, not X | Y: this module runs inside environments too, on the function's
# runtime, and python3.9 evaluates neither the unions below nor msgspec's reading of the
# annotations with "|".
from typing import Any, Optional, Union

import msgspec

from ..errors import ProtocolError

# Sync payload limit each way plus room for the envelope.
MAX_PAYLOAD = 6 * 1024 * 1024
MAX_FRAME = MAX_PAYLOAD + 64 * 1024
HEADER = 4


# --- scheduler -> environment -------------------------------------------------------------


class Invoke(msgspec.Struct, tag="invoke", array_like=True):
    request_id: str
    payload: bytes
    deadline_ms: int  # epoch milliseconds, as Lambda's Lambda-Runtime-Deadline-Ms header
    invoked_arn: str
    client_context: Optional[str] = None  # JSON text, already base64-decoded
    cognito_identity: Optional[str] = None  # JSON text
    trace_id: Optional[str] = None
    tenant_id: Optional[str] = None


# --- environment -> scheduler -------------------------------------------------------------


class Ready(msgspec.Struct, tag="ready", array_like=True):
    max_rss_kb: int


class InitFailed(msgspec.Struct, tag="init_failed", array_like=True):
    error_type: str
    payload: bytes  # Lambda's error JSON


class Response(msgspec.Struct, tag="response", array_like=True):
    request_id: str
    payload: bytes
    duration_ns: int
    max_rss_kb: int


class FunctionError(msgspec.Struct, tag="error", array_like=True):
    request_id: str
    error_type: str
    payload: bytes  # Lambda's error JSON
    duration_ns: int
    max_rss_kb: int


class OutOfMemory(msgspec.Struct, tag="oom", array_like=True):
    """Sent just before the environment kills itself on hitting the fallback memory limit."""

    max_rss_kb: int


class Restore(msgspec.Struct, tag="restore", array_like=True):
    """To an environment forked from a snapshot, once the scheduler has put it in its cgroup:
    run the after-restore hooks, then answer Ready (or InitFailed)."""


ToEnvironment = Invoke
FromEnvironment = Union[Ready, InitFailed, Response, FunctionError, OutOfMemory]


# --- scheduler <-> zygote -----------------------------------------------------------------


class IsolationSpec(msgspec.Struct, omit_defaults=True):
    """What the child applies to itself before user code runs (scheduler.engine.isolation.child)."""

    cgroup_procs: list[str] = []  # cgroup.procs files to enter
    tmp_mb: int = 0  # > 0: a mount namespace: private /tmp, /var/tmp, /dev/shm and a private view (isolation.view)
    hidden: list[str] = []  # the view's private roots, hidden even if world-readable (isolation.view.Layout)
    shared: list[str] = []  # host folders the view shows as they are, writable where modes allow
    uid: int = -1  # >= 0: drop to this uid/gid
    gid: int = -1
    drop_capabilities: bool = False  # clear every capability set, then no new privileges
    address_space_bytes: int = 0  # RLIMIT_AS, the fallback's backstop for memory
    max_processes: int = 0  # RLIMIT_NPROC, the fallback's pids limit
    oom_on_memory_error: bool = False  # fallback: a MemoryError is the memory limit: report OOM


class Spawn(msgspec.Struct, tag="spawn"):
    """Fork one environment. Attached fds: control-in (read), control-out (write), log (write)."""

    env_id: int
    handler: str
    task_root: str
    sys_path: list[str]
    environ: dict[str, str]
    isolation: IsolationSpec = msgspec.field(default_factory=IsolationSpec)
    # START_INIT: an environment that runs Init. START_SNAPSHOT: a snapshot process (a fourth fd,
    # the socket it serves forks on). START_RESTORE (to a snapshot process): a fork of it.
    start: str = "init"


START_INIT = "init"
START_SNAPSHOT = "snapshot"
START_RESTORE = "restore"


class Hello(msgspec.Struct, tag="hello"):
    pid: int


class Spawned(msgspec.Struct, tag="spawned"):
    env_id: int
    pid: int  # its pidfd travels with the message


class SpawnFailed(msgspec.Struct, tag="spawn_failed"):
    env_id: int
    message: str


class Exited(msgspec.Struct, tag="exited"):
    pid: int
    status: int  # raw wait status


ToZygote = Spawn
FromZygote = Union[Hello, Spawned, SpawnFailed, Exited]


def frame(encoder: msgspec.msgpack.Encoder, msg: msgspec.Struct) -> bytearray:
    """Encode ``msg`` behind its 4-byte length prefix, in one buffer (one write)."""
    buf = bytearray(HEADER)
    encoder.encode_into(msg, buf, HEADER)
    buf[:HEADER] = (len(buf) - HEADER).to_bytes(HEADER, "big")
    return buf


class FrameSplitter:
    """Incremental decoder for the length-prefixed stream, shared by both ends.

    ``feed`` returns the complete messages in ``data``; a partial frame is kept for the next
    call. The common case — exactly one whole frame per read — takes no copy; a large frame
    arriving in many reads is accumulated and decoded once, when its last byte is in.
    """

    __slots__ = ("_decoder", "_max", "_need", "_pending")

    def __init__(self, decoder: msgspec.msgpack.Decoder[Any], max_frame: int = MAX_FRAME) -> None:
        self._decoder = decoder
        self._max = max_frame
        self._pending = bytearray()
        self._need = 0  # bytes the pending data must reach before anything can be decoded

    def feed(self, data: bytes) -> list[object]:
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return []
            data = bytes(self._pending)
            self._pending.clear()
        out: list[object] = []
        view = memoryview(data)
        pos, end = 0, len(data)
        need = 0
        while end - pos >= HEADER:
            size = int.from_bytes(view[pos : pos + HEADER], "big")
            if size > self._max or size == 0:
                raise ProtocolError(f"frame length {size} outside 1..{self._max}")
            if end - pos - HEADER < size:
                need = HEADER + size
                break
            start = pos + HEADER
            try:
                out.append(self._decoder.decode(view[start : start + size]))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ProtocolError(f"undecodable frame: {exc}") from None
            pos = start + size
        if pos < end:
            self._pending += view[pos:]
            self._need = need or HEADER
        return out

    @property
    def buffered(self) -> int:
        return len(self._pending)
