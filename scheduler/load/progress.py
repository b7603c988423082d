"""The live progress line, redrawn once per interval while stdout is a terminal.

   12.0s  answered 498/s  in flight 11  p50 20.41 ms  p99 24.90 ms  errors 0  throttles 0  cold 1.2 %

Rate and percentiles are those of the last interval (what is happening now); errors,
throttles and the cold share count the whole run so far.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .recorder import Interval, Recorder


def line(recorder: Recorder, slot: Interval) -> str:
    answered = sum(recorder.starts.values())
    cold = 100 * recorder.starts.get("cold", 0) / answered if answered else 0.0
    elapsed = (slot.index + 1) * recorder.interval_s
    text = (
        f"{elapsed:6.1f}s  answered {slot.completed / recorder.interval_s:7.0f}/s  in flight {slot.in_flight:5d}  "
        f"p50 {slot.latency.percentile(0.5) / 1e3:8.2f} ms  p99 {slot.latency.percentile(0.99) / 1e3:8.2f} ms  "
        f"errors {recorder.error_count}  throttles {recorder.throttle_count}  cold {cold:.1f} %"
    )
    if slot.cpu_percent is not None and slot.cpu_percent >= 90:
        text += f"  [harness CPU {slot.cpu_percent:.0f} %]"
    return text


class ProgressLine:
    """Draws :func:`line` over itself with a carriage return; ``finish`` ends the line."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self._stream = stream
        self._width = 0

    def __call__(self, recorder: Recorder, slot: Interval) -> None:
        text = line(recorder, slot)
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)

    def finish(self) -> None:
        if self._width:
            self._stream.write("\n")
            self._stream.flush()
