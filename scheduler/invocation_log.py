"""Where a server prints each invocation's log (START … END, REPORT), as ``sam local`` does.

Called by the invoke route and the event dispatcher once an invocation has a result. The lines
go to the ``lambda_scheduler.function`` logger at INFO, so ``--log-level warning`` silences
them; the text is only built when that level is on.

Fast path: ``serve`` prints these lines exactly as the function wrote them (the format is the
message alone) through the batching log writer (log_writer.py). While that handler is the
logger's only one, with no filter and no propagation, the text goes to the writer directly,
without a LogRecord and a formatting pass per invocation: the same bytes, a few microseconds
less per call. Anything else attached to the logger (a test's capture, a user's handler) turns
the fast path off and the records go through logging as usual.
"""

from __future__ import annotations

import logging

from .engine.invocation import InvocationResult
from .log_writer import BatchedHandler

log = logging.getLogger("lambda_scheduler.function")

_direct: BatchedHandler | None = None


def write_directly(handler: BatchedHandler | None) -> None:
    """Let ``emit`` hand text to ``handler``'s writer while it is the logger's only handler
    (``handler`` must format a record as its message alone)."""
    global _direct
    _direct = handler


def emit(result: InvocationResult) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    text = result.log.rstrip("\n")
    direct = _direct
    handlers = log.handlers
    if (
        direct is not None
        and len(handlers) == 1
        and handlers[0] is direct
        and not log.propagate
        and not log.filters
        and not direct.filters
        and direct.level <= logging.INFO
    ):
        direct.writer.write(text)
    else:
        log.info("%s", text)
