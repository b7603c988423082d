"""log_writer.py over real pipes: one write per loop iteration, no blocking on a stalled
reader (lines dropped and counted), everything written on close, the inherited fd untouched;
and a real server's log at --log-level info, flushed on SIGTERM, with the drop counter exported."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from scheduler import invocation_log, log_writer
from scheduler.engine.invocation import InvocationResult
from scheduler.log_writer import BatchedHandler, LogWriter, SinkState
from scheduler.metrics.logs import LogWriterCollector

F_SETPIPE_SZ = 1031
PIPE_SIZE = 4096


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def wait_for(condition: object, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_lines_of_one_iteration_are_one_write(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = LogWriter(w, tick_s=0)
    assert writer.nonblocking
    for i in range(100):
        writer.write(f"line {i}")
    assert read_all(r) == b""  # nothing written on the hot path
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert writer.batches == 1
    assert read_all(r).decode().splitlines() == [f"line {i}" for i in range(100)]
    writer.write("later")
    await wait_for(lambda: writer.batches == 2)
    assert read_all(r) == b"later\n"
    writer.close()


async def test_lines_of_one_tick_are_one_write(pipe: tuple[int, int]) -> None:
    r, w = pipe
    tick = 0.5
    writer = LogWriter(w, tick_s=tick)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(5):  # five loop iterations
        writer.write(f"line {i}")
        await asyncio.sleep(0)
    within_a_tick = loop.time() - start < tick  # not so on a machine stalled for half a second
    if within_a_tick:
        assert writer.batches == 0
    await wait_for(lambda: writer.written_lines == 5)
    if within_a_tick:
        assert writer.batches == 1
    assert read_all(r).decode().splitlines() == [f"line {i}" for i in range(5)]
    writer.close()


async def test_the_inherited_fd_stays_blocking(pipe: tuple[int, int]) -> None:
    _r, w = pipe
    writer = LogWriter(w)
    assert writer.nonblocking
    assert os.get_blocking(w)  # the parent's (the shell's) open file is not changed
    writer.close()
    assert os.get_blocking(w)


async def test_a_stalled_reader_drops_and_counts_and_the_rest_follows(pipe: tuple[int, int]) -> None:
    r, w = pipe
    fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
    writer = LogWriter(w, limit=8192, tick_s=0)  # written each iteration: the pipe fills first
    line = "x" * 99  # 100 bytes with its newline
    sent = 0
    while writer.dropped_lines == 0:  # never blocks: the loop keeps running
        writer.write(f"{sent:06d}{line}"[:99])
        sent += 1
        await asyncio.sleep(0)
        assert sent < 10_000
    assert writer.state is SinkState.STALLED
    dropped = writer.dropped_lines
    # The reader comes back: what was not dropped arrives whole and in order.
    received = b""
    while writer.state is not SinkState.OPEN or len(received) % 100:
        received += read_all(r)
        await asyncio.sleep(0.01)
    received += read_all(r)
    lines = received.decode().splitlines()
    assert len(lines) == sent - dropped
    assert all(len(text) == 99 for text in lines)
    numbers = [int(text[:6]) for text in lines]
    assert numbers == sorted(numbers)
    assert writer.written_lines == len(lines)
    # And the writer is back to batching.
    writer.write("after")
    await wait_for(lambda: writer.written_lines == len(lines) + 1)
    assert read_all(r) == b"after\n"
    writer.close()


async def test_close_writes_what_is_queued(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = LogWriter(w)
    for i in range(10):
        writer.write(f"queued {i}")
    writer.close()  # before the loop ran the flush
    assert read_all(r).decode().splitlines() == [f"queued {i}" for i in range(10)]
    assert writer.state is SinkState.CLOSED
    writer.write("after close")  # written at once, to the inherited fd
    assert read_all(r) == b"after close\n"


async def test_a_gone_reader_breaks_the_sink(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.close(r)
    writer = LogWriter(w)
    writer.write("lost")
    await wait_for(lambda: writer.state is SinkState.BROKEN)
    writer.write("lost too")
    assert writer.dropped_lines == 2
    writer.close()


async def test_lines_from_another_thread_reach_the_loop(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = LogWriter(w)
    writer.write("from the loop")  # binds the writer to this loop
    thread = threading.Thread(target=writer.write, args=("from a thread",))
    thread.start()
    thread.join(timeout=10)
    await wait_for(lambda: writer.written_lines == 2)
    assert read_all(r).decode().splitlines() == ["from the loop", "from a thread"]
    writer.close()


def test_without_a_loop_lines_are_written_at_once(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = LogWriter(w)
    writer.write("no loop")
    assert read_all(r) == b"no loop\n"
    writer.close()


def test_a_regular_file_is_written_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with open(path, "wb") as f:
        f.write(b"before\n")
        f.flush()
        writer = LogWriter(f.fileno())
        assert not writer.nonblocking
        writer.write("after")
        writer.close()
    assert path.read_bytes() == b"before\nafter\n"


async def test_handler_formats_and_shares_the_writer(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = LogWriter(w)
    one, two = BatchedHandler(writer), BatchedHandler(writer)
    one.setFormatter(logging.Formatter("one: %(message)s"))
    two.setFormatter(logging.Formatter("two: %(message)s"))
    a, b = logging.getLogger("test_log_writer.a"), logging.getLogger("test_log_writer.b")
    a.addHandler(one)
    b.addHandler(two)
    a.propagate = b.propagate = False
    a.setLevel(logging.INFO)
    b.setLevel(logging.INFO)
    try:
        a.info("first")
        b.info("second")
        a.info("third")
        await wait_for(lambda: writer.written_lines == 3)
        assert writer.batches == 1
        assert read_all(r).decode().splitlines() == ["one: first", "two: second", "one: third"]
    finally:
        a.removeHandler(one)
        b.removeHandler(two)
        one.close()
        two.close()


# --- a real server ----------------------------------------------------------------------------


def _read_until(stream: int, needle: bytes, seen: bytearray, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not in the server's stderr:\n{seen.decode(errors='replace')}"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            chunk = os.read(stream, 1 << 16)
            if not chunk:
                break
            seen += chunk
    assert needle in seen, seen.decode(errors="replace")


def test_a_server_at_info_logs_invocations_through_a_pipe_and_flushes_on_sigterm(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    print('hello from', event['n'])\n    return 1\n")
    template.write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Echo:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {Handler: app.handler, Runtime: python3.11, CodeUri: code}\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "serve", str(template), "--port", "0", "--log-level", "info"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        seen = bytearray()
        url_line = process.stdout.readline().decode()
        url = url_line.rsplit(" at ", 1)[1].strip()
        for n in range(3):
            request = urllib.request.Request(f"{url}/2015-03-31/functions/Echo/invocations", data=b'{"n": %d}' % n)
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.read() == b"1"
        err = process.stderr.fileno()
        for n in range(3):
            _read_until(err, b"hello from %d" % n, seen)
        _read_until(err, b"REPORT RequestId", seen)
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            assert b"lambda_scheduler_log_lines_dropped_total 0.0" in response.read()
        process.send_signal(signal.SIGTERM)
        _read_until(err, b"stopping: in-flight invocations get", seen)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_install_is_once_per_process(pipe: tuple[int, int]) -> None:
    before = log_writer.installed()
    if before is not None:
        pytest.skip("a writer is installed in this process already")
    _r, w = pipe
    try:
        first = log_writer.install(w)
        assert log_writer.install(w) is first
        assert log_writer.installed() is first
    finally:
        first.close()
        log_writer._installed = None


async def test_a_text_of_several_lines_counts_as_many(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = LogWriter(w)
    writer.write("START\nbody\nEND")
    await wait_for(lambda: writer.written_lines == 3)
    assert read_all(r) == b"START\nbody\nEND\n"
    writer.close()


class _Result:
    """What emit reads of an InvocationResult: its log text."""

    def __init__(self, log: str) -> None:
        self.log = log


class _CountingHandler(BatchedHandler):
    def __init__(self, writer: LogWriter) -> None:
        super().__init__(writer)
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        super().emit(record)


async def test_invocation_logs_go_to_the_writer_directly_while_it_is_alone(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = LogWriter(w)
    handler = _CountingHandler(writer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = invocation_log.log
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    invocation_log.write_directly(handler)
    captured: list[str] = []
    capture = logging.Handler()
    capture.emit = lambda record: captured.append(record.getMessage())  # type: ignore[method-assign]
    try:
        invocation_log.emit(cast(InvocationResult, _Result("START one\nEND one\n")))
        assert handler.records == 0  # no LogRecord made
        logger.addHandler(capture)  # someone else listens: records again, for both
        invocation_log.emit(cast(InvocationResult, _Result("START two\n")))
        assert handler.records == 1
        assert captured == ["START two"]
        await wait_for(lambda: writer.written_lines == 3)
        assert read_all(r) == b"START one\nEND one\nSTART two\n"
    finally:
        invocation_log.write_directly(None)
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
        writer.close()


async def test_the_metric_counts_the_installed_writers_drops(pipe: tuple[int, int]) -> None:
    if log_writer.installed() is not None:
        pytest.skip("a writer is installed in this process already")
    _r, w = pipe
    writer = log_writer.install(w, limit=10, tick_s=0)
    try:
        writer.write("fits")
        writer.write("too long to wait")  # 5 + 17 bytes > 10: dropped
        [family] = list(LogWriterCollector().collect())
        assert family.name == "lambda_scheduler_log_lines_dropped"
        assert [s.value for s in family.samples if s.name.endswith("_total")] == [1]
    finally:
        writer.close()
        log_writer._installed = None
    [family] = list(LogWriterCollector().collect())
    assert [s.value for s in family.samples if s.name.endswith("_total")] == [0]
