"""stdout/stderr and ``logging`` inside an environment, in the Lambda Python runtime's format.

fd 1 and fd 2 are the log pipe (set up at spawn). stdout and stderr are made unbuffered, as
the runtime makes them, so a print made just before a timeout or crash is not lost in a
buffer. ``logging``'s root logger gets Lambda's text format with the current request id.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time

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
    handler = _LambdaHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    # getLevelName, not 3.11's getLevelNamesMapping: this runs on the function's runtime (3.9+).
    if level and isinstance(logging.getLevelName(level), int):
        root.setLevel(level)


def flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
