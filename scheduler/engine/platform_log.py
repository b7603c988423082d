"""The platform's records of an invocation, in the function's log format.

Lambda writes its own lines around what the function prints. With ``LogFormat: Text`` they
are the START / END / REPORT / INIT_REPORT lines of logs.py. With ``LogFormat: JSON`` each is
one compact JSON object per line, in the Telemetry API's shape::

    {"time":"2024-01-01T00:00:00.000Z","type":"platform.start","record":{"requestId":"…","version":"$LATEST"}}

``platform.initStart`` (a cold start), ``platform.start``, ``platform.runtimeDone`` (where
the text format writes END), ``platform.report`` (REPORT, with ``record.metrics``:
durationMs, billedDurationMs, memorySizeMB, maxMemoryUsedMB, and initDurationMs on a cold
start) and ``platform.initReport`` (a failed Init, where the text format writes INIT_REPORT).
A timeout or a runtime exit is told by the status and errorType of runtimeDone and report,
where the text format adds a line of its own.

``SystemLogLevel`` filters these records, only in the JSON format (Lambda accepts log levels
only with it): every record is INFO but those of a failure (an invocation or Init that did not
succeed), which are WARN, so WARN keeps the failures alone. Nothing here is DEBUG.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import msgspec

from ..config import FunctionConfig
from ..logconfig import LogFormat, SystemLogLevel
from . import logs

if TYPE_CHECKING:
    from .invocation import InvocationResult

_INFO = SystemLogLevel.INFO.rank
_WARN = SystemLogLevel.WARN.rank
_encode = msgspec.json.Encoder().encode  # compact, UTF-8 as it is: the records as Lambda writes them


def runtime_version_arn(region: str, runtime: str) -> str:
    """Lambda names a runtime version ``arn:aws:lambda:<region>::runtime:<64 hex>``; here the
    version is the runtime name's digest, the same for as long as the runtime is."""
    return f"arn:aws:lambda:{region}::runtime:{hashlib.sha256(runtime.encode()).hexdigest()}"


def _ms(value: float) -> float:
    return round(value, 3)


class PlatformLog:
    """Writes one function configuration's platform records; an empty string is a record
    the system log level filters out (or one the format does not have)."""

    __slots__ = ("_floor", "_function", "_json", "_runtime", "_runtime_arn")

    def __init__(self, config: FunctionConfig | None = None, region: str = "us-east-1") -> None:
        logging = config.logging if config is not None else None
        self._json = logging is not None and logging.log_format is LogFormat.JSON
        self._floor = logging.system_level.rank if logging is not None else _INFO
        self._function = config.name if config is not None else ""
        runtime = config.runtime if config is not None else "python3"
        self._runtime = runtime.replace("python", "python:", 1)
        self._runtime_arn = runtime_version_arn(region, runtime)

    @property
    def is_json(self) -> bool:
        return self._json

    def _record(self, kind: str, level: int, record: dict[str, Any], epoch_s: float | None = None) -> str:
        if level < self._floor:
            return ""
        when = logs.iso_now() if epoch_s is None else logs.iso_time(epoch_s)
        return _encode({"time": when, "type": f"platform.{kind}", "record": record}).decode() + "\n"

    # --- the invoke phase -----------------------------------------------------------------

    def start(self, request_id: str, version: str, trace_id: str | None) -> str:
        if not self._json:
            return logs.start_line(request_id, version)
        record: dict[str, Any] = {"requestId": request_id, "version": version}
        if trace_id is not None:
            record["tracing"] = {"type": "X-Amzn-Trace-Id", "value": trace_id}
        return self._record("start", _INFO, record)

    def timeout(self, request_id: str, message: str) -> str:
        """The line a timeout adds after the function's output (JSON: told by the status)."""
        return "" if self._json else f"{logs.iso_now()} {request_id} {message}\n"

    def exited(self, message: str, error_type: str) -> str:
        """The lines a runtime exit adds after the function's output (JSON: told by the status)."""
        return "" if self._json else f"{message}\n{error_type}\n"

    def end(self, result: InvocationResult) -> str:
        """END, or platform.runtimeDone."""
        if not self._json:
            return logs.end_line(result.request_id)
        record = self._outcome(result)
        record["metrics"] = {"durationMs": _ms(result.duration_ms), "producedBytes": len(result.payload)}
        return self._record("runtimeDone", self._level(result), record, result.ended_at)

    def report(self, result: InvocationResult) -> str:
        """REPORT, or platform.report."""
        if not self._json:
            return logs.report_line(
                result.request_id,
                result.duration_ms,
                result.billed_duration_ms,
                result.memory_size_mb,
                result.max_memory_used_mb,
                result.init_duration_ms,
                result.status,
                result.report_error_type,
                result.restored,
            )
        metrics: dict[str, Any] = {
            "durationMs": _ms(result.duration_ms),
            "billedDurationMs": result.billed_duration_ms,
            "memorySizeMB": result.memory_size_mb,
            "maxMemoryUsedMB": result.max_memory_used_mb,
        }
        if result.init_duration_ms is not None and result.restored:
            metrics["restoreDurationMs"] = _ms(result.init_duration_ms)
            metrics["billedRestoreDurationMs"] = math.ceil(result.init_duration_ms)
        elif result.init_duration_ms is not None:
            metrics["initDurationMs"] = _ms(result.init_duration_ms)
        record = {"requestId": result.request_id, "metrics": metrics, **self._outcome(result, report=True)}
        return self._record("report", self._level(result), record, result.ended_at)

    @staticmethod
    def _outcome(result: InvocationResult, report: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {} if report else {"requestId": result.request_id}
        out["status"] = result.status
        error_type = result.report_error_type if report else result.error_type
        if result.status != "success" and error_type:
            out["errorType"] = error_type
        return out

    @staticmethod
    def _level(result: InvocationResult) -> int:
        return _INFO if result.status == "success" else _WARN

    # --- the init phase -------------------------------------------------------------------

    def init_start(self) -> str:
        """platform.initStart before a cold start's Init output (the text format has no line).
        Only an invocation's own Init is in its log: a provisioned or pre-warmed environment's
        Init output goes to the environment's log, as it does on Lambda."""
        if not self._json:
            return ""
        return self._record(
            "initStart",
            _INFO,
            {
                "initializationType": "on-demand",
                "phase": "init",
                "runtimeVersion": self._runtime,
                "runtimeVersionArn": self._runtime_arn,
                "functionName": self._function,
                "functionVersion": "$LATEST",
            },
        )

    def restore_start(self, version: str) -> str:
        """platform.restoreStart before the output of a restore from a SnapStart snapshot."""
        if not self._json:
            return ""
        return self._record(
            "restoreStart",
            _INFO,
            {
                "runtimeVersion": self._runtime,
                "runtimeVersionArn": self._runtime_arn,
                "functionName": self._function,
                "functionVersion": version,
            },
        )

    def restore_report(self, restore_ms: float) -> str:
        """platform.restoreReport once a restore succeeded (the text format: REPORT says it)."""
        if not self._json:
            return ""
        return self._record("restoreReport", _INFO, {"status": "success", "metrics": {"durationMs": _ms(restore_ms)}})

    def init_report(self, init_ms: float, phase: str, status: str, error_type: str | None = None) -> str:
        """INIT_REPORT, or platform.initReport, for an Init that failed."""
        if not self._json:
            return logs.init_report_line(init_ms, phase, status, error_type)
        record: dict[str, Any] = {"initializationType": "on-demand", "phase": phase, "status": status}
        if error_type:
            record["errorType"] = error_type
        record["metrics"] = {"durationMs": _ms(init_ms)}
        return self._record("initReport", _WARN, record)


# Functions made through the Python API without a configuration get the text format.
TEXT = PlatformLog()
