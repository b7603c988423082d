"""Function logs on disk: ``--log-dir DIR``, one file per environment, in Lambda's stream names.

    Scheduler ─observers─► LogDir.invocation_finished  (START … END, REPORT of one invocation)
                         └► LogDir.environment_output   (output between invocations)
                                 │ queue (bytes, no I/O on the event loop)
                                 ▼
                           writer thread ─► DIR/<function>/YYYY/MM/DD/[$LATEST]<32 hex>

The path below ``DIR/<function>/`` is the environment's log stream name, the same one its
handler sees as ``context.log_stream_name``, as CloudWatch files each environment's log under
``/aws/lambda/<function>``. Only the writer thread opens, writes and closes files, so a slow
disk never blocks the event loop: the loop hands over text and returns. If the disk falls
more than ``max_pending_bytes`` behind, further text is dropped (and said so in the server's
log) rather than held in memory without bound. A file is closed shortly after its
environment stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .engine.environment import Environment
from .engine.invocation import InvocationResult
from .engine.observer import Observer
from .engine.stops import StopReason
from .errors import ConfigError

log = logging.getLogger("lambda_scheduler.logdir")

# An environment's file stays open this long after it stopped: the result of the invocation
# it died in is reported just after the stop.
_CLOSE_DELAY_S = 1.0
_BUFFER_BYTES = 1 << 16


class _Writer:
    """The thread that owns every open log file. Work arrives as (path, data) to append,
    (path, None) to close; None stops it."""

    def __init__(self, max_pending_bytes: int, max_open_files: int) -> None:
        self._max_open = max_open_files
        self._queue: queue.SimpleQueue[tuple[Path, bytes | str | None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._max_pending = max_pending_bytes
        self._thread: threading.Thread | None = None
        self.dropped_bytes = 0
        self._dropping = False

    def write(self, path: Path, data: bytes | str) -> None:
        size = len(data)
        if not size:
            return
        with self._lock:
            accepted = self._pending + size <= self._max_pending
            if accepted:
                self._pending += size
            else:
                self.dropped_bytes += size
                first, self._dropping = not self._dropping, True
        if not accepted:
            if first:
                log.warning("the log directory is %d bytes behind: dropping function logs until it catches up",
                            self._max_pending)  # fmt: skip
            return
        self._start()
        self._queue.put((path, data))

    def close_file(self, path: Path) -> None:
        if self._thread is not None:
            self._queue.put((path, None))

    def stop(self) -> None:
        """Write what is queued, close every file, end the thread. Blocks: call it in a thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lambda-scheduler log dir", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        files: dict[Path, BinaryIO] = {}
        failed: set[Path] = set()
        while True:
            item = self._queue.get()
            if item is None:
                break
            path, data = item
            if data is None:
                _close(files.pop(path, None))
                failed.discard(path)
                continue
            self._append(files, failed, path, data)
            if self._queue.empty():
                for f in files.values():
                    _flush(f)
        for f in files.values():
            _close(f)

    def _append(self, files: dict[Path, BinaryIO], failed: set[Path], path: Path, data: bytes | str) -> None:
        try:
            if path in failed:
                return
            f = files.pop(path, None)  # and put back last: the dict runs least recently written first
            if f is None:
                if len(files) >= self._max_open:
                    _close(files.pop(next(iter(files))))  # reopened in append mode if written again
                path.parent.mkdir(parents=True, exist_ok=True)
                f = open(path, "ab", buffering=_BUFFER_BYTES)  # noqa: SIM115 - kept open
            files[path] = f
            f.write(data.encode("utf-8", "replace") if isinstance(data, str) else data)
        except OSError as exc:
            failed.add(path)  # one message per file, not one per invocation
            log.error("cannot write function log %s: %s", path, exc)
        finally:
            with self._lock:
                self._pending -= len(data)
                if self._pending <= self._max_pending // 2:
                    self._dropping = False  # caught up: a new backlog is worth a new warning


def _flush(f: BinaryIO) -> None:
    try:
        f.flush()
    except OSError as exc:
        log.error("cannot write function log %s: %s", f.name, exc)


def _close(f: BinaryIO | None) -> None:
    if f is not None:
        try:
            f.close()
        except OSError as exc:
            log.error("cannot write function log %s: %s", f.name, exc)


class LogDir(Observer):
    """Writes every invocation's log, and environment output between invocations, under ``root``."""

    def __init__(self, root: str | os.PathLike[str], max_pending_bytes: int = 64 << 20, max_open_files: int = 256) -> None:
        """One file is open per live environment, up to ``max_open_files``; beyond, the least
        recently written is closed (and reopened, appending, when written again)."""
        self.root = Path(root)
        self._writer = _Writer(max_pending_bytes, max_open_files)
        self._closing: dict[Path, asyncio.TimerHandle] = {}

    @property
    def dropped_bytes(self) -> int:
        return self._writer.dropped_bytes

    def open(self) -> None:
        """Check that the directory can be used, before serving."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{time.monotonic_ns()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigError("log_dir", f"cannot write to {str(self.root)!r}: {exc.strerror or exc}") from None

    async def close(self) -> None:
        """Write what is pending and close every file (in a thread: the disk may be slow)."""
        for handle in self._closing.values():
            handle.cancel()
        self._closing.clear()
        await asyncio.to_thread(self._writer.stop)

    def path_of(self, function: str, stream: str) -> Path:
        return self.root / function / stream

    # --- observer -------------------------------------------------------------------------

    def invocation_finished(self, function: str, result: InvocationResult, provisioned_configured: bool) -> None:
        self._writer.write(self.path_of(function, result.log_stream), result.log)
        if result.status != "success" and result.start == "cold" and result.init_duration_ms is None:
            # An Init that failed twice: its environment never served, so no stop closes it.
            self._close_later(self.path_of(function, result.log_stream))

    def environment_output(self, function: str, env: Environment, data: bytes) -> None:
        self._writer.write(self.path_of(function, env.log_stream), data)

    def environment_stopped(self, function: str, env: Environment, reason: StopReason) -> None:
        # The invocation an environment died in is reported just after its stop: close a
        # moment later, so that last block lands in the same file.
        self._close_later(self.path_of(function, env.log_stream))

    def _close_later(self, path: Path, then: Callable[[], None] | None = None) -> None:
        """Close ``path`` after a moment (postponed by another call for the same path)."""
        previous = self._closing.pop(path, None)
        if previous is not None:
            previous.cancel()

        def close() -> None:
            del self._closing[path]
            self._writer.close_file(path)
            if then is not None:
                then()

        self._closing[path] = asyncio.get_running_loop().call_later(_CLOSE_DELAY_S, close)
