"""One invocation: the request as admitted, the log it accumulates, and the result it ends in.

An :class:`Invocation` is created at admission and travels through the pool into one (or, on a
failed Init, two) environments. Each way it can end — a response, a function error, a timeout,
a runtime exit, a failed Init — has one ``finish_*`` method that builds the
:class:`InvocationResult` with Lambda's payload and log lines.
"""

from __future__ import annotations

import json
import math
import random
import time
from typing import Literal

from . import logs
from .logs import LogBuffer
from .platform_log import TEXT, PlatformLog
from .protocol import FunctionError, Invoke, Response

StartType = Literal["cold", "warm", "provisioned"]
Status = Literal["success", "error", "timeout"]

TIMEOUT_ERROR = "Sandbox.Timedout"
EXIT_ERROR = "Runtime.ExitError"

_getrandbits = random.getrandbits


def new_request_id() -> str:
    """A random UUID string with the version-4 nibble (a third of uuid.uuid4()'s cost)."""
    h = "%032x" % _getrandbits(128)  # noqa: UP031 - the fastest spelling
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _platform_error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class InvocationResult:
    """What an invocation returned. ``error_type`` is None on success; ``log`` is the
    invocation's log text as Lambda's LogType=Tail would show it (built when first read)."""

    __slots__ = (
        "_log",
        "_parts",
        "_platform",
        "billed_duration_ms",
        "duration_ms",
        "ended_at",
        "error_type",
        "function_name",
        "init_duration_ms",
        "latency_s",
        "log_stream",
        "max_memory_used_mb",
        "memory_size_mb",
        "payload",
        "report_error_type",
        "request_id",
        "restored",
        "start",
        "status",
        "version",
    )

    def __init__(
        self,
        inv: Invocation,
        payload: bytes,
        error_type: str | None,
        status: Status,
        duration_ms: float,
        billed_ms: int,
        max_rss_kb: int,
        report_error_type: str | None = None,
    ) -> None:
        self.payload = payload
        self.error_type = error_type
        self.request_id = inv.request_id
        self.start: StartType = inv.start
        self.status: Status = status
        self.function_name = inv.function_name
        self.version = inv.version
        self.init_duration_ms = inv.init_ms
        self.restored = inv.restored
        self.duration_ms = duration_ms
        self.billed_duration_ms = billed_ms
        self.memory_size_mb = inv.memory_mb
        self.max_memory_used_mb = max(1, math.ceil(max_rss_kb / 1024))
        self.report_error_type = report_error_type or error_type
        self.latency_s = 0.0
        self.log_stream = inv.log_stream
        self.ended_at = time.time()  # the time of the platform's closing records
        self._parts = inv.parts
        self._platform = inv.platform
        self._log: str | None = None

    @property
    def function_error(self) -> str | None:
        """The ``X-Amz-Function-Error`` header value."""
        return "Unhandled" if self.error_type else None

    @property
    def log(self) -> str:
        if self._log is None:
            text = "".join(p if isinstance(p, str) else p.text() for p in self._parts)
            self._log = text + self._platform.end(self) + self.report_line()
        return self._log

    def report_line(self) -> str:
        """REPORT, or the platform.report record, in the function's log format."""
        return self._platform.report(self)

    def log_tail(self, limit: int = 4096) -> bytes:
        return self.log.encode()[-limit:]

    def __repr__(self) -> str:
        return (
            f"InvocationResult(request_id={self.request_id!r}, start={self.start!r}, status={self.status!r}, "
            f"error_type={self.error_type!r}, duration_ms={self.duration_ms:.3f}, payload={self.payload[:80]!r})"
        )


class Invocation:
    __slots__ = (
        "admitted_at",
        "client_context",
        "cognito_identity",
        "function_name",
        "init_ms",
        "invoked_arn",
        "log_stream",
        "memory_mb",
        "output",
        "parts",
        "payload",
        "platform",
        "request_id",
        "restored",
        "start",
        "tenant_id",
        "timeout_s",
        "trace_id",
        "version",
    )

    def __init__(
        self,
        *,
        function_name: str,
        version: str,
        memory_mb: int,
        timeout_s: float,
        payload: bytes,
        invoked_arn: str,
        log_limit: int,
        request_id: str | None = None,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        trace_id: str | None = None,
        tenant_id: str | None = None,
        platform: PlatformLog = TEXT,
    ) -> None:
        self.request_id = request_id or new_request_id()
        self.function_name = function_name
        self.version = version
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.payload = payload
        self.invoked_arn = invoked_arn
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self.trace_id = trace_id
        self.tenant_id = tenant_id
        self.platform = platform  # writes the platform's records in the function's log format
        self.start: StartType = "warm"
        # Init Duration for the REPORT line: set on a cold start whose Init succeeded first time.
        self.init_ms: float | None = None
        self.restored = False  # init_ms was a restore from a SnapStart snapshot, not an Init
        self.output = LogBuffer(log_limit)
        self.parts: list[str | LogBuffer] = []
        self.admitted_at = 0.0
        self.log_stream = ""  # the stream (environment) that ran it; the last one tried if Init failed

    # --- the log, in the order Lambda writes it ---------------------------------------

    def log_start(self) -> None:
        self.parts.append(self.platform.start(self.request_id, self.version, self.trace_id))
        self.parts.append(self.output)

    def log_text(self, text: str) -> None:
        """A platform line after the handler's output so far; later output goes after it."""
        if not text:
            return
        self.parts.append(text)
        self.output = LogBuffer(self.output._limit)
        self.parts.append(self.output)

    def frame(self, deadline_ms: int) -> Invoke:
        return Invoke(
            self.request_id,
            self.payload,
            deadline_ms,
            self.invoked_arn,
            self.client_context,
            self.cognito_identity,
            self.trace_id,
            self.tenant_id,
        )

    # --- the ways an invocation ends ------------------------------------------------------

    def _billed(self, duration_ms: float) -> int:
        # Since August 2025 a cold start bills Init and Duration together.
        # A restore is billed on its own line (Billed Restore Duration), not with Duration.
        return logs.billed_ms((0.0 if self.restored else self.init_ms or 0.0) + duration_ms)

    def finish_response(self, reply: Response) -> InvocationResult:
        duration = reply.duration_ns / 1e6
        return InvocationResult(self, reply.payload, None, "success", duration, self._billed(duration), reply.max_rss_kb)

    def finish_error(self, reply: FunctionError) -> InvocationResult:
        duration = reply.duration_ns / 1e6
        return InvocationResult(
            self, reply.payload, reply.error_type, "error", duration, self._billed(duration), reply.max_rss_kb
        )

    def finish_timeout(self, duration_ms: float, max_rss_kb: int) -> InvocationResult:
        message = logs.timeout_text(self.timeout_s)
        self.log_text(self.platform.timeout(self.request_id, message))
        billed = round(self.timeout_s * 1000) + math.ceil(self.init_ms or 0.0)
        payload = _platform_error(TIMEOUT_ERROR, f"RequestId: {self.request_id} Error: {message}")
        return InvocationResult(self, payload, TIMEOUT_ERROR, "timeout", duration_ms, billed, max_rss_kb)

    def finish_exit(
        self, status: int, duration_ms: float, max_rss_kb: int, report_error_type: str | None = None
    ) -> InvocationResult:
        message = logs.exit_message(self.request_id, status)
        self.log_text(self.platform.exited(message, EXIT_ERROR))
        payload = _platform_error(EXIT_ERROR, message)
        return InvocationResult(
            self, payload, EXIT_ERROR, "error", duration_ms, self._billed(duration_ms), max_rss_kb, report_error_type
        )

    def finish_init_error(self, error_type: str, payload: bytes, duration_ms: float, max_rss_kb: int) -> InvocationResult:
        return InvocationResult(
            self, payload, error_type, "error", duration_ms, self._billed(duration_ms), max_rss_kb
        )
