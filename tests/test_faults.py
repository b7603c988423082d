"""The fault matrix: each way a handler can misbehave, at Invoke and at Init. Each time only
that invocation fails, a broken environment is replaced, and the next invocation succeeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scheduler import Scheduler
from scheduler.engine.environment import EnvState

from .conftest import MakeScheduler, fn

EXIT = "Runtime.ExitError"


def _body(result) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(result.payload)


async def _pids(s: Scheduler, name: str) -> set[int]:
    return {env.pid for env in s.environments(name) if env.alive}


# --- at Invoke -----------------------------------------------------------------------------

# handler, errorType, start of errorMessage, environment replaced, REPORT error type
INVOKE_FAULTS = [
    ("faults.raise_error", "KeyError", "'action'", False, "KeyError"),
    ("faults.unserializable", "Runtime.MarshalError", "Unable to marshal response: Object of type set", False, None),
    (
        "faults.oversize",
        "Function.ResponseSizeTooLarge",
        "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        False,
        None,
    ),
    ("faults.exit_nonzero", EXIT, "RequestId: {id} Error: Runtime exited with error: exit status 3", True, None),
    ("faults.exit_zero", EXIT, "RequestId: {id} Error: Runtime exited without providing a reason", True, None),
    ("faults.sigkill_self", EXIT, "RequestId: {id} Error: Runtime exited with error: signal: killed", True, None),
    ("faults.segfault", EXIT, "RequestId: {id} Error: Runtime exited with error: signal: segmentation fault", True, None),
    ("faults.garbage", EXIT, "RequestId: {id} Error: Runtime exited with error: signal: killed", True, None),
    ("faults.bad_length", EXIT, "RequestId: {id} Error: Runtime exited with error: signal: killed", True, None),
    ("faults.fork_child_and_exit", EXIT, "RequestId: {id} Error: Runtime exited with error: exit status 5", True, None),
]


@pytest.mark.parametrize(("handler", "error_type", "message", "replaced", "report_type"), INVOKE_FAULTS)
async def test_invoke_fault(
    make_scheduler: MakeScheduler, handler: str, error_type: str, message: str, replaced: bool, report_type: str | None
) -> None:
    s = await make_scheduler(fn("bad", handler), fn("good", "faults.ok"))
    await s.invoke("good")
    first = await s.invoke("bad")
    before = await _pids(s, "bad")
    result = await s.invoke("bad")
    assert result.error_type == error_type and result.function_error == "Unhandled"
    assert result.status == "error"
    body = _body(result)
    assert body["errorType"] == error_type
    assert body["errorMessage"].startswith(message.format(id=result.request_id)), body
    assert f"Status: error\tError Type: {report_type or error_type}\n" in result.log
    if error_type == EXIT:
        assert f"{body['errorMessage']}\n{EXIT}\n" in result.log
    else:
        assert body["requestId"] == result.request_id
    assert first.error_type == error_type
    after = await _pids(s, "bad")
    assert (before.isdisjoint(after) if replaced else before == after), (before, after)
    assert result.start == ("cold" if replaced else "warm")
    # Nothing else was affected.
    assert (await s.invoke("good")).start == "warm"


async def test_unhandled_exception_payload_and_log(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("bad", "faults.raise_error"))
    result = await s.invoke("bad")
    body = _body(result)
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["stackTrace"][0].startswith('  File "') and "in raise_error" in body["stackTrace"][0]
    assert all("runtime.py" not in entry for entry in body["stackTrace"])
    record = next(line for line in result.log.split("\n") if line.startswith("[ERROR]"))
    parts = record.split("\r")
    assert parts[0] == "[ERROR] KeyError: 'action'"
    assert parts[1] == "Traceback (most recent call last):"
    assert parts[2].startswith("\u00a0\u00a0File ")  # indentation kept as no-break spaces


@pytest.mark.parametrize("handler", ["faults.hang", "faults.hang_in_c", "faults.ignore_sigterm_and_hang"])
async def test_invoke_timeout_kills_the_environment(make_scheduler: MakeScheduler, handler: str) -> None:
    s = await make_scheduler(fn("slow", handler, timeout_s=0.3), fn("good", "faults.ok"))
    await s.invoke("good")
    result = await s.invoke("slow")
    assert result.status == "timeout" and result.error_type == "Sandbox.Timedout"
    assert _body(result) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {result.request_id} Error: Task timed out after 0.30 seconds",
    }
    assert f" {result.request_id} Task timed out after 0.30 seconds\n" in result.log
    assert "Status: timeout\n" in result.log
    assert 300 <= result.duration_ms < 300 + 250
    assert result.billed_duration_ms >= 300
    # The environment was killed: nothing of that function is left running.
    env = next(iter(s.environments("slow")), None)
    if env is not None:
        await env.wait_exited()
    assert not await _pids(s, "slow")
    assert (await s.invoke("good")).start == "warm"


async def test_flooding_stdout_keeps_a_bounded_log(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("flood", "faults.flood_stdout", timeout_s=30), max_log_bytes=64 * 1024)
    result = await s.invoke("flood", {"kib": 20_000})  # 20 MB of output
    assert result.error_type is None and _body(result) == "flooded"
    assert "flood done" in result.log
    assert len(result.log) < 3 * 64 * 1024
    assert "earlier bytes of output dropped" in result.log
    again = await s.invoke("flood", {"kib": 1})
    assert again.start == "warm" and "earlier bytes" not in again.log


async def test_a_crash_fails_only_its_own_invocation(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    """Two environments of one function: one crashes mid-flight; the other's call is unharmed."""
    import asyncio

    s = await make_scheduler(fn("slow", "basic.wait_for_file"), fn("crash", "faults.sigkill_self"))
    release = tmp_path / "go"
    slow = asyncio.ensure_future(s.invoke("slow", {"path": str(release)}))
    crash = await s.invoke("crash")
    assert crash.error_type == EXIT
    release.touch()
    assert (await slow).error_type is None


# --- at Init -------------------------------------------------------------------------------

# FAULT, errorType, errorMessage start, REPORT / INIT_REPORT error type
INIT_FAULTS = [
    ("raise", "RuntimeError", "init failed on purpose"),
    ("import", "Runtime.ImportModuleError", "Unable to import module 'initfault': No module named 'module_that_does"),
    ("syntax", "Runtime.UserCodeSyntaxError", "Syntax error in module 'initfault'"),
    ("exit", EXIT, "RequestId: {id} Error: Runtime exited with error: exit status 2"),
    ("sigkill", EXIT, "RequestId: {id} Error: Runtime exited with error: signal: killed"),
    ("segfault", EXIT, "RequestId: {id} Error: Runtime exited with error: signal: segmentation fault"),
    ("garbage", EXIT, "RequestId: {id} Error: Runtime exited with error: signal: killed"),
]


@pytest.mark.parametrize(("fault", "error_type", "message"), INIT_FAULTS)
async def test_init_fault_is_retried_inside_the_invoke(
    make_scheduler: MakeScheduler, tmp_path: Path, fault: str, error_type: str, message: str
) -> None:
    counter = tmp_path / "count"
    # Both Init attempts of the first invocation fail; the third import succeeds.
    s = await make_scheduler(
        fn("init", "initfault.handler", environment={"FAULT": fault, "FAULT_COUNTER": str(counter), "FAULT_TIMES": "2"})
    )
    result = await s.invoke("init")
    assert result.error_type == error_type and result.function_error == "Unhandled"
    body = _body(result)
    assert body["errorMessage"].startswith(message.format(id=result.request_id)), body
    if error_type != EXIT:
        assert body["requestId"] == "" and body["errorType"] == error_type
    assert counter.read_text() == "xx"  # Init ran twice: once in Init, once inside the invoke
    report_type = error_type if error_type != EXIT else EXIT
    log = result.log
    first = log.index("INIT_REPORT Init Duration: ")
    start = log.index(f"START RequestId: {result.request_id}")
    second = log.index("\tPhase: invoke\tStatus: error\tError Type: " + report_type)
    assert first < start < second
    assert f"\tPhase: init\tStatus: error\tError Type: {report_type}\n" in log
    assert "Init Duration" not in log.split("REPORT RequestId")[-1]
    ok = await s.invoke("init")
    assert ok.error_type is None and ok.start == "cold"
    assert "init ran (attempt 3, fault none)" in ok.log
    assert (await s.invoke("init")).start == "warm"


async def test_init_timeout_then_retry_under_the_function_timeout(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    s = await make_scheduler(
        fn(
            "init",
            "initfault.handler",
            timeout_s=0.4,
            environment={"FAULT": "hang", "FAULT_COUNTER": str(counter), "FAULT_TIMES": "2"},
        ),
        init_timeout_s=0.3,
    )
    result = await s.invoke("init")
    assert result.status == "timeout" and result.error_type == "Sandbox.Timedout"
    assert "Task timed out after 0.40 seconds" in _body(result)["errorMessage"]
    assert "\tPhase: init\tStatus: timeout\n" in result.log
    assert "\tPhase: invoke\tStatus: timeout\n" in result.log
    assert 400 <= result.duration_ms < 700
    assert (await s.invoke("init")).error_type is None


async def test_init_succeeds_on_the_retry(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    s = await make_scheduler(
        fn("init", "initfault.handler", environment={"FAULT": "raise", "FAULT_COUNTER": str(counter), "FAULT_TIMES": "1"})
    )
    result = await s.invoke("init")
    assert result.error_type is None and result.start == "cold"
    assert "\tPhase: init\tStatus: error\tError Type: RuntimeError\n" in result.log
    assert "init ran (attempt 2, fault none)" in result.log.split("START RequestId")[1]
    assert (await s.invoke("init")).start == "warm"


async def test_flood_during_init_still_starts(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("init", "initfault.handler", environment={"FAULT": "flood"}), max_log_bytes=64 * 1024)
    result = await s.invoke("init")
    assert result.error_type is None and result.start == "cold"
    assert "init ran" in result.log and len(result.log) < 3 * 64 * 1024


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("basic.missing", "Runtime.HandlerNotFound", "Handler 'missing' missing on module 'basic'"),
        ("nomodule.handler", "Runtime.ImportModuleError", "Unable to import module 'nomodule': No module named 'nomodule'"),
        ("basic", "Runtime.MalformedHandlerName", "Bad handler 'basic'"),
        ("syntaxerror.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module 'syntaxerror'"),
        ("sys.handler", "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys as a handler module"),
    ],
)
async def test_bad_handler_settings(make_scheduler: MakeScheduler, handler: str, error_type: str, message: str) -> None:
    s = await make_scheduler(fn("h", handler))
    result = await s.invoke("h")
    assert result.error_type == error_type
    assert _body(result)["errorMessage"].startswith(message)
    assert f"[ERROR] {error_type}: {message}" in result.log


async def test_an_idle_environment_that_dies_is_replaced(make_scheduler: MakeScheduler) -> None:
    import os
    import signal

    s = await make_scheduler(fn("who", "basic.whoami"))
    first = await s.invoke("who")
    env = next(iter(s.environments("who")))
    os.kill(env.pid, signal.SIGKILL)
    await env.wait_exited()
    assert not any(s.functions["who"].environments["on_demand", st] for st in (EnvState.IDLE, EnvState.FROZEN))
    result = await s.invoke("who")
    assert result.error_type is None and result.start == "cold"
    assert json.loads(result.payload)["pid"] != json.loads(first.payload)["pid"]


async def test_stack_trace_entries_are_plain_like_the_runtimes(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("bad", "faults.raise_error"))
    entry = _body(await s.invoke("bad"))["stackTrace"][0]
    assert entry.endswith('raise KeyError("action")\n') and "^" not in entry
