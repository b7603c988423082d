"""Invocations through the Python API: payloads, context, environment, logs, start types."""

from __future__ import annotations

import base64
import json
import re
import uuid

import pytest

from scheduler import FunctionNotFound, InvalidParameterValue, RequestTooLarge, SchedulerClosed

from .conftest import FUNCTIONS, MakeScheduler, fn

REPORT = re.compile(
    r"REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: (?P<duration>\d+\.\d\d) ms\t"
    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: (?P<memory>\d+) MB\t"
    r"Max Memory Used: (?P<used>\d+) MB\t(?:Init Duration: (?P<init>\d+\.\d\d) ms\t)?(?P<rest>.*)\n$"
)


async def test_echo_round_trip_and_result_fields(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("echo", "basic.echo", memory_mb=256))
    event = {"name": "world", "n": [1, 2.5, None, True], "unicode": "é"}
    cold = await s.invoke("echo", event)
    assert json.loads(cold.payload) == event
    assert cold.error_type is None and cold.function_error is None
    assert cold.start == "cold" and cold.status == "success"
    assert uuid.UUID(cold.request_id).version == 4
    assert cold.init_duration_ms is not None and cold.init_duration_ms > 0
    assert cold.memory_size_mb == 256
    assert 5 < cold.max_memory_used_mb < 256
    assert cold.billed_duration_ms >= cold.duration_ms + cold.init_duration_ms
    warm = await s.invoke("echo", b'{"raw": "bytes"}')
    assert warm.start == "warm" and warm.init_duration_ms is None
    assert json.loads(warm.payload) == {"raw": "bytes"}
    assert warm.request_id != cold.request_id


async def test_payload_forms(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("echo", "basic.echo"))
    assert (await s.invoke("echo")).payload == b"{}"  # no payload: an empty object, as Lambda
    assert json.loads((await s.invoke("echo", "[1, 2]")).payload) == [1, 2]
    assert json.loads((await s.invoke("echo", [3])).payload) == [3]
    assert (await s.invoke("echo", None)).payload == b"null"
    bad = await s.invoke("echo", b"{not json")
    assert bad.error_type == "Runtime.UnmarshalError"
    assert json.loads(bad.payload)["errorMessage"].startswith("Unable to unmarshal input:")
    with pytest.raises(RequestTooLarge):
        await s.invoke("echo", b'"' + b"x" * (6 * 1024 * 1024) + b'"')


async def test_none_bytes_and_large_response(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("noop", "basic.noop"), fn("raw", "faults.returns_bytes"), fn("big", "faults.big_but_allowed"))
    assert (await s.invoke("noop")).payload == b"null"
    assert (await s.invoke("raw")).payload == b"raw bytes"
    big = await s.invoke("big")
    assert big.error_type is None and len(big.payload) == 6 * 1024 * 1024


async def test_globals_persist_in_a_warm_environment(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("counter", "basic.counter"))
    results = [json.loads((await s.invoke("counter")).payload) for _ in range(5)]
    assert [r["calls"] for r in results] == [1, 2, 3, 4, 5]
    assert len({r["pid"] for r in results}) == 1
    assert results[0]["pid"] == results[0]["init_pid"]  # Init ran in the environment itself


async def test_context_object(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("ctx", "basic.context_dump", memory_mb=512, timeout_s=7))
    client_context = {"client": {"app_title": "tests"}, "custom": {"k": "v"}, "env": {"platform": "linux"}}
    result = await s.invoke(
        "ctx",
        {},
        client_context=json.dumps(client_context),
        cognito_identity=json.dumps({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}),
        tenant_id="tenant-7",
    )
    ctx = json.loads(result.payload)
    assert ctx["aws_request_id"] == result.request_id
    assert ctx["function_name"] == "ctx"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:ctx"
    assert ctx["memory_limit_in_mb"] == "512"  # a string, as on Lambda
    assert ctx["log_group_name"] == "/aws/lambda/ctx"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", ctx["log_stream_name"])
    assert 6000 < ctx["remaining"] <= 7000
    assert ctx["identity"] == ["id-1", "pool-1"]
    assert ctx["client_context"] == {"custom": {"k": "v"}, "env": {"platform": "linux"}, "app_title": "tests"}
    assert ctx["tenant_id"] == "tenant-7"
    plain = json.loads((await s.invoke("ctx", {}, qualifier="$LATEST")).payload)
    assert plain["client_context"] is None and plain["identity"] == [None, None]
    assert plain["invoked_function_arn"].endswith("function:ctx:$LATEST")


async def test_remaining_time_counts_down_from_the_real_deadline(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("rem", "basic.remaining", timeout_s=2))
    out = json.loads((await s.invoke("rem", {"seconds": 0.3})).payload)
    assert 1800 < out["first"] <= 2000
    assert 250 <= out["first"] - out["second"] < 600


async def test_lambda_environment_variables(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("env", "basic.environ", memory_mb=1024, environment={"MY_SETTING": "on", "LANG": "C"}))
    out = json.loads((await s.invoke("env", {}, trace_id="Root=1-5d02e5ca-0123456789abcdef01234567;Sampled=0")).payload)
    env = out["environ"]
    assert env["MY_SETTING"] == "on" and env["LANG"] == "C"
    assert env["_HANDLER"] == "basic.environ"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "env"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/env"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].endswith("]" + env["AWS_LAMBDA_LOG_STREAM_NAME"][-32:])
    assert env["LAMBDA_TASK_ROOT"] == str(FUNCTIONS) == out["cwd"]
    assert env["AWS_LAMBDA_RUNTIME_API"] and env["LAMBDA_RUNTIME_DIR"] and env["TZ"] == ":UTC"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-5d02e5ca")
    assert out["path"][0] == str(FUNCTIONS)
    # The trace id is the current request's: absent when the next one has none.
    again = json.loads((await s.invoke("env", {})).payload)["environ"]
    assert "_X_AMZN_TRACE_ID" not in again
    assert "PYTEST_CURRENT_TEST" not in again  # nothing leaks from the scheduler's environment


async def test_log_lines_in_lambda_format(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("prints", "basic.prints", memory_mb=128))
    cold = await s.invoke("prints")
    warm = await s.invoke("prints")
    for result in (cold, warm):
        lines = result.log.split("\n")
        start = lines.index(f"START RequestId: {result.request_id} Version: $LATEST")
        end = lines.index(f"END RequestId: {result.request_id}")
        body = lines[start + 1 : end]
        assert body[0] == "line one" and body[1] == "line two"
        assert body[2] == "via context.log"
        assert re.fullmatch(
            rf"\[WARNING\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{result.request_id}\ta warning with args", body[3]
        )
        assert not any("below the default level" in line for line in lines)
        report = REPORT.match(result.log.split("\n", end + 1)[end + 1] + "\n")
        assert report is not None, result.log
        assert report["id"] == result.request_id and report["memory"] == "128"
        assert report["rest"] == ""  # a success ends with the tab, no status
        assert int(report["billed"]) == result.billed_duration_ms
    assert REPORT.search(cold.log)["init"] is not None  # type: ignore[index]
    assert REPORT.search(warm.log)["init"] is None  # type: ignore[index]
    assert base64.b64encode(warm.log_tail()).decode()  # LogType=Tail material: the last 4 KB
    assert warm.log_tail().endswith(b"\t\n") and len(cold.log_tail(100)) == 100


async def test_unknown_function_and_qualifiers(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("echo", "basic.echo"))
    with pytest.raises(FunctionNotFound, match=r"function:nope$"):
        await s.invoke("nope")
    with pytest.raises(FunctionNotFound, match=r"function:echo:7$"):
        await s.invoke("echo", qualifier="7")
    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert (await s.invoke(arn, {"a": 1})).payload == b'{"a": 1}'
    assert (await s.invoke("123456789012:function:echo:$LATEST")).error_type is None
    assert (await s.invoke("echo:$LATEST", qualifier="$LATEST")).error_type is None
    with pytest.raises(InvalidParameterValue, match="derived qualifier"):
        await s.invoke("echo:$LATEST", qualifier="1")


async def test_invoke_after_stop_is_refused(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("echo", "basic.echo"))
    await s.invoke("echo")
    await s.stop()
    with pytest.raises(SchedulerClosed):
        await s.invoke("echo")


async def test_output_is_attributed_to_its_own_invocation(make_scheduler: MakeScheduler) -> None:
    import asyncio

    s = await make_scheduler(fn("mark", "basic.mark"))

    async def caller(n: int) -> None:
        for i in range(n):
            result = await s.invoke("mark", {"lines": 1 + i % 5})
            markers = [line for line in result.log.split("\n") if line.startswith("marker ")]
            assert markers == [f"marker {result.request_id} {k}" for k in range(1 + i % 5)], result.log

    await asyncio.gather(*(caller(100) for _ in range(4)))
