"""``--log-dir``: one file per environment under Lambda's stream names, written off the event
loop, bounded when the disk stalls, closed when the environment goes; and the scheduler's own
lifecycle log (started, reaped, killed) at the right levels."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scheduler.config import ServerConfig
from scheduler.engine.invocation import Invocation, InvocationResult
from scheduler.engine.protocol import Response
from scheduler.errors import ConfigError
from scheduler.logdir import LogDir

from .conftest import FAST_EVENTS, MakeServer, Served, fn, until, wait_provisioned

STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
COMMAND = str(Path(sys.executable).with_name("lambda-scheduler"))


def files_of(root: Path, function: str) -> dict[str, str]:
    """Stream name → text of every log file of ``function``."""
    base = root / function
    # Bytes decoded by hand: read_text() would turn the CRs of Lambda's tracebacks into newlines.
    return {str(p.relative_to(base)): p.read_bytes().decode() for p in sorted(base.rglob("*")) if p.is_file()}


def open_logs(root: Path) -> set[str]:
    """Files under ``root`` this process holds open."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root)):
            out.add(target)
    return out


async def serve_with_logs(make_server: MakeServer, tmp_path: Path, *functions: object, **settings: object) -> Served:
    config = ServerConfig(code_store_dir=tmp_path / "code", log_dir=tmp_path / "logs", **FAST_EVENTS)
    return await make_server(*functions, server_config=config, **settings)


async def test_one_file_per_environment_named_by_its_log_stream(make_server: MakeServer, tmp_path: Path) -> None:
    served = await serve_with_logs(make_server, tmp_path, fn("streams", "observed.wait_then_stream"))
    s, root, release = served.scheduler, tmp_path / "logs", tmp_path / "release"
    payload = {"path": str(release)}
    calls = [asyncio.ensure_future(s.invoke("streams", payload)) for _ in range(2)]
    await until(lambda: len(s.environments("streams")) == 2 and all(e.state.value == "busy" for e in s.environments("streams")))
    release.touch()
    results = list(await asyncio.gather(*calls))
    results += [await s.invoke("streams", payload) for _ in range(3)]
    served_by: dict[str, list[str]] = {}
    for r in results:
        served_by.setdefault(json.loads(r.payload), []).append(r.request_id)
    assert len(served_by) == 2 and all(STREAM.match(stream) for stream in served_by)

    def written() -> bool:
        files = files_of(root, "streams")
        return set(files) == set(served_by) and all(
            f.count("REPORT RequestId") == len(served_by[k]) for k, f in files.items()
        )

    await until(written)
    for stream, text in files_of(root, "streams").items():
        # Each invocation's log exactly as LogType Tail shows it (a cold start's Init output first).
        assert text == "".join(r.log for r in results if r.request_id in served_by[stream])
    # Both environments live on: both files are still open.
    assert len(open_logs(root)) == 2


async def test_crash_timeout_and_failed_init_are_filed_and_closed(make_server: MakeServer, tmp_path: Path) -> None:
    served = await serve_with_logs(
        make_server,
        tmp_path,
        fn("crash", "faults.sigkill_self"),
        fn("hangs", "faults.hang", timeout_s=0.2),
        fn("badinit", "initfault.handler", environment={"FAULT": "import"}),
    )
    root = tmp_path / "logs"
    results = {name: await served.scheduler.invoke(name) for name in ("crash", "hangs", "badinit")}

    def filed() -> bool:
        for name, result in results.items():
            files = files_of(root, name)
            if len(files) != 1 or f"REPORT RequestId: {result.request_id}" not in next(iter(files.values())):
                return False
        return True

    await until(filed)
    for name, result in results.items():
        (text,) = files_of(root, name).values()
        assert text == result.log
    (crash,) = files_of(root, "crash")
    assert STREAM.match(crash)
    assert "Error Type: Runtime.ExitError" in files_of(root, "crash")[crash]
    assert "Status: timeout" in next(iter(files_of(root, "hangs").values()))
    assert "INIT_REPORT" in next(iter(files_of(root, "badinit").values()))
    # The environments are gone: their files are closed shortly after.
    await until(lambda: not open_logs(root), timeout=5)


async def test_output_between_invocations_goes_to_the_environment_file(make_server: MakeServer, tmp_path: Path) -> None:
    # Idle environments are not frozen here, so a background thread can print while idle.
    served = await serve_with_logs(make_server, tmp_path, fn("later", "observed.print_later"), freeze_idle=False)
    result = await served.scheduler.invoke("later", {"text": "printed while idle", "delay": 0.05})
    stream = json.loads(result.payload)
    path = tmp_path / "logs" / "later" / stream
    await until(lambda: path.exists() and "printed while idle" in path.read_text())
    text = path.read_bytes().decode()
    assert text.startswith(result.log)
    assert text.index("printed while idle") > text.index(f"REPORT RequestId: {result.request_id}")
    assert "printed while idle" not in result.log


async def test_provisioned_init_output_goes_to_the_environment_file(make_server: MakeServer, tmp_path: Path) -> None:
    served = await serve_with_logs(make_server, tmp_path)
    served.scheduler.add_function(fn("warmed", "observed.stream", provisioned_concurrency=1))
    await wait_provisioned(served.scheduler, "warmed")
    stream = json.loads((await served.scheduler.invoke("warmed")).payload)
    path = tmp_path / "logs" / "warmed" / stream
    await until(lambda: path.exists() and "REPORT" in path.read_text())
    assert f"init output of {stream}" in path.read_text()


async def test_a_stalled_disk_neither_blocks_the_loop_nor_grows_without_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The log file is a FIFO nobody reads: the writer thread blocks on it like on a dead disk."""
    log_dir = LogDir(tmp_path, max_pending_bytes=4096)
    log_dir.open()
    results = [_result(f"line {i}") for i in range(200)]
    # The environment's log file is a FIFO here.
    fifo = log_dir.path_of("fn", FIXED_STREAM)
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    for result in results:
        log_dir.invocation_finished("fn", result, False)  # would hang here if it waited for the disk
    total = sum(len(r.log.encode()) for r in results)
    assert 0 < log_dir.dropped_bytes < total
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()))
    reader.start()
    await log_dir.close()
    reader.join(10)
    data = read[0].decode()
    assert len(read[0]) + log_dir.dropped_bytes == total
    kept = [r for r in results if r.request_id in data]
    assert data == "".join(r.log for r in kept)  # whole invocations, in order; none cut in two
    assert len([m for m in caplog.messages if "dropping function logs" in m]) == 1  # once, not per invocation


async def test_open_files_are_capped(tmp_path: Path) -> None:
    log_dir = LogDir(tmp_path, max_open_files=2)
    log_dir.open()
    expected: dict[str, str] = {}
    for round_ in range(3):
        for function in ("a", "b", "c", "d"):
            result = _result(f"{function} {round_}")
            log_dir.invocation_finished(function, result, False)
            expected[function] = expected.get(function, "") + result.log
    await until(lambda: {f: "".join(files_of(tmp_path, f).values()) for f in expected} == expected)
    assert len(open_logs(tmp_path)) <= 2
    await log_dir.close()
    assert not open_logs(tmp_path)


FIXED_STREAM = "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef"


def _result(text: str) -> InvocationResult:
    inv = Invocation(function_name="fn", version="$LATEST", memory_mb=128, timeout_s=3.0, payload=b"{}", invoked_arn="arn", log_limit=4096)
    inv.log_stream = FIXED_STREAM
    inv.log_start()
    inv.output.append(f"{text}\n".encode())
    return inv.finish_response(Response(inv.request_id, b"null", 1000, 20_000))


async def test_an_unusable_log_dir_is_refused_before_serving(make_server: MakeServer, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ConfigError, match="log_dir: cannot write to"):
        await make_server(fn("a", "basic.noop"), server_config=ServerConfig(log_dir=not_a_dir / "logs"))


def test_serve_names_the_flag_of_an_unusable_log_dir(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_SCHEDULER_", "AWS_"))}
    done = subprocess.run(
        [COMMAND, "serve", "--port", "0"],
        env={**env, "LAMBDA_SCHEDULER_LOG_DIR": str(not_a_dir / "logs")},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert f"--log-dir: cannot write to '{not_a_dir / 'logs'}'" in done.stderr.decode()


async def test_the_scheduler_log_says_what_it_does_with_environments(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lambda_scheduler.lifecycle")
    served = await make_server(
        fn("brief", "basic.noop"), fn("hangs", "faults.hang", timeout_s=0.2), fn("crash", "faults.sigkill_self"),
        idle_ttl_s=0.3,
    )  # fmt: skip
    s = served.scheduler
    await s.invoke("brief")
    brief = next(iter(s.environments("brief"))).pid
    await s.invoke("hangs")
    await s.invoke("crash")
    await until(lambda: not any(s.environments(n) for n in ("brief", "hangs", "crash")))
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "lambda_scheduler.lifecycle"]
    info = [text for level, text in lines if level == logging.INFO]

    def one(pattern: str, among: list[str]) -> str:
        found = [t for t in among if re.fullmatch(pattern, t)]
        assert len(found) == 1, (pattern, among)
        return found[0]

    one(rf"environment {brief} of brief started \(on-demand, Init \d+\.\d ms\)", info)
    one(rf"environment {brief} of brief \(on-demand\) reaped: idle for the idle TTL; 1 invocations in \d+\.\d s", info)
    one(r"environment \d+ of hangs \(on-demand\) killed: its invocation reached the function timeout; .*", info)
    # A crash is the engine's to report (at WARNING); this log repeats it only at DEBUG.
    assert not [t for t in info if "of crash (" in t]
    one(
        r"environment \d+ of crash \(on-demand\) gone: exited, crashed or broke the protocol; .*", [t for _, t in lines]
    )
