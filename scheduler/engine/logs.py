"""Lambda's platform log lines (START / END / REPORT / INIT_REPORT) and the
bounded buffer that collects one invocation's output from its environment's log pipe."""

from __future__ import annotations

import math
import os
import secrets
import signal
import time

# Go's names for signals, as the Lambda Runtime API prints them ("signal: killed").
_SIGNAL_TEXT = {
    signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt",
    signal.SIGQUIT: "quit",
    signal.SIGILL: "illegal instruction",
    signal.SIGTRAP: "trace/breakpoint trap",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGKILL: "killed",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGPIPE: "broken pipe",
    signal.SIGALRM: "alarm clock",
    signal.SIGTERM: "terminated",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
    signal.SIGSYS: "bad system call",
}


def describe_exit(status: int) -> str:
    """The end of "Runtime exited with error: …" for a raw wait status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"signal: {_SIGNAL_TEXT.get(sig, f'signal {sig}')}"  # type: ignore[call-overload]
    return f"exit status {os.WEXITSTATUS(status)}"


def exit_message(request_id: str, status: int) -> str:
    if not os.WIFSIGNALED(status) and os.WEXITSTATUS(status) == 0:
        return f"RequestId: {request_id} Error: Runtime exited without providing a reason"
    return f"RequestId: {request_id} Error: Runtime exited with error: {describe_exit(status)}"


def timeout_text(timeout_s: float) -> str:
    return f"Task timed out after {timeout_s:.2f} seconds"


def iso_time(epoch_s: float) -> str:
    """``2024-01-01T00:00:00.123Z`` (time.strftime: a third of datetime's cost)."""
    whole = int(epoch_s)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((epoch_s - whole) * 1000):03d}Z"


def iso_now() -> str:
    return iso_time(time.time())


def log_stream_name(version: str = "$LATEST") -> str:
    return time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{version}]{secrets.token_hex(16)}"


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_line(
    request_id: str,
    duration_ms: float,
    billed_ms: int,
    memory_mb: int,
    max_used_mb: int,
    init_ms: float | None,
    status: str,
    error_type: str | None,
    restored: bool = False,
) -> str:
    """``restored``: ``init_ms`` is a SnapStart restore, reported as Lambda reports one."""
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed_ms} ms\t"
        f"Memory Size: {memory_mb} MB\tMax Memory Used: {max_used_mb} MB\t"
    )
    if init_ms is not None and restored:
        line += f"Restore Duration: {init_ms:.2f} ms\tBilled Restore Duration: {math.ceil(init_ms)} ms\t"
    elif init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    if status == "timeout":
        line += "Status: timeout\n"
    elif status == "error" and error_type:
        line += f"Status: error\tError Type: {error_type}\n"
    else:
        line += "\n"
    return line


def init_report_line(init_ms: float, phase: str, status: str, error_type: str | None = None) -> str:
    line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
    if error_type:
        line += f"\tError Type: {error_type}"
    return line + "\n"


def billed_ms(duration_ms: float) -> int:
    return max(1, math.ceil(duration_ms))


class LogBuffer:
    """Output of one phase of one environment, capped: the newest ``limit`` bytes survive."""

    __slots__ = ("_data", "_limit", "dropped")

    def __init__(self, limit: int) -> None:
        self._data = bytearray()
        self._limit = limit
        self.dropped = 0

    def append(self, chunk: bytes) -> None:
        data = self._data
        data += chunk
        if len(data) > 2 * self._limit:
            excess = len(data) - self._limit
            del data[:excess]
            self.dropped += excess

    def __len__(self) -> int:
        return len(self._data)

    def text(self) -> str:
        body = self._data.decode("utf-8", "replace")
        if self.dropped:
            return f"[lambda-scheduler: {self.dropped} earlier bytes of output dropped]\n" + body
        return body
