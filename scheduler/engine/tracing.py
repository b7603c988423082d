"""X-Ray trace ids: what an invocation's ``_X_AMZN_TRACE_ID`` is.

A caller's ``X-Amzn-Trace-Id`` is handed on as it came, whatever the function's tracing mode.
Without one, ``TracingConfig.Mode: Active`` starts a trace of its own for every invocation,
sampled (Lambda samples a share of them; every one is sampled here, nothing is sent to X-Ray
anyway); ``PassThrough`` only hands a caller's trace on, so the variable is absent.

An id is ``Root=1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>;Parent=<64 random bits,
16 hex>;Sampled=1``, as X-Ray writes it.
"""

from __future__ import annotations

import random
import time

from ..logconfig import TracingMode

_getrandbits = random.getrandbits


def new_trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{_getrandbits(96):024x};Parent={_getrandbits(64):016x};Sampled=1"


def trace_header(mode: TracingMode, given: str | None) -> str | None:
    """The trace id an invocation runs with."""
    if given is not None or mode is not TracingMode.ACTIVE:
        return given
    return new_trace_id()
