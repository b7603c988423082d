"""The platform's JSON records beyond a plain invocation: a failed Init, a timeout, a filtered
system level, the same records in ``--log-dir`` files; and LoggingConfig / Tracing read from
a SAM template's Globals."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import ServerConfig
from scheduler.logconfig import LogFormat, LoggingConfig, SystemLogLevel, TracingMode
from scheduler.template import load_template

from .conftest import FAST_EVENTS, MakeScheduler, MakeServer, aws, fn, until

JSON_LOGS = LoggingConfig(log_format=LogFormat.JSON)


def records(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


async def test_failed_init_and_timeout_are_platform_records(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(
        fn("broken", "initfault.handler", environment={"FAULT": "raise"}, logging=JSON_LOGS),
        fn("slow", "basic.sleep", timeout_s=0.5, logging=JSON_LOGS),
    )
    broken = await s.invoke("broken", {})
    assert broken.error_type == "RuntimeError"
    found = records(broken.log)
    kinds = [r.get("type") or r["level"] for r in found]
    # Init fails, is reported, and is tried again inside the invoke phase (as Lambda does).
    assert kinds == [
        "platform.initStart",
        "ERROR",
        "platform.initReport",
        "platform.start",
        "ERROR",
        "platform.initReport",
        "platform.runtimeDone",
        "platform.report",
    ]
    first_report = found[2]["record"]
    assert (first_report["phase"], first_report["status"], first_report["errorType"]) == (
        "init",
        "error",
        "RuntimeError",
    )
    assert found[5]["record"]["phase"] == "invoke" and found[1]["errorMessage"] == "init failed on purpose"
    assert found[-1]["record"]["status"] == "error" and "initDurationMs" not in found[-1]["record"]["metrics"]
    slow = await s.invoke("slow", {"seconds": 5})
    assert slow.error_type == "Sandbox.Timedout"
    done, report = records(slow.log)[-2:]
    assert (done["record"]["status"], done["record"]["errorType"]) == ("timeout", "Sandbox.Timedout")
    assert report["record"]["status"] == "timeout" and "Task timed out" not in slow.log  # the status says it


async def test_system_level_warn_keeps_only_failures(make_scheduler: MakeScheduler) -> None:
    quiet = LoggingConfig(log_format=LogFormat.JSON, system_log_level=SystemLogLevel.WARN)
    s = await make_scheduler(
        fn("ok", "basic.echo", logging=quiet), fn("slow", "basic.sleep", timeout_s=0.5, logging=quiet)
    )
    ok = await s.invoke("ok", {})
    assert ok.error_type is None and ok.log == ""  # every record of a success is INFO
    types = [r["type"] for r in records((await s.invoke("slow", {"seconds": 5})).log)]
    assert types == ["platform.runtimeDone", "platform.report"]


async def test_log_dir_files_and_printed_logs_hold_the_json_records(
    make_server: MakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lambda_scheduler.function")
    config = ServerConfig(code_store_dir=tmp_path / "code", log_dir=tmp_path / "logs", **FAST_EVENTS)
    served = await make_server(fn("noted", "basic.echo", logging=JSON_LOGS), server_config=config)
    response = await aws(served.client().invoke, FunctionName="noted", Payload=b'{"a": 1}', LogType="Tail")
    request_id = response["ResponseMetadata"]["RequestId"]
    folder = tmp_path / "logs" / "noted"

    def written() -> list[dict[str, Any]]:
        files = [p for p in folder.rglob("*") if p.is_file()]
        return records(files[0].read_text()) if files else []

    await until(lambda: any(r["type"] == "platform.report" for r in written()))
    assert [r["type"] for r in written()] == [
        "platform.initStart",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ]
    assert all(r["record"].get("requestId") in (None, request_id) for r in written())
    printed = [r.getMessage() for r in caplog.records if r.name == "lambda_scheduler.function"]
    assert len(printed) == 1 and records(printed[0]) == written()  # what the server prints is the same text


def test_template_logging_config_and_tracing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "template.yaml").write_text(
        """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Handler: app.handler
    CodeUri: src
    LoggingConfig:
      LogFormat: JSON
      ApplicationLogLevel: DEBUG
Resources:
  Traced:
    Type: AWS::Serverless::Function
    Properties:
      Tracing: Active
      LoggingConfig:
        SystemLogLevel: WARN
  Plain:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      Code: src
      TracingConfig: {Mode: Active}
"""
    )
    functions = {f.name: f for f in load_template(tmp_path / "template.yaml").functions}
    traced, plain = functions["Traced"], functions["Plain"]
    assert traced.logging == LoggingConfig(
        log_format=LogFormat.JSON,
        application_log_level="DEBUG",
        system_log_level=SystemLogLevel.WARN,  # type: ignore[arg-type]
    )  # the function's SystemLogLevel merged over Globals' LoggingConfig
    assert traced.tracing is TracingMode.ACTIVE and plain.tracing is TracingMode.ACTIVE
    assert plain.logging == LoggingConfig()  # AWS::Lambda::Function takes no Globals
