"""Where a server prints each invocation's log (START … END, REPORT), as ``sam local`` does.

Called by the invoke route and the event dispatcher once an invocation has a result. The lines
go to the ``lambda_scheduler.function`` logger at INFO, so ``--log-level warning`` silences
them; the text is only built when that level is on.
"""

from __future__ import annotations

import logging

from .engine.invocation import InvocationResult

log = logging.getLogger("lambda_scheduler.function")


def emit(result: InvocationResult) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info("%s", result.log.rstrip("\n"))
