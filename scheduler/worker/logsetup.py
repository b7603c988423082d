"""stdout/stderr and ``logging`` inside an environment, in the Lambda Python runtime's format.

fd 1 and fd 2 are the log pipe (set up at spawn). stdout and stderr are made unbuffered, as
the runtime makes them, so a print made just before a timeout or crash is not lost in a
buffer. ``logging``'s root logger gets Lambda's format with the current request id:

- ``AWS_LAMBDA_LOG_FORMAT=JSON`` (LoggingConfig.LogFormat JSON): one JSON object per record,
  ``timestamp``, ``level``, ``message``, ``logger``, ``requestId``, then every field given with
  ``extra=``, and for an exception ``errorType``, ``errorMessage``, ``stackTrace`` and
  ``location``; an unhandled error is one JSON object too. ``print()`` stays plain text, as
  on Lambda: only ``logging`` knows a record's level and fields.
- otherwise the text format, ``[INFO]\t<time>\t<request id>\t<message>``.

``AWS_LAMBDA_LOG_LEVEL`` (LoggingConfig.ApplicationLogLevel) sets the root logger's level;
Python has no TRACE, so TRACE means DEBUG, as in Lambda's runtime.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from typing import Any

from . import faults

LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class RequestState:
    """The request being served, read by the log filter (the runtime is single-threaded
    per environment; background threads see the latest request, as on Lambda)."""

    request_id = ""
    tenant_id: str | None = None


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = RequestState.request_id
        record.tenant_id = RequestState.tenant_id
        return True


# A LogRecord's own attributes; any other is a field the caller gave with ``extra=``.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "aws_request_id",
    "tenant_id",
}
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


class JsonFormatter(logging.Formatter):
    """A record as Lambda's Python runtime writes it with the JSON log format. Levels are
    rounded down to Python's named ones (a level-25 record is INFO); fields that are None are
    left out; a value JSON cannot hold is written as its str()."""

    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10
        exc_info = record.exc_info
        when = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # noqa: UP017 - runs on 3.9
        out: dict[str, Any] = {
            "timestamp": when,
            "level": logging.getLevelName(level),
            "message": record.getMessage(),
            "logger": record.name,
        }
        if exc_info and exc_info[0] is not None:
            out["stackTrace"] = traceback.format_tb(exc_info[2])
            out["errorType"] = exc_info[0].__name__
            out["errorMessage"] = str(exc_info[1])
        out["requestId"] = getattr(record, "aws_request_id", None)
        if exc_info:
            out["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        tenant_id = getattr(record, "tenant_id", None)
        if tenant_id is not None:
            out["tenantId"] = tenant_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in out:
                out[key] = value
        return _encode({k: v for k, v in out.items() if v is not None}) + "\n"


class _Format:
    """The format chosen at install (the environment's variables do not change after)."""

    json = False


def error_record(body: dict[str, object]) -> str:
    """How an unhandled error is logged: the text runtime's ``[ERROR]`` lines, or one JSON
    object (its timestamp in whole seconds, as Lambda's runtime writes it)."""
    if not _Format.json:
        return faults.error_log_record(body)
    head = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "level": "ERROR"}
    return _encode({**head, **body}) + "\n"


class _LambdaHandler(logging.Handler):
    """Writes the formatted record to stdout with no newline added (the format ends in one)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into user code
            self.handleError(record)


def _unbuffered(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        raw,
        encoding="utf-8",
        errors="backslashreplace",
        write_through=True,
    )


def install() -> None:
    sys.stdout = _unbuffered(1)
    sys.stderr = _unbuffered(2)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    logging.Formatter.converter = time.gmtime
    _Format.json = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    handler = _LambdaHandler()
    handler.setFormatter(JsonFormatter() if _Format.json else logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    level = "DEBUG" if level == "TRACE" else level
    # getLevelName, not 3.11's getLevelNamesMapping: this runs on the function's runtime (3.9+).
    if level and isinstance(logging.getLevelName(level), int):
        root.setLevel(level)


def flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
