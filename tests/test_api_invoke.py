"""The Invoke API over HTTP, driven by boto3 and the AWS CLI against a real server: status codes,
headers, request ids, limits and every error shape."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from botocore.exceptions import ClientError

from .conftest import MakeServer, aws, cli_environment, fn, until

ARN = "arn:aws:lambda:us-east-1:123456789012:function"


async def test_request_response_headers_request_id_log_and_context(make_server: MakeServer) -> None:
    served = await make_server(fn("ctx", "basic.context_dump", memory_mb=256))
    client = served.client()
    client_context = {"client": {"app_title": "tests"}, "custom": {"k": "v"}, "env": {"os": "linux"}}
    response = await aws(
        client.invoke,
        FunctionName="ctx",
        Payload=b'{"hello": "world"}',
        LogType="Tail",
        ClientContext=base64.b64encode(json.dumps(client_context).encode()).decode(),
        TenantId="tenant-1",
    )
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    ctx = json.loads(response["Payload"])
    request_id = response["ResponseMetadata"]["RequestId"]
    assert ctx["aws_request_id"] == request_id
    assert ctx["client_context"] == {"custom": {"k": "v"}, "env": {"os": "linux"}, "app_title": "tests"}
    assert ctx["tenant_id"] == "tenant-1"
    assert ctx["invoked_function_arn"] == f"{ARN}:ctx"
    log = base64.b64decode(response["LogResult"]).decode()
    assert f"START RequestId: {request_id} Version: $LATEST" in log
    assert log.rstrip("\n").splitlines()[-1].startswith(f"REPORT RequestId: {request_id}\t")
    # No Tail, no log; the next request gets a new id.
    again = await aws(client.invoke, FunctionName="ctx", Payload=b"{}")
    assert "LogResult" not in again
    assert json.loads(again["Payload"])["aws_request_id"] == again["ResponseMetadata"]["RequestId"] != request_id


async def test_log_result_is_the_last_4_kb(make_server: MakeServer) -> None:
    served = await make_server(fn("flood", "faults.flood_stdout"))
    response = await aws(served.client().invoke, FunctionName="flood", Payload=b'{"kib": 20}', LogType="Tail")
    tail = base64.b64decode(response["LogResult"])
    assert len(tail) == 4096
    assert tail.endswith(b"\t\n") and b"REPORT RequestId" in tail and b"flood done" in tail


async def test_function_errors_are_200_with_unhandled(make_server: MakeServer) -> None:
    served = await make_server(fn("raises", "faults.raise_error"), fn("hangs", "faults.hang", timeout_s=0.3))
    client = served.client()
    raised = await aws(client.invoke, FunctionName="raises", Payload=b"{}")
    assert raised["StatusCode"] == 200 and raised["FunctionError"] == "Unhandled"
    error = json.loads(raised["Payload"])
    assert error["errorType"] == "KeyError" and error["requestId"] == raised["ResponseMetadata"]["RequestId"]
    timed_out = await aws(client.invoke, FunctionName="hangs", Payload=b"{}")
    assert timed_out["FunctionError"] == "Unhandled"
    assert json.loads(timed_out["Payload"]) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {timed_out['ResponseMetadata']['RequestId']} Error: Task timed out after 0.30 seconds",
    }


async def test_event_invocation_is_accepted_at_once_and_runs(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(fn("record", "api.record"))
    trace = tmp_path / "trace"
    response = await aws(
        served.client().invoke, FunctionName="record", InvocationType="Event", Payload=json.dumps({"path": str(trace)})
    )
    assert response["StatusCode"] == 202 and response["Payload"] == b""
    # Wait for a whole line: the file exists a moment before the handler has written to it.
    await until(lambda: trace.exists() and trace.read_text().endswith("\n"))
    # The handler saw the request id that the 202 carried.
    assert trace.read_text().split() == [response["ResponseMetadata"]["RequestId"]]


async def test_dry_run_checks_without_running(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client()
    response = await aws(client.invoke, FunctionName="echo", InvocationType="DryRun", Payload=b'{"a": 1}')
    assert response["StatusCode"] == 204 and response["Payload"] == b""
    assert not served.scheduler.environments("echo")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.invoke, FunctionName="nope", InvocationType="DryRun")


async def test_names_arns_and_qualifiers(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"), fn("ctx", "basic.context_dump"))
    client = served.client()
    for name, qualifier in [
        (f"{ARN}:echo", None),
        ("123456789012:function:echo", None),
        ("echo:$LATEST", None),
        ("echo", "$LATEST"),
        (f"{ARN}:echo:$LATEST", "$LATEST"),
    ]:
        kwargs = {"Qualifier": qualifier} if qualifier else {}
        response = await aws(client.invoke, FunctionName=name, Payload=b'{"n": 1}', **kwargs)
        assert json.loads(response["Payload"]) == {"n": 1}, name
    qualified = await aws(client.invoke, FunctionName="ctx", Qualifier="$LATEST")
    assert json.loads(qualified["Payload"])["invoked_function_arn"] == f"{ARN}:ctx:$LATEST"
    with pytest.raises(client.exceptions.ResourceNotFoundException) as missing_version:
        await aws(client.invoke, FunctionName="echo", Qualifier="7")
    assert missing_version.value.response["Error"]["Message"] == f"Function not found: {ARN}:echo:7"
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="derived qualifier"):
        await aws(client.invoke, FunctionName="echo:1", Qualifier="$LATEST")


async def test_unknown_function_is_resource_not_found(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client()
    for kind in ("RequestResponse", "Event"):
        with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
            await aws(client.invoke, FunctionName="nope", InvocationType=kind, Payload=b"{}")
        response = exc.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert response["Error"]["Code"] == "ResourceNotFoundException"
        assert response["Error"]["Message"] == f"Function not found: {ARN}:nope"
        assert response["Type"] == "User"
        assert len(response["ResponseMetadata"]["RequestId"]) == 36  # error responses carry an id too


async def test_throttles_are_429_with_lambda_reasons(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(
        fn("zero", "basic.echo", reserved_concurrency=0),
        fn("hold", "basic.wait_for_file"),
        account_concurrency=1,
        min_unreserved_concurrency=1,
    )
    client = served.client()
    with pytest.raises(client.exceptions.TooManyRequestsException) as reserved:
        await aws(client.invoke, FunctionName="zero", Payload=b"{}")
    assert reserved.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert reserved.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert reserved.value.response["Error"]["Message"] == "Rate Exceeded."
    # The whole account (one unreserved execution) busy: the next call is throttled.
    release = tmp_path / "release"
    held = asyncio.ensure_future(aws(client.invoke, FunctionName="hold", Payload=json.dumps({"path": str(release)})))
    await until(lambda: served.scheduler.admission.in_flight == 1)
    with pytest.raises(client.exceptions.TooManyRequestsException) as account:
        await aws(client.invoke, FunctionName="hold", Payload=json.dumps({"path": str(release)}))
    assert account.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
    release.touch()
    assert (await held)["StatusCode"] == 200


async def test_payload_limits_are_413(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"), fn("noop", "basic.noop"))
    client = served.client()
    six_mb = 6 * 1024 * 1024
    with pytest.raises(ClientError) as sync:
        await aws(client.invoke, FunctionName="echo", Payload=b'"' + b"x" * (six_mb - 1) + b'"')
    assert sync.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert sync.value.response["Error"] == {
        "Code": "RequestEntityTooLargeException",
        "Message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    }
    at_limit = b'"' + b"x" * (six_mb - 2) + b'"'
    assert (await aws(client.invoke, FunctionName="noop", Payload=at_limit))["Payload"] == b"null"
    one_mb = 1024 * 1024
    accepted = await aws(
        client.invoke, FunctionName="noop", InvocationType="Event", Payload=b'"' + b"y" * (one_mb - 2) + b'"'
    )
    assert accepted["StatusCode"] == 202
    with pytest.raises(ClientError) as event:
        await aws(client.invoke, FunctionName="noop", InvocationType="Event", Payload=b'"' + b"y" * (one_mb - 1) + b'"')
    assert event.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert event.value.response["Error"]["Message"] == (
        "1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)"
    )


async def test_chunked_body_is_capped_while_it_arrives(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'"'
        for _ in range(17):
            yield b"z" * 65536
        yield b'"'

    async with aiohttp.ClientSession() as http:
        url = f"{served.url}/2015-03-31/functions/echo/invocations"
        async with http.post(url, data=chunks(), headers={"X-Amz-Invocation-Type": "Event"}) as response:
            assert response.status == 413
            assert response.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
            assert (await response.json())["message"].startswith("1114114 byte payload is too large")
        async with http.post(url, data=chunks()) as response:
            assert response.status == 200 and len(await response.read()) == 17 * 65536 + 2


async def test_invalid_requests(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client()
    for kind in ("RequestResponse", "Event", "DryRun"):
        with pytest.raises(client.exceptions.InvalidRequestContentException) as not_json:
            await aws(client.invoke, FunctionName="echo", InvocationType=kind, Payload=b"{not json")
        assert not_json.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert not_json.value.response["Error"]["Message"].startswith("Could not parse request body into json")
    with pytest.raises(client.exceptions.InvalidRequestContentException, match="Client context must be a valid Base64"):
        await aws(client.invoke, FunctionName="echo", ClientContext="not base64!")
    with pytest.raises(client.exceptions.InvalidRequestContentException, match="Client context must be a valid Base64"):
        await aws(client.invoke, FunctionName="echo", ClientContext=base64.b64encode(b"[1, 2]").decode())
    too_long = base64.b64encode(json.dumps({"custom": {"k": "v" * 3000}}).encode()).decode()
    with pytest.raises(ClientError) as long_context:
        await aws(client.invoke, FunctionName="echo", ClientContext=too_long)
    assert long_context.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 3583" in long_context.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as bad_type:
        await aws(client.invoke, FunctionName="echo", InvocationType="Sometimes")
    assert bad_type.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "1 validation error detected: Value 'Sometimes' at 'invocationType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
    }
    with pytest.raises(ClientError, match="logType"):
        await aws(client.invoke, FunctionName="echo", LogType="Everything")
    # An empty body is an empty event, as on Lambda.
    assert (await aws(client.invoke, FunctionName="echo"))["Payload"] == b"{}"


async def test_unknown_route_and_internal_errors_have_lambda_shape(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr(served.scheduler, "invoke", broken)
        with pytest.raises(client.exceptions.ServiceException) as internal:
            await aws(client.invoke, FunctionName="echo")
    request_id = internal.value.response["ResponseMetadata"]["RequestId"]
    assert internal.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert internal.value.response["Type"] == "Service"
    assert request_id in internal.value.response["Error"]["Message"]
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
    # Once the scheduler has stopped, invocations are refused with a service error.
    await served.scheduler.stop()
    with pytest.raises(client.exceptions.ServiceException) as closed:
        await aws(client.invoke, FunctionName="echo")
    assert closed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.url}/2015-03-31/nothing-here") as response:
            assert response.status == 404
            assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
            assert response.headers["x-amzn-RequestId"]
        async with http.delete(f"{served.url}/2015-03-31/functions/echo/invocations") as response:
            assert response.status == 405
            assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"


async def test_aws_cli_invoke_end_to_end(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(fn("ctx", "basic.context_dump"))
    out = tmp_path / "out.json"
    env = cli_environment(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "awscli",
        "lambda",
        "invoke",
        "--endpoint-url",
        served.url,
        "--function-name",
        "ctx",
        "--payload",
        '{"from": "cli"}',
        "--log-type",
        "Tail",
        str(out),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    meta = json.loads(stdout)
    assert meta["StatusCode"] == 200 and meta["ExecutedVersion"] == "$LATEST"
    ctx = json.loads(out.read_text())
    assert ctx["function_name"] == "ctx"
    assert f"START RequestId: {ctx['aws_request_id']}" in base64.b64decode(meta["LogResult"]).decode()
