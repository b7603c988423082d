"""Bounded input: bad input gets a clear Lambda-shaped error — never a 500, never a stall.

- JSON nested too deeply: 400 InvalidRequestContentException at the front door (invoke bodies,
  sync, Event and DryRun, and management bodies); a payload the environment cannot unmarshal
  fails that invocation only, with Runtime.UnmarshalError.
- ARNs of another region (404 "not reachable in this region") or account (403 AccessDenied).
- Connections: a head not sent within --header-timeout is closed (500 slowloris connections),
  while normal requests go on; connections over --max-connections are closed at once, the
  others are not disturbed; an idle keep-alive connection lasts --keepalive-timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from scheduler import cli
from scheduler.api import init_app
from scheduler.config import ServerConfig
from scheduler.connections import ConnectionGuard
from scheduler.errors import FunctionNotFound
from scheduler.server import make_runner, start_site

from .conftest import MakeScheduler, MakeServer, aws, fn, until

INVOKE = "/2015-03-31/functions/{}/invocations"
ROOT = Path(__file__).resolve().parent.parent
DEEP = 100_000


def deep_array(depth: int, closed: bool = True) -> bytes:
    return b"[" * depth + (b"]" * depth if closed else b"")


def assert_parse_error(status: int, headers: Any, body: bytes) -> None:
    assert status == 400, body[:300]
    assert headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    message = json.loads(body)["message"]
    assert message.startswith("Could not parse request body into json: "), message


# --- over-deep JSON ---------------------------------------------------------------------------


async def test_over_deep_invoke_bodies_are_400_not_500(make_server: MakeServer) -> None:
    served = await make_server(fn("noop", "basic.noop"))
    async with aiohttp.ClientSession(served.url) as http:
        for kind in ("RequestResponse", "Event", "DryRun"):
            for body in (deep_array(DEEP, closed=False), deep_array(DEEP), b'{"a": ' + deep_array(5000) + b"}"):
                headers = {"X-Amz-Invocation-Type": kind}
                async with http.post(INVOKE.format("noop"), data=body, headers=headers) as response:
                    assert_parse_error(response.status, response.headers, await response.read())
    # boto3 raises the modeled exception.
    client = served.client()
    with pytest.raises(client.exceptions.InvalidRequestContentException, match="nested too deeply"):
        await aws(client.invoke, FunctionName="noop", Payload=deep_array(DEEP))
    # Nothing was queued or run (the first run is a cold start), and the function works.
    result = await served.scheduler.invoke("noop", b"{}")
    assert result.error_type is None and result.start == "cold"


async def test_over_deep_management_bodies_are_400(make_server: MakeServer) -> None:
    served = await make_server(fn("noop", "basic.noop"))
    deep = deep_array(DEEP, closed=False)
    async with aiohttp.ClientSession(served.url) as http:
        requests = [
            ("PUT", "/2015-03-31/functions/noop/configuration", deep),
            ("PUT", "/2015-03-31/functions/noop/configuration", b'{"Environment": ' + deep_array(5000) + b"}"),
            ("PUT", "/2017-10-31/functions/noop/concurrency", deep_array(5000, closed=False)),  # 64 KB limit
            ("PUT", "/2019-09-25/functions/noop/event-invoke-config", deep_array(5000)),
            ("POST", "/2015-03-31/functions", deep),
            ("POST", "/2015-03-31/functions", b'{"FunctionName": "x", "Tags": ' + deep_array(5000) + b"}"),
            ("POST", "/2015-03-31/functions", b'{"Code": {"ZipFile": "UEsFBg==", "x": ' + deep_array(DEEP) + b"}}"),
            ("PUT", "/2015-03-31/functions/noop/code", deep),
        ]
        for method, path, body in requests:
            async with http.request(method, path, data=body) as response:
                assert_parse_error(response.status, response.headers, await response.read())


async def test_payload_the_environment_cannot_unmarshal_is_an_unmarshal_error(make_server: MakeServer) -> None:
    """The front door parses with msgspec, the environment with json, both under Python's
    recursion limit: a depth one accepts and the other refuses gets a clear result either way,
    and only that invocation fails."""
    served = await make_server(fn("noop", "basic.noop"))
    # Straight to the environment (the Python API does not parse the payload).
    result = await served.scheduler.invoke("noop", deep_array(5000))
    assert result.error_type == "Runtime.UnmarshalError"
    error = json.loads(result.payload)
    assert error["errorType"] == "Runtime.UnmarshalError"
    assert error["errorMessage"].startswith("Unable to unmarshal input: maximum recursion depth exceeded")
    again = await served.scheduler.invoke("noop", b"{}")
    assert again.error_type is None and again.start == "warm"  # the environment was kept
    # Over HTTP, every depth near the limits is answered 200 (run, or Runtime.UnmarshalError)
    # or 400; never 500.
    seen: dict[int, str] = {}
    async with aiohttp.ClientSession(served.url) as http:
        for depth in (100, 500, 900, 950, 970, 980, 990, 1000, 1100):
            async with http.post(INVOKE.format("noop"), data=deep_array(depth)) as response:
                body = await response.read()
                if response.status == 200:
                    seen[depth] = response.headers.get("X-Amz-Function-Error") and json.loads(body)["errorType"] or "ok"
                else:
                    assert_parse_error(response.status, response.headers, body)
                    seen[depth] = "400"
    assert seen[100] == seen[500] == seen[900] == "ok"
    assert seen[1100] == "400"
    assert set(seen.values()) <= {"ok", "Runtime.UnmarshalError", "400"}, seen


# --- ARNs of another region or account ----------------------------------------------------------


async def test_arn_of_another_region_or_account_is_refused(make_server: MakeServer) -> None:
    served = await make_server(fn("hello", "basic.noop"))
    client = served.client()
    local = "arn:aws:lambda:us-east-1:123456789012:function:hello"
    assert (await aws(client.invoke, FunctionName=local, Payload=b"{}"))["StatusCode"] == 200
    assert (await aws(client.invoke, FunctionName="123456789012:function:hello", Payload=b"{}"))["StatusCode"] == 200

    other_region = "arn:aws:lambda:eu-west-1:123456789012:function:hello"
    message = "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')"
    for invocation_type in ("RequestResponse", "Event", "DryRun"):
        with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
            await aws(client.invoke, FunctionName=other_region, Payload=b"{}", InvocationType=invocation_type)
        assert raised.value.response["Error"]["Message"] == message
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="not reachable in this region"):
        await aws(client.get_function, FunctionName=other_region)
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="not reachable in this region"):
        await aws(client.put_function_concurrency, FunctionName=other_region, ReservedConcurrentExecutions=1)

    for other_account in (
        "arn:aws:lambda:us-east-1:999999999999:function:hello",
        "999999999999:function:hello",
        "arn:aws:lambda:us-east-1:999999999999:function:hello:$LATEST",
    ):
        with pytest.raises(ClientError) as denied:
            await aws(client.invoke, FunctionName=other_account, Payload=b"{}")
        error = denied.value.response["Error"]
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert error["Code"] == "AccessDeniedException"
        assert error["Message"].startswith("User: arn:aws:iam::123456789012:root is not authorized to perform: ")
        assert (
            "lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:999999999999:function:hello"
            in (error["Message"])
        )
    with pytest.raises(ClientError, match="lambda:GetFunctionConfiguration on resource") as denied:
        await aws(client.get_function_configuration, FunctionName="999999999999:function:hello")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError, match="lambda:DeleteFunction on resource"):
        await aws(client.delete_function, FunctionName="arn:aws:lambda:us-east-1:999999999999:function:hello")
    with pytest.raises(ClientError, match="lambda:CreateFunction on resource"):
        await aws(
            client.create_function,
            FunctionName="arn:aws:lambda:us-east-1:999999999999:function:new",
            Runtime="python3.12",
            Role="arn:aws:iam::123456789012:role/r",
            Handler="app.handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
        )
    assert "new" not in served.scheduler.functions and "hello" in served.scheduler.functions
    # The Python API refuses them too (a FunctionNotFound, as for a missing function).
    with pytest.raises(FunctionNotFound, match="not reachable in this region"):
        await served.scheduler.invoke(other_region, b"{}")


# --- connections: header deadline, keep-alive, cap -----------------------------------------------

Started = tuple[str, int, ConnectionGuard]


@pytest.fixture
async def start_guarded(
    make_scheduler: MakeScheduler, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """Serve through scheduler.server's own runner and site (where the limits are applied)."""
    runners = []

    async def start(**settings: Any) -> Started:
        scheduler = await make_scheduler(fn("noop", "basic.noop"))
        config = ServerConfig(port=0, code_store_dir=tmp_path / "code-store", **settings)
        runner = make_runner(init_app(scheduler, config), config, shutdown_timeout=2.0)
        runners.append(runner)
        guard = await start_site(runner, config)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}", port, guard

    yield start
    for runner in runners:
        await runner.cleanup()


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str = "/health") -> int:
    """One keep-alive GET on a raw connection; its status."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await asyncio.wait_for(reader.readexactly(length), 5)
    return int(lines[0].split()[1])


async def _closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), timeout) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_slow_headers_are_cut_off_while_requests_go_on(
    start_guarded: Callable[..., Awaitable[Started]],
) -> None:
    url, port, guard = await start_guarded(header_timeout_s=1.5, keepalive_timeout_s=30.0)
    # A client that completed a request keeps its idle connection past the header deadline.
    kept = await asyncio.open_connection("127.0.0.1", port)
    assert await _request(*kept) == 200

    started = time.monotonic()
    slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(500)]
    for _, writer in slow:
        writer.write(b"POST /2015-03-31/functions/noop/invoc")  # half a request line, then nothing
    await until(lambda: guard.open >= 501)
    # Meanwhile normal invocations are served at once.
    async with aiohttp.ClientSession(url) as http:
        for _ in range(5):
            t = time.monotonic()
            async with http.post(INVOKE.format("noop"), data=b"{}") as response:
                assert response.status == 200
            assert time.monotonic() - t < 1.0
    assert time.monotonic() - started < 1.4  # all of that before the deadline
    closed = await asyncio.gather(*(_closed_within(reader, 5.0) for reader, _ in slow))
    elapsed = time.monotonic() - started
    assert all(closed), f"{closed.count(False)} slow connections still open"
    assert 1.4 <= elapsed < 5.0, elapsed
    assert guard.timed_out == 500
    for _, writer in slow:
        writer.close()
    await asyncio.sleep(1.0)  # past the deadline of the connection that sent a request
    assert await _request(*kept) == 200
    kept[1].close()
    await until(lambda: guard.open == 0)


async def test_idle_keep_alive_connections_close_after_keepalive_timeout(
    start_guarded: Callable[..., Awaitable[Started]],
) -> None:
    _, port, guard = await start_guarded(header_timeout_s=10.0, keepalive_timeout_s=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _request(reader, writer) == 200
    t = time.monotonic()
    assert await _closed_within(reader, 5.0)
    assert 0.8 <= time.monotonic() - t < 4.0
    writer.close()
    # Part of the next head does not extend it either.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _request(reader, writer) == 200
    writer.write(b"GET /hea")
    t = time.monotonic()
    assert await _closed_within(reader, 5.0)
    assert time.monotonic() - t < 4.0
    writer.close()
    await until(lambda: guard.open == 0)


async def test_connections_over_the_cap_are_closed_at_once(start_guarded: Callable[..., Awaitable[Started]]) -> None:
    url, port, guard = await start_guarded(header_timeout_s=30.0, max_connections=20)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    await until(lambda: guard.open == 20)
    extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    t = time.monotonic()
    assert all(await asyncio.gather(*(_closed_within(reader, 3.0) for reader, _ in extra)))
    assert time.monotonic() - t < 2.0
    assert guard.refused == 5 and guard.open == 20
    # The connections within the cap are untouched and work.
    statuses = await asyncio.gather(*(_request(reader, writer) for reader, writer in held))
    assert statuses == [200] * 20
    # Closing some makes room again.
    for _, writer in held[:3]:
        writer.close()
    await until(lambda: guard.open == 17)
    async with aiohttp.ClientSession(url) as http, http.post(INVOKE.format("noop"), data=b"{}") as response:
        assert response.status == 200
    for _, writer in held[3:] + extra:
        writer.close()


def test_connection_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = ServerConfig()
    assert (defaults.header_timeout_s, defaults.keepalive_timeout_s, defaults.max_connections) == (10.0, 75.0, 1024)
    parser = cli.build_parser()
    args = parser.parse_args(["serve", "--header-timeout", "2.5", "--max-connections", "64"])
    monkeypatch.setenv("LAMBDA_SCHEDULER_KEEPALIVE_TIMEOUT", "20")
    monkeypatch.setenv("LAMBDA_SCHEDULER_MAX_CONNECTIONS", "9")  # the flag wins
    _, server = cli.configs(args)
    assert (server.header_timeout_s, server.keepalive_timeout_s, server.max_connections) == (2.5, 20.0, 64)
    for flag, value in (("--header-timeout", "0"), ("--max-connections", "0"), ("--keepalive-timeout", "-1")):
        with pytest.raises(cli.UsageError, match=flag):
            cli.configs(parser.parse_args(["serve", flag, value]))
    help_text = parser._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for env in (
        "LAMBDA_SCHEDULER_HEADER_TIMEOUT",
        "LAMBDA_SCHEDULER_KEEPALIVE_TIMEOUT",
        "LAMBDA_SCHEDULER_MAX_CONNECTIONS",
    ):
        assert env in help_text.replace("\n", "").replace(" ", "")


# --- code uploads: off the event loop, one at a time ------------------------------------------

UPLOADER = r"""
import base64, concurrent.futures, io, json, os, sys, urllib.error, urllib.request, zipfile
url, count = sys.argv[1], int(sys.argv[2])
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
    archive.writestr("app.py", "def handler(event, context):\n    return {'uploaded': True}\n")
    archive.writestr("blob.bin", os.urandom(48 * 1024 * 1024 - 4096))  # incompressible
encoded = base64.b64encode(buffer.getvalue())
bodies = [
    b'{"FunctionName": "up%d", "Runtime": "python3.11", "Role": "arn:aws:iam::123456789012:role/r", '
    b'"Handler": "app.handler", "Code": {"ZipFile": "%s"}}' % (i, encoded)
    for i in range(count)
]
print("ready", flush=True)
sys.stdin.readline()
def send(body):
    request = urllib.request.Request(url + "/2015-03-31/functions", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
with concurrent.futures.ThreadPoolExecutor(count) as pool:
    print(json.dumps(list(pool.map(send, bodies))), flush=True)
"""

TEMPLATE = """Resources:
  Noop:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: noop
      Runtime: python3.11
      CodeUri: code/
      Handler: app.noop
      MemorySize: 1769
"""


def _memory_kb(pid: int) -> dict[str, int]:
    fields = (line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(value.split()[0]) for key, value in fields if key in ("VmRSS", "VmHWM")}


async def test_big_uploads_do_not_stall_invocations(tmp_path: Path) -> None:
    """Four concurrent ~48 MB CreateFunction uploads (67 MB requests) while warm no-op
    invocations run back to back: no invocation waits long, the server's memory stays about
    one request body over its baseline, and every upload is a working function. The uploads
    come from another process, so their encoding does not stall this test's loop."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text("def noop(event, context):\n    return {}\n")
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scheduler", "serve", str(tmp_path / "template.yaml"), "--port", "0",
        "--log-level", "warning", "--code-store-dir", str(tmp_path / "store"),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    uploader: asyncio.subprocess.Process | None = None
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        url = line.split(" at ", 1)[1].split()[0]
        uploader = await asyncio.create_subprocess_exec(
            sys.executable, "-c", UPLOADER, url, "4", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert uploader.stdin is not None and uploader.stdout is not None
        assert await asyncio.wait_for(uploader.stdout.readline(), 30) == b"ready\n"
        latencies: list[float] = []
        async with aiohttp.ClientSession(url) as http:

            async def invoke() -> None:
                started = time.perf_counter()
                async with http.post(INVOKE.format("noop"), data=b"{}") as response:
                    assert response.status == 200 and await response.read() == b"{}"
                latencies.append(time.perf_counter() - started)

            for _ in range(20):
                await invoke()
            latencies.clear()
            before = _memory_kb(server.pid)
            uploader.stdin.write(b"go\n")
            finished = asyncio.ensure_future(uploader.stdout.readline())
            while not finished.done():
                await invoke()
            statuses = json.loads(await finished)
            after = _memory_kb(server.pid)
            assert statuses == [201] * 4
            for i in range(4):
                async with http.post(INVOKE.format(f"up{i}"), data=b"{}") as response:
                    assert response.status == 200 and json.loads(await response.read()) == {"uploaded": True}
        latencies.sort()
        worst_ms, p99_ms = 1000 * latencies[-1], 1000 * latencies[int(0.99 * len(latencies))]
        grown_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
        print(f"\n{len(latencies)} invocations during the uploads: max {worst_ms:.1f} ms, p99 {p99_ms:.1f} ms; "
              f"server peak RSS {before['VmHWM'] / 1024:.0f} -> {after['VmHWM'] / 1024:.0f} MB")  # fmt: skip
        assert len(latencies) > 50
        assert worst_ms < 300, f"an invocation waited {worst_ms:.0f} ms behind the uploads"
        # About one 67 MB body at a time (4 at once, before: 834 MB peak).
        assert grown_mb < 250, f"the server's peak RSS grew by {grown_mb:.0f} MB"
        assert after["VmRSS"] - before["VmRSS"] < 100 * 1024  # and is given back
    finally:
        for proc in (uploader, server):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 20)


def _zip(size: int) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {'ok': True}\n")
        archive.writestr("blob.bin", os.urandom(size))
    return buffer.getvalue()


def _create_body(name: str, zip_text: str) -> bytes:
    note = "d" * 70_000  # a tag value: Lambda bounds Description to 256 characters
    return (
        f'{{"FunctionName": "{name}", "Runtime": "python3.11", "Role": "arn:aws:iam::123456789012:role/r", '
        f'"Handler": "app.handler", "Tags": {{"note": "{note}"}}, "Code": {{"ZipFile": {zip_text}}}}}'
    ).encode()


async def test_uploads_parse_like_json_and_refuse_bad_base64(make_server: MakeServer) -> None:
    import base64

    served = await make_server()
    async with aiohttp.ClientSession(served.url) as http:

        async def create(body: bytes) -> tuple[int, str, dict[str, Any]]:
            async with http.post("/2015-03-31/functions", data=body) as response:
                return response.status, response.headers.get("x-amzn-ErrorType", ""), json.loads(await response.read())

        # A writer that escapes "/" as "\/" (valid JSON), on a long ZipFile and a short one.
        for name, size in (("long", 300_000), ("short", 1000)):
            text = json.dumps(base64.b64encode(_zip(size)).decode()).replace("/", "\\/")
            assert "\\/" in text
            status, _, body = await create(_create_body(name, text))
            assert status == 201, body
            async with http.get(f"/2015-03-31/functions/{name}") as response:
                tags = json.loads(await response.read())["Tags"]
            assert tags == {"note": "d" * 70_000}  # a long string besides the ZipFile: parsed as usual
            result = await served.scheduler.invoke(name, b"{}")
            assert json.loads(result.payload) == {"ok": True}
        bad = [
            '"' + "A" * (262_144 - 4) + "QQ==" + "QUJD" * 1000 + '"',  # padding inside the text
            '"' + base64.b64encode(_zip(100_000)).decode()[:-1] + '"',  # truncated
            '"' + "QUJD" * 30_000 + "!" + '"',  # not base64
            "12345",  # not a string
        ]
        for number, text in enumerate(bad):
            status, code, body = await create(_create_body(f"bad{number}", text).replace(b"d" * 70_000, b"x"))
            assert (status, code) == (400, "InvalidParameterValueException"), body
            assert body["message"] in ("ZipFile must be the base64 text of a zip archive.",) or body[
                "message"
            ].startswith("Could not unzip uploaded file"), body
    assert not [name for name in served.scheduler.functions if name.startswith("bad")]


async def test_a_stalled_upload_body_is_refused_and_frees_the_slot(
    make_scheduler: MakeScheduler, tmp_path: Path
) -> None:
    import base64

    scheduler = await make_scheduler()
    config = ServerConfig(port=0, code_store_dir=tmp_path / "code-store", header_timeout_s=0.5)
    runner = make_runner(init_app(scheduler, config), config, shutdown_timeout=2.0)
    try:
        await start_site(runner, config)
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /2015-03-31/functions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
            b'{"FunctionName": "stalled", "Code": {"ZipFile": "QUJD'
        )
        started = time.monotonic()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
        assert head.startswith("HTTP/1.1 408 ") and "x-amzn-ErrorType: RequestTimeoutException" in head, head
        assert 0.4 <= time.monotonic() - started < 3
        writer.close()
        # The upload slot is free again: the next upload goes through.
        body = _create_body("next", json.dumps(base64.b64encode(_zip(1000)).decode())).replace(b"d" * 70_000, b"x")
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
            http.post("/2015-03-31/functions", data=body) as response,
        ):
            assert response.status == 201, await response.text()
    finally:
        await runner.cleanup()
