"""The server's log sink: lines are batched and written once per tick of the event loop.

    logging handler ─► LogWriter.write(line) ─► buffer ─► one os.write per tick (10 ms)
                                                 │ sink took part of it (pipe full) ─► STALLED:
                                                 │   the rest waits for the fd to be writable
                                                 │   (add_writer); lines past `limit` bytes are
                                                 │   dropped and counted
                                                 └ close / SIGTERM / logging.shutdown: drained
                                                   within a deadline

At ``--log-level info`` every invocation prints its START … END and REPORT lines: written one
``write(2)`` each, on the hot path, that is a system call (and a wakeup of whoever reads the
pipe) per invocation. Batching makes it one per tick, however many invocations finished in
it (``tick_s=0``: one per loop iteration); a reader that stops reading (a full stderr pipe)
no longer blocks the event loop: the server drops lines rather than stop serving, and counts
them (``lambda_scheduler_log_lines_dropped_total``).

The writer does not make the inherited stderr non-blocking (that flag belongs to the open
file, which the shell or the parent shares): it opens the same pipe or terminal again through
``/proc/self/fd`` and makes only its own copy non-blocking. A regular file never stalls and is
written as it is; a sink that cannot be opened again (a socket) is written blocking, as
logging's StreamHandler does.

Lines logged with no running loop in the thread (before serving starts, after it ends, from
another thread with no loop of its own while the loop is not running) are written at once;
lines from another thread while the loop runs are handed to the loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import select
import stat
import time

DEFAULT_LIMIT = 1 << 20  # bytes waiting for a stalled sink before lines are dropped
# Lines wait at most this long: under load a write then carries every line of many loop
# iterations, and an idle server arms no timer at all (one is armed only once a line waits).
DEFAULT_TICK_S = 0.01
CLOSE_DEADLINE_S = 2.0  # how long a close waits for a stalled sink


class SinkState(enum.Enum):
    OPEN = "open"  # the sink takes what it is given; one write per loop iteration
    STALLED = "stalled"  # the sink took part of a batch; the rest waits for it to be writable
    BROKEN = "broken"  # the sink failed (its reader is gone): every line is dropped
    CLOSED = "closed"  # closed: lines are written at once, blocking


def _own_copy(fd: int) -> tuple[int, bool]:
    """The fd to write to, and whether it is this writer's own non-blocking copy."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return fd, False
    if stat.S_ISREG(mode):
        return fd, False
    try:
        own = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return fd, False
    return own, True


class LogWriter:
    """Batches lines for one file descriptor; see the module docstring."""

    def __init__(self, fd: int, *, limit: int = DEFAULT_LIMIT, tick_s: float = DEFAULT_TICK_S) -> None:
        self._original = fd
        self._fd, self._owned = _own_copy(fd)
        self._limit = limit
        self._state = SinkState.OPEN
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer: list[bytes] = []
        self._lines = 0  # lines in the buffer
        self._pending = 0  # bytes in the buffer
        self._tick_s = tick_s  # 0: at the end of the loop iteration that logged the line
        self._tick: asyncio.Handle | None = None  # the flush to come, while lines wait for it
        self.dropped_lines = 0
        self.written_lines = 0
        self.batches = 0  # write(2) calls that wrote something

    @property
    def state(self) -> SinkState:
        return self._state

    @property
    def nonblocking(self) -> bool:
        return self._owned

    def write(self, line: str) -> None:
        """Queue a line (without its final newline; a text of several lines counts as as
        many lines)."""
        data = (line + "\n").encode("utf-8", "backslashreplace")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            bound = self._loop
            if bound is not None and bound.is_running() and not bound.is_closed():
                bound.call_soon_threadsafe(self._queue, data, bound)
            else:
                self._write_now(data)
            return
        self._queue(data, loop)

    def _queue(self, data: bytes, loop: asyncio.AbstractEventLoop) -> None:
        state = self._state
        if state is SinkState.CLOSED:
            self._write_now(data)
            return
        if state is SinkState.BROKEN or self._pending + len(data) > self._limit:
            self.dropped_lines += data.count(b"\n")
            return
        if loop is not self._loop:
            self._rebind(loop)
        self._buffer.append(data)
        self._lines += data.count(b"\n")
        self._pending += len(data)
        if state is SinkState.OPEN and self._tick is None:
            if self._tick_s > 0:
                self._tick = loop.call_later(self._tick_s, self._flush)
            else:
                self._tick = loop.call_soon(self._flush)

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        """A new loop (a server run after another in one process): what waited for the old
        loop is written now."""
        if self._state is SinkState.STALLED and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_writer(self._fd)
        if self._buffer:
            self._drain(CLOSE_DEADLINE_S)
        if self._state is SinkState.STALLED:
            self._state = SinkState.OPEN
        self._cancel_tick()
        self._loop = loop

    def _cancel_tick(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _flush(self) -> None:
        self._tick = None
        if self._state is SinkState.OPEN and self._buffer:
            self._write_some()

    def _on_writable(self) -> None:
        self._write_some()

    def _write_some(self) -> None:
        """One write of the whole buffer; what the sink did not take stays, and the writer
        waits for the sink (STALLED) or leaves waiting once all is written (OPEN)."""
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError:
            self._break()
            return
        if written:
            self.batches += 1
        if written == len(data):
            self.written_lines += self._lines
            self._buffer.clear()
            self._lines = self._pending = 0
            if self._state is SinkState.STALLED:
                self._state = SinkState.OPEN
                assert self._loop is not None
                self._loop.remove_writer(self._fd)
            return
        rest = data[written:]
        # Lines wholly written leave the count; the one cut in two stays until it is done.
        done = data.count(b"\n", 0, written)
        self.written_lines += done
        self._lines -= done
        self._buffer = [rest]
        self._pending = len(rest)
        if self._state is SinkState.OPEN:
            self._state = SinkState.STALLED
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._on_writable)

    def _break(self) -> None:
        if self._state is SinkState.STALLED and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_writer(self._fd)
        self.dropped_lines += self._lines
        self._buffer.clear()
        self._lines = self._pending = 0
        self._state = SinkState.BROKEN

    def _write_now(self, data: bytes) -> None:
        """Outside the loop: what is queued first, then ``data``, waiting for the sink."""
        if self._state is SinkState.BROKEN:
            self.dropped_lines += data.count(b"\n")
            return
        self._buffer.append(data)
        self._lines += data.count(b"\n")
        self._pending += len(data)
        self._drain(CLOSE_DEADLINE_S)

    def _drain(self, deadline_s: float) -> None:
        """Write everything queued, waiting for a stalled sink up to ``deadline_s``; what is
        still queued then is dropped."""
        if not self._buffer:
            return
        data = memoryview(b"".join(self._buffer))
        lines = self._lines
        self._buffer.clear()
        self._lines = self._pending = 0
        end = time.monotonic() + deadline_s
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                written = 0
            except InterruptedError:
                continue
            except OSError:
                self._state = SinkState.BROKEN
                break
            if written:
                self.batches += 1
                lines_done = data[:written].tobytes().count(b"\n")
                self.written_lines += lines_done
                lines -= lines_done
                data = data[written:]
                continue
            left = end - time.monotonic()
            if left <= 0:
                break
            poller.poll(left * 1e3)
        self.dropped_lines += lines if data else 0

    def flush(self, deadline_s: float = CLOSE_DEADLINE_S) -> None:
        """Write what is queued now, waiting at most ``deadline_s`` for the sink."""
        if self._state is SinkState.STALLED and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_writer(self._fd)
            self._state = SinkState.OPEN
        self._cancel_tick()
        self._drain(deadline_s)

    def close(self, deadline_s: float = CLOSE_DEADLINE_S) -> None:
        """Flush, then write every later line at once (nothing batches after a close)."""
        if self._state is SinkState.CLOSED:
            return
        self.flush(deadline_s)
        if self._state is not SinkState.BROKEN:
            self._state = SinkState.CLOSED
        if self._owned:
            # Shutdown's stragglers go to the inherited fd itself, blocking.
            os.close(self._fd)
            self._owned = False
            self._fd = self._original


class BatchedHandler(logging.Handler):
    """A logging handler over a :class:`LogWriter` (several handlers may share one, so
    their lines stay in order)."""

    def __init__(self, writer: LogWriter, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own rule: a bad record never raises
            self.handleError(record)
            return
        self.writer.write(line)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        super().close()


_installed: LogWriter | None = None


def install(fd: int, *, limit: int = DEFAULT_LIMIT, tick_s: float = DEFAULT_TICK_S) -> LogWriter:
    """The process's log writer for ``fd`` (made once; the metrics read its counts)."""
    global _installed
    if _installed is None or _installed.state is SinkState.CLOSED:
        _installed = LogWriter(fd, limit=limit, tick_s=tick_s)
    return _installed


def installed() -> LogWriter | None:
    return _installed


def flush_installed() -> None:
    """On SIGTERM: what the server logged so far reaches the sink before it stops."""
    if _installed is not None:
        _installed.flush()
