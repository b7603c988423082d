"""The three pipes between the scheduler and one environment, and the reading and writing on them.

    scheduler                                   environment
      in_w  ──── control frames (Invoke) ────►  in_r
      out_r ◄─── control frames (Ready, Response, FunctionError, OutOfMemory) ── out_w
      log_r ◄─── the handler's stdout and stderr ───────────────────────────── log_w

Frames are 4-byte length-prefixed msgpack (``protocol.FrameSplitter``). Every fd on this side is
non-blocking and read from event-loop readers: nothing polls. A write the pipe cannot take at
once (a payload above the pipe's 64 KiB buffer) is finished by a writer callback, so one slow
environment never blocks the loop. What is read goes to the channel's end — the environment —
through three calls: a frame, the channel closing or breaking, and log output.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

import msgspec

from ..errors import ProtocolError
from . import protocol
from .stops import StopReason

_decoder = msgspec.msgpack.Decoder(protocol.FromEnvironment)
# 64 KiB: a larger read makes glibc mmap and munmap its buffer on every call.
_READ_SIZE = 1 << 16
DRAIN_READS = 32  # bound on one synchronous drain, against a writer that never stops


class ChannelEnd(Protocol):
    """What the channel reports to (the environment)."""

    def on_frame(self, msg: object) -> None: ...
    def on_channel_broken(self, reason: StopReason, detail: str) -> None: ...
    def on_output(self, data: bytes) -> None: ...


class Channel:
    __slots__ = ("_end", "_in_w", "_log_r", "_loop", "_out_r", "_splitter", "_unsent")

    def __init__(self, loop: asyncio.AbstractEventLoop, end: ChannelEnd) -> None:
        self._loop = loop
        self._end = end
        self._in_w = self._out_r = self._log_r = -1
        self._splitter = protocol.FrameSplitter(_decoder)
        self._unsent: memoryview | None = None

    def open(self) -> list[int]:
        """Make the pipes and start reading. Returns the child's ends (control in, control out,
        log), which the caller closes once the zygote has them."""
        in_r, self._in_w = os.pipe()
        self._out_r, out_w = os.pipe()
        self._log_r, log_w = os.pipe()
        for fd in (self._in_w, self._out_r, self._log_r):
            os.set_blocking(fd, False)
        self._loop.add_reader(self._out_r, self.read_frames, 1, True)
        self._loop.add_reader(self._log_r, self.read_output, 1)
        return [in_r, out_w, log_w]

    # --- writing --------------------------------------------------------------------------

    def send(self, data: bytearray) -> None:
        try:
            written = os.write(self._in_w, data)
        except BlockingIOError:
            written = 0
        except OSError:
            return  # the worker is gone; its exit resolves whoever waits for a reply
        if written < len(data):
            self._unsent = memoryview(data)[written:]
            self._loop.add_writer(self._in_w, self._on_writable)

    def _on_writable(self) -> None:
        assert self._unsent is not None
        try:
            written = os.write(self._in_w, self._unsent)
        except BlockingIOError:
            return
        except OSError:
            written = len(self._unsent)
        self._unsent = self._unsent[written:]
        if not self._unsent:
            self._unsent = None
            self._loop.remove_writer(self._in_w)

    # --- reading --------------------------------------------------------------------------

    def read_frames(self, reads: int, report: bool) -> None:
        """Read up to ``reads`` chunks of frames and hand each frame over. The loop's reader
        reads once per wakeup and reports a closed or garbled channel; a drain (``report``
        false) runs after the exit is known, which explains both better than the pipe can."""
        for _ in range(reads):
            data = _read_chunk(self._out_r)
            if data is None:
                return
            if not data:
                if report:
                    self._stop_reading_frames()
                    self._end.on_channel_broken(StopReason.CONTROL_CLOSED, "")
                return
            try:
                frames = self._splitter.feed(data)
            except ProtocolError as exc:
                if report:
                    self._stop_reading_frames()
                    self._end.on_channel_broken(StopReason.PROTOCOL_ERROR, str(exc))
                return
            for msg in frames:
                self._end.on_frame(msg)

    def read_output(self, reads: int) -> None:
        """Read up to ``reads`` chunks of the worker's output and hand them over."""
        for _ in range(reads):
            data = _read_chunk(self._log_r)
            if data is None:
                return
            if not data:
                self._loop.remove_reader(self._log_r)
                return
            self._end.on_output(data)

    def _stop_reading_frames(self) -> None:
        self._loop.remove_reader(self._out_r)

    def close(self) -> None:
        for fd in (self._out_r, self._log_r):
            if fd >= 0:
                self._loop.remove_reader(fd)
        if self._unsent is not None:
            self._loop.remove_writer(self._in_w)
            self._unsent = None
        for fd in (self._in_w, self._out_r, self._log_r):
            if fd >= 0:
                os.close(fd)
        self._in_w = self._out_r = self._log_r = -1


def _read_chunk(fd: int) -> bytes | None:
    """One read of a non-blocking pipe: None when there is nothing yet (or the fd is closed on
    our side), b"" when the other end is closed or broken."""
    if fd < 0:
        return None
    try:
        return os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""
