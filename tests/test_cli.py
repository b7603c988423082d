"""The command line: settings from flags, environment variables and defaults; and
``lambda-scheduler serve`` as a real subprocess that prints its URL, serves, and stops cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scheduler.cli import BUNDLED_TEMPLATE, SETTINGS, build_parser, configs, main

from .conftest import lambda_client
from .procs import wait_gone, zygote_family
from .serving import COMMAND, Server

SAM = Path(__file__).parent / "templates" / "sam" / "template.yaml"


def test_help_documents_every_setting_with_its_default_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for setting in SETTINGS:
        assert setting.flag in text
        assert re.search(rf"\(default: [^;]+; env: {setting.env}\)", text), setting.flag
    assert "(default: 9000; env: LAMBDA_SCHEDULER_PORT)" in text
    assert "(default: 127.0.0.1; env: LAMBDA_SCHEDULER_HOST)" in text
    assert "(default: 60,120; env: LAMBDA_SCHEDULER_EVENT_RETRY_DELAYS)" in text
    assert "LAMBDA_SCHEDULER_TEMPLATE" in text and "LAMBDA_SCHEDULER_PARAMETER_OVERRIDES" in text


def test_flags_beat_environment_beat_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_SCHEDULER_PORT", "9100")
    monkeypatch.setenv("LAMBDA_SCHEDULER_IDLE_TTL", "30")
    monkeypatch.setenv("LAMBDA_SCHEDULER_EVENT_RETRY_DELAYS", "1,2,3")
    args = build_parser().parse_args(["serve", "--idle-ttl", "45", "--preload", "json,decimal"])
    scheduler, server = configs(args)
    assert server.port == 9100 and scheduler.idle_ttl_s == 45.0
    assert server.event_retry_delays_s == (1.0, 2.0, 3.0)
    assert scheduler.preload == ("json", "decimal")
    assert server.host == "127.0.0.1" and scheduler.account_concurrency == 1000


def test_bad_settings_are_reported_by_name(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAMBDA_SCHEDULER_PORT", "lots")
    assert main(["serve"]) == 2
    assert "LAMBDA_SCHEDULER_PORT: cannot read 'lots'" in capsys.readouterr().err
    monkeypatch.delenv("LAMBDA_SCHEDULER_PORT")
    assert main(["serve", "--idle-ttl", "0"]) == 2
    assert "--idle-ttl: must be greater than 0" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port: must be between 0 and 65535" in capsys.readouterr().err


def health(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_SCHEDULER_", "AWS_"))}
    return {**env, **extra}


def test_template_errors_stop_serve_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "template.yaml"
    bad.write_text("Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties: {Runtime: python3.11}\n")
    done = subprocess.run(
        [COMMAND, "serve", str(bad), "--port", "0"], env=_clean_env(), capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert "template: resource Fn, property Handler: required" in done.stderr.decode()


@pytest.fixture
def serving() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.close()
        leftover = wait_gone(zygote_family(owner=server.process.pid), timeout=5.0)
        assert not leftover, f"processes left behind: {sorted(leftover)}"


def test_serve_the_bundled_examples_and_stop_on_sigterm(serving: list[Server], tmp_path: Path) -> None:
    assert BUNDLED_TEMPLATE.is_file()
    server = Server(["--port", "0", "--log-level", "warning"], _clean_env(), tmp_path / "stderr")
    serving.append(server)
    client = lambda_client(server.url)
    hello = client.invoke(FunctionName="hello", Payload=b'{"name": "tests"}')
    assert json.loads(hello["Payload"].read())["message"] == "Hello, tests!"
    order = client.invoke(FunctionName="orders", Payload=json.dumps({"items": [{"price_cents": 250, "qty": 2}]}))
    assert json.loads(order["Payload"].read())["subtotal"] == "5.00 EUR"
    live = client.invoke(FunctionName="orders", Qualifier="live", Payload=json.dumps({"items": [{"price_cents": 1}]}))
    assert live["ExecutedVersion"] == "1" and "FunctionError" not in live
    settings = client.get_function_configuration(FunctionName="orders")
    assert settings["Environment"]["Variables"]["TOPIC_ARN"].endswith(":dev-orders")
    assert settings["LoggingConfig"]["LogFormat"] == "JSON" and settings["TracingConfig"]["Mode"] == "Active"
    snap = client.invoke(FunctionName="snap:live", Payload=b"{}")
    assert json.loads(snap["Payload"].read())["initialization_type"] == "snap-start"
    failed = client.invoke(FunctionName="orders", Payload=b"{}")
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
    assert {f["FunctionName"] for f in client.list_functions()["Functions"]} == {"hello", "orders", "slow", "snap"}
    # SIGTERM while an invocation runs: it finishes and is answered, then the server exits.
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.invoke, FunctionName="slow", Payload=b'{"seconds": 0.5}')
        deadline = time.monotonic() + 10
        while health(server.url)["in_flight"] != 1:
            assert time.monotonic() < deadline and not pending.done()
            time.sleep(0.01)
        assert server.stop(signal.SIGTERM) == 0
        answered = pending.result(timeout=30)
    assert answered["StatusCode"] == 200 and "FunctionError" not in answered
    assert json.loads(answered["Payload"].read()) == {"slept": 0.5}
    assert "Traceback" not in server.log.read_text()


def test_serve_from_environment_settings_invoke_command_and_sigint(serving: list[Server], tmp_path: Path) -> None:
    env = _clean_env(
        LAMBDA_SCHEDULER_PORT="0",
        LAMBDA_SCHEDULER_TEMPLATE=str(SAM),
        LAMBDA_SCHEDULER_LOG_LEVEL="info",
        LAMBDA_SCHEDULER_CODE_STORE_DIR=str(tmp_path / "store"),
    )
    server = Server([], env, tmp_path / "stderr")
    serving.append(server)
    invoked = subprocess.run(
        [COMMAND, "invoke", "nested-fn", '{"text": "cli"}', "--endpoint-url", server.url, "--log-type", "Tail"],
        env=_clean_env(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["shouted"] == "CLI!"
    assert "START RequestId:" in invoked.stderr.decode()
    missing = subprocess.run(
        [COMMAND, "invoke", "nope", "--endpoint-url", server.url], capture_output=True, timeout=30, check=False
    )
    assert missing.returncode == 1 and b"ResourceNotFoundException" in missing.stderr
    assert list((tmp_path / "store").glob("lambda-scheduler-code-*"))  # the private code folder exists
    assert server.stop(signal.SIGINT) == 0
    log = server.log.read_text()
    assert "REPORT RequestId:" in log  # function logs are printed at info
    assert "Traceback" not in log
    assert list((tmp_path / "store").glob("lambda-scheduler-code-*")) == []  # removed on stop
