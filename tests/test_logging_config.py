"""LoggingConfig and TracingConfig over the API, with boto3 and the AWS CLI: JSON application
records (extra fields, exceptions) and platform records in the LogResult tail, application and
system log levels, AWS's refusal of levels with the Text format, and trace ids."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scheduler.api.keys import EVENT_QUEUE

from .conftest import MakeServer, aws, cli_environment, until
from .test_api_functions import create_args, make_zip

APP = """
import logging
import os

log = logging.getLogger("orders")


def handler(event, context):
    log.debug("debug detail")
    log.info("order placed", extra={"orderId": 42, "items": ["a", "b"]})
    log.warning("stock low")
    print("plain print")
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
    return {name: os.environ.get(name) for name in ("AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL", "_X_AMZN_TRACE_ID")}


def fails(event, context):
    raise ValueError("boom")


def note_trace(event, context):
    with open(event["path"], "w") as f:
        f.write(os.environ.get("_X_AMZN_TRACE_ID", "none"))
"""

TRACE_ID = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1$")
TEXT_REFUSAL = (
    'LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your request or change the '
    'LogFormat to "JSON" and try again.'
)


def tail(response: dict[str, Any]) -> list[str]:
    return base64.b64decode(response["LogResult"]).decode().splitlines()


def records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_json_application_and_platform_records(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client()
    created = await aws(
        client.create_function,
        **create_args("orders", make_zip({"app.py": APP}), LoggingConfig={"LogFormat": "JSON"}),
    )
    assert created["LoggingConfig"] == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "INFO",
        "LogGroup": "/aws/lambda/orders",
    }
    await aws(client.get_waiter("function_active_v2").wait, FunctionName="orders")
    response = await aws(client.invoke, FunctionName="orders", LogType="Tail")
    assert json.loads(response["Payload"]) == {
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "_X_AMZN_TRACE_ID": None,
    }
    request_id = response["ResponseMetadata"]["RequestId"]
    lines = tail(response)
    assert "plain print" in lines  # print() is not a logging record: it stays text
    found = records(lines)
    assert [r.get("type") or r["level"] for r in found] == [
        "platform.initStart",
        "platform.start",
        "INFO",
        "WARNING",
        "ERROR",
        "platform.runtimeDone",
        "platform.report",
    ]  # no DEBUG record below the INFO level
    init, start, info, warning, error, done, report = found
    assert init["record"]["initializationType"] == "on-demand" and init["record"]["functionName"] == "orders"
    assert start["record"] == {"requestId": request_id, "version": "$LATEST"}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", start["time"])
    assert info == {
        "timestamp": info["timestamp"],
        "level": "INFO",
        "message": "order placed",
        "logger": "orders",
        "requestId": request_id,
        "orderId": 42,
        "items": ["a", "b"],
    }
    assert warning["message"] == "stock low" and "errorType" not in warning
    assert (error["errorType"], error["errorMessage"], error["message"]) == ("KeyError", "'missing'", "lookup failed")
    assert any("in handler" in frame for frame in error["stackTrace"]) and error["location"].endswith(":handler:16")
    assert done["record"]["requestId"] == request_id and done["record"]["status"] == "success"
    metrics = report["record"]["metrics"]
    assert report["record"]["status"] == "success" and report["record"]["requestId"] == request_id
    assert set(metrics) == {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"}
    assert metrics["memorySizeMB"] == 128 and metrics["billedDurationMs"] >= 1
    warm = records(tail(await aws(client.invoke, FunctionName="orders", LogType="Tail")))
    assert "initDurationMs" not in warm[-1]["record"]["metrics"] and warm[0]["type"] == "platform.start"


async def test_log_levels_filter_application_and_system_records(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client()
    code = make_zip({"app.py": APP})
    logging_config = {"LogFormat": "JSON", "ApplicationLogLevel": "ERROR", "SystemLogLevel": "WARN"}
    await aws(client.create_function, **create_args("quiet", code, LoggingConfig=logging_config))
    await aws(client.create_function, **create_args("failing", code, Handler="app.fails", LoggingConfig=logging_config))
    response = await aws(client.invoke, FunctionName="quiet", LogType="Tail")
    assert json.loads(response["Payload"])["AWS_LAMBDA_LOG_LEVEL"] == "ERROR"
    # Only the ERROR record is left: the others are below ERROR, and a successful invocation's
    # platform records (INFO) are below WARN.
    assert [r.get("level") for r in records(tail(response))] == ["ERROR"]
    failed = await aws(client.invoke, FunctionName="failing", LogType="Tail")
    assert failed["FunctionError"] == "Unhandled"
    found = records(tail(failed))
    unhandled, done, report = found
    assert (unhandled["level"], unhandled["errorType"], unhandled["errorMessage"]) == ("ERROR", "ValueError", "boom")
    assert unhandled["requestId"] == failed["ResponseMetadata"]["RequestId"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", unhandled["timestamp"])
    assert (done["type"], done["record"]["status"], done["record"]["errorType"]) == (
        "platform.runtimeDone",
        "error",
        "ValueError",
    )
    assert report["type"] == "platform.report" and report["record"]["errorType"] == "ValueError"
    # Back to Text: the levels are gone (as Lambda drops them), and the lines are text again.
    updated = await aws(client.update_function_configuration, FunctionName="quiet", LoggingConfig={"LogFormat": "Text"})
    assert updated["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": "/aws/lambda/quiet"}
    await aws(client.get_waiter("function_updated_v2").wait, FunctionName="quiet")
    text = tail(await aws(client.invoke, FunctionName="quiet", LogType="Tail"))
    assert text[0].startswith("START RequestId: ") and text[-1].startswith("REPORT RequestId: ")
    assert any(line.startswith("[WARNING]\t") and line.endswith("\tstock low") for line in text)


async def test_levels_need_the_json_format(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client(validate=False)
    code = make_zip({"app.py": APP})

    async def refused(logging_config: dict[str, str], name: str = "bad") -> dict[str, str]:
        with pytest.raises(ClientError) as exc:
            await aws(client.create_function, **create_args(name, code, LoggingConfig=logging_config))
        return exc.value.response["Error"]  # type: ignore[no-any-return]

    error = await refused({"LogFormat": "Text", "ApplicationLogLevel": "DEBUG"})
    assert error == {"Code": "InvalidParameterValueException", "Message": TEXT_REFUSAL}
    assert (await refused({"SystemLogLevel": "WARN"}))["Message"] == TEXT_REFUSAL  # Text is the default
    assert (await refused({"LogFormat": "XML"}))["Message"] == (
        "1 validation error detected: Value 'XML' at 'loggingConfig.logFormat' failed to satisfy constraint: "
        "Member must satisfy enum value set: [JSON, Text]"
    )
    assert (await refused({"LogFormat": "JSON", "ApplicationLogLevel": "LOUD"}))["Message"] == (
        "1 validation error detected: Value 'LOUD' at 'loggingConfig.applicationLogLevel' failed to satisfy "
        "constraint: Member must satisfy enum value set: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]"
    )
    assert (await refused({"LogFormat": "JSON", "LogGroup": "no spaces allowed"}))["Message"] == (
        "1 validation error detected: Value 'no spaces allowed' at 'loggingConfig.logGroup' failed to satisfy "
        r"constraint: Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+"
    )
    assert not served.scheduler.functions
    # An update that gives a level to a Text function is refused the same way.
    await aws(client.create_function, **create_args("plain", code))
    with pytest.raises(ClientError) as exc:
        await aws(client.update_function_configuration, FunctionName="plain", LoggingConfig={"SystemLogLevel": "DEBUG"})
    assert exc.value.response["Error"]["Message"] == TEXT_REFUSAL


async def test_trace_ids_generated_when_active_and_propagated(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client()
    code = make_zip({"app.py": APP})
    await aws(client.create_function, **create_args("traced", code, TracingConfig={"Mode": "Active"}))
    await aws(client.create_function, **create_args("passed", code))
    configuration = await aws(client.get_function_configuration, FunctionName="traced")
    assert configuration["TracingConfig"] == {"Mode": "Active"}
    assert (await aws(client.get_function_configuration, FunctionName="passed"))["TracingConfig"] == {
        "Mode": "PassThrough"
    }

    async def trace(name: str, header: str | None = None) -> str | None:
        def add_header(params: dict[str, Any], **_: Any) -> None:
            if header is not None:
                params["headers"]["X-Amzn-Trace-Id"] = header

        client.meta.events.register("before-call.lambda.Invoke", add_header)
        try:
            response = await aws(client.invoke, FunctionName=name)
        finally:
            client.meta.events.unregister("before-call.lambda.Invoke", add_header)
        return json.loads(response["Payload"])["_X_AMZN_TRACE_ID"]  # type: ignore[no-any-return]

    first, second = await trace("traced"), await trace("traced")
    assert first is not None and second is not None and TRACE_ID.match(first) and TRACE_ID.match(second)
    assert first != second  # a new trace for every invocation
    assert abs(int(first.split("-")[1], 16) - time.time()) < 600  # the Root's epoch seconds
    upstream = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    assert await trace("traced", upstream) == upstream
    assert await trace("passed") is None  # PassThrough starts no trace of its own
    assert await trace("passed", upstream) == upstream


async def test_event_invocations_are_traced_too(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server()
    client = served.client()
    code = make_zip({"app.py": APP})
    args = create_args("noted", code, Handler="app.note_trace", TracingConfig={"Mode": "Active"})
    await aws(client.create_function, **args)
    note = tmp_path / "trace.txt"
    accepted = await aws(
        client.invoke, FunctionName="noted", InvocationType="Event", Payload=json.dumps({"path": str(note)})
    )
    assert accepted["StatusCode"] == 202
    queue = served.app[EVENT_QUEUE]
    await until(lambda: queue.succeeded + queue.dropped == 1)
    assert queue.succeeded == 1, queue.dropped_by_reason
    assert TRACE_ID.match(note.read_text())


@pytest.mark.timeout(120)  # four AWS CLI processes on a loaded machine
async def test_aws_cli_logging_config_round_trip(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server()
    (tmp_path / "code.zip").write_bytes(make_zip({"app.py": APP}))
    env = cli_environment(tmp_path)

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "awscli", "lambda", *args, "--endpoint-url", served.url,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), 25)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    common = ["--runtime", "python3.12", "--handler", "app.handler", "--role", "arn:aws:iam::123456789012:role/x"]
    zip_arg = ["--zip-file", f"fileb://{tmp_path / 'code.zip'}"]
    code, _, stderr = await cli(
        "create-function", "--function-name", "cli-text", *common, *zip_arg,
        "--logging-config", "LogFormat=Text,ApplicationLogLevel=DEBUG",
    )  # fmt: skip
    assert code != 0
    assert (
        "An error occurred (InvalidParameterValueException) when calling the CreateFunction operation: " + TEXT_REFUSAL
    ) in stderr
    code, stdout, stderr = await cli(
        "create-function", "--function-name", "cli-json", *common, *zip_arg,
        "--logging-config", "LogFormat=JSON,ApplicationLogLevel=DEBUG,LogGroup=/custom/group",
        "--tracing-config", "Mode=Active",
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["State"] == "Pending"
    code, _, stderr = await cli("wait", "function-active-v2", "--function-name", "cli-json")
    assert code == 0, stderr
    code, stdout, _ = await cli("get-function-configuration", "--function-name", "cli-json")
    shown = json.loads(stdout)
    assert shown["LoggingConfig"] == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "DEBUG",
        "SystemLogLevel": "INFO",
        "LogGroup": "/custom/group",
    }
    assert shown["TracingConfig"] == {"Mode": "Active"} and shown["State"] == "Active"
    assert re.match(
        r"^arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}$", shown["RuntimeVersionConfig"]["RuntimeVersionArn"]
    )
