"""``--auth sigv4`` against a real server: boto3, the AWS CLI and ``lambda-scheduler invoke`` /
``load`` with the right key work; a wrong secret, an unknown key, a clock 20 minutes off, a
changed body and no signature at all get AWS's codes, as boto3 parses them; /health stays
open. And ``serve`` on an address that is not loopback refuses to start without --auth."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from scheduler.config import Credential, ServerConfig
from scheduler.errors import InvalidSignature

from .conftest import FAST_EVENTS, FUNCTIONS, MakeServer, Served, aws
from .marked import create_function_args, victim
from .serving import Server

KEY, SECRET = "AKIDLOCALTEST", "s3cr3t/with+chars"
BIN = Path(sys.executable).parent
COMMAND = str(BIN / "lambda-scheduler")


def client(url: str, key: str = KEY, secret: str = SECRET, **config: Any) -> Any:
    session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")
    return session.client(
        "lambda", endpoint_url=url, config=Config(retries={"max_attempts": 0}, read_timeout=30, **config)
    )


async def signed_server(make_server: MakeServer, tmp_path: Path, **settings: Any) -> tuple[Served, Path]:
    config, mark = victim(tmp_path)
    server_config = ServerConfig(
        code_store_dir=tmp_path / "code-store",
        auth="sigv4",
        credentials=(Credential("OTHERKEY", "other"), Credential(KEY, SECRET)),
        **FAST_EVENTS,
        **settings,
    )
    return await make_server(config, server_config=server_config), mark


async def refused(call: Any, code: str, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as exc:
        await aws(call, **kwargs)
    error = exc.value.response
    assert error["Error"]["Code"] == code, error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    return str(error["Error"]["Message"])


async def test_boto3_with_the_right_key_works(make_server: MakeServer, tmp_path: Path) -> None:
    served, mark = await signed_server(make_server, tmp_path)
    lam = client(served.url)
    response = await aws(lam.invoke, FunctionName="victim", Payload=b'{"a": 1}', LogType="Tail")
    assert json.loads(response["Payload"]) == {"ran": True} and mark.exists()
    # A path with escaped characters (an ARN) and a query string, as boto3 signs them.
    arn = "arn:aws:lambda:us-east-1:123456789012:function:victim"
    response = await aws(lam.invoke, FunctionName=arn, Qualifier="$LATEST", Payload=b"{}")
    assert response["StatusCode"] == 200
    made = tmp_path / "made.ran"
    created = await aws(lam.create_function, **create_function_args("made", made))
    assert created["FunctionName"] == "made"
    await aws(lam.invoke, FunctionName="made", Payload=b"{}")
    assert made.read_text() == "init\ninvoke\n"
    page = await aws(lam.list_functions, MaxItems=1)
    rest = await aws(lam.list_functions, Marker=page["NextMarker"], MaxItems=50)
    assert len(page["Functions"]) + len(rest["Functions"]) == 2
    # An empty-bodied DELETE, and a signed body that boto3 also hashes itself (PUT).
    await aws(lam.put_function_concurrency, FunctionName="made", ReservedConcurrentExecutions=5)
    await aws(lam.delete_function, FunctionName="made")


async def test_wrong_secret_unknown_key_and_no_signature(make_server: MakeServer, tmp_path: Path) -> None:
    served, mark = await signed_server(make_server, tmp_path)
    message = await refused(
        client(served.url, secret="wrong").invoke, "InvalidSignatureException", FunctionName="victim"
    )
    assert message == InvalidSignature.MISMATCH
    message = await refused(client(served.url, key="AKIDUNKNOWN").list_functions, "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."
    unsigned = client(served.url, signature_version=UNSIGNED)
    message = await refused(unsigned.invoke, "MissingAuthenticationTokenException", FunctionName="victim")
    assert message == "Missing Authentication Token"
    # Exceptions boto3 models for Lambda stay what they are under a signature.
    lam = client(served.url)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        await aws(lam.invoke, FunctionName="missing")
    assert not mark.exists()

    def plain(url: str) -> tuple[int, str, dict[str, Any]]:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return answer.status, "", json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["x-amzn-ErrorType"], json.loads(exc.read())

    # GET /health stays open (probes cannot sign); /metrics does not, unless asked.
    status, _, body = await asyncio.to_thread(plain, f"{served.url}/health")
    assert status == 200 and body["refused"] == {
        "InvalidSignatureException": 1,
        "UnrecognizedClientException": 1,
        "MissingAuthenticationTokenException": 1,
    }
    status, code, body = await asyncio.to_thread(plain, f"{served.url}/metrics")
    assert (status, code, body["Type"]) == (403, "MissingAuthenticationTokenException", "User")


async def test_unsigned_metrics_can_be_opened(make_server: MakeServer, tmp_path: Path) -> None:
    served, _ = await signed_server(make_server, tmp_path, unsigned_metrics=True)
    async with aiohttp.ClientSession() as session, session.get(f"{served.url}/metrics") as response:
        assert response.status == 200 and b"lambda" in await response.read()
        async with session.get(f"{served.url}/2015-03-31/functions") as listed:
            assert listed.status == 403


@pytest.mark.parametrize(("minutes", "wording"), [(-20, "Signature expired"), (20, "Signature not yet current")])
async def test_a_clock_20_minutes_off_is_refused(
    make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minutes: int, wording: str
) -> None:
    served, mark = await signed_server(make_server, tmp_path)
    off = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(minutes=minutes)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: off)
    message = await refused(client(served.url).invoke, "InvalidSignatureException", FunctionName="victim")
    stamp = r"\d{8}T\d{6}Z"
    if minutes < 0:
        assert re.fullmatch(rf"Signature expired: {stamp} is now earlier than {stamp} \({stamp} - 15 min\.\)", message)
    else:
        assert re.fullmatch(
            rf"Signature not yet current: {stamp} is still later than {stamp} \({stamp} \+ 15 min\.\)", message
        )
    assert message.startswith(f"{wording}: {off.strftime('%Y%m%dT%H%M%SZ')} ")
    assert not mark.exists()


def _signed(url: str, body: bytes, when: datetime.datetime) -> dict[str, str]:
    """Headers botocore's SigV4Auth produces for a POST, with a forged X-Amz-Date."""
    request = AWSRequest(method="POST", url=url, data=body)
    timestamp = when.strftime("%Y%m%dT%H%M%SZ")
    request.context["timestamp"] = timestamp
    request.headers["X-Amz-Date"] = timestamp
    auth = SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1")
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))}, "
        f"Signature={signature}"
    )
    return {k: v for k, v in request.headers.items()}


async def test_raw_signed_requests(make_server: MakeServer, tmp_path: Path) -> None:
    served, mark = await signed_server(make_server, tmp_path)
    url = f"{served.url}/2015-03-31/functions/victim/invocations"
    now = datetime.datetime.now(datetime.UTC)
    async with aiohttp.ClientSession() as session:

        async def post(headers: dict[str, str], body: bytes) -> tuple[int, str, dict[str, Any]]:
            async with session.post(url, headers=headers, data=body) as response:
                return response.status, response.headers.get("x-amzn-ErrorType", ""), await response.json()

        assert await post(_signed(url, b"{}", now), b"{}") == (200, "", {"ran": True})
        # Signed 20 minutes ago, sent now.
        status, code, body = await post(_signed(url, b"{}", now - datetime.timedelta(minutes=20)), b"{}")
        assert (status, code) == (403, "InvalidSignatureException") and body["message"].startswith("Signature expired:")
        # The body changed after signing.
        status, code, body = await post(_signed(url, b"{}", now), b'{"other": 1}')
        assert (status, code, body["message"]) == (403, "InvalidSignatureException", InvalidSignature.MISMATCH)
        # A declared body hash must be the body's.
        headers = {**_signed(url, b"{}", now), "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
        status, code, _ = await post(headers, b"{}")
        assert (status, code) == (403, "InvalidSignatureException")
        # A chunked body (no Content-Length) is refused before it is read.

        async def chunks() -> AsyncIterator[bytes]:
            yield b"{}"

        async with session.post(url, headers=_signed(url, b"{}", now), data=chunks()) as response:
            assert response.status == 411 and response.headers["x-amzn-ErrorType"] == "LengthRequiredException"
        # Not SigV4 at all, or missing its parts.
        status, code, _ = await post({"Authorization": "Bearer abc"}, b"{}")
        assert (status, code) == (403, "IncompleteSignatureException")
        status, code, body = await post({"Authorization": "AWS4-HMAC-SHA256 Credential=x"}, b"{}")
        assert (status, code) == (403, "IncompleteSignatureException")
        assert "requires 'SignedHeaders' parameter" in body["message"]
    assert mark.read_text() == "init\ninvoke\n"


# --- the command line: real processes ---------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_SCHEDULER_", "AWS_"))}
    return {**env, **extra}


async def _run(*args: str, env: dict[str, str], timeout: float = 40) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_clients_sign_with_credentials(make_server: MakeServer, tmp_path: Path) -> None:
    served, mark = await signed_server(make_server, tmp_path)
    invoke = (COMMAND, "invoke", "victim", "{}", "--endpoint-url", served.url)
    code, out, err = await _run(*invoke, "--credentials", f"{KEY}:{SECRET}", env=_env())
    assert (code, json.loads(out)) == (0, {"ran": True}), err
    code, out, err = await _run(*invoke, env=_env(LAMBDA_SCHEDULER_CREDENTIALS=f"{KEY}:{SECRET}"))
    assert (code, json.loads(out)) == (0, {"ran": True}), err
    code, _, err = await _run(*invoke, env=_env())
    assert code == 1 and "MissingAuthenticationTokenException" in err
    code, _, err = await _run(*invoke, "--credentials", f"{KEY}:nope", env=_env())
    assert code == 1 and "InvalidSignatureException" in err
    # The AWS CLI, with the key in the standard variables.
    aws_env = _env(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1")
    code, out, err = await _run(
        str(BIN / "aws"),
        "lambda",
        "invoke",
        "--endpoint-url",
        served.url,
        "--function-name",
        "victim",
        str(tmp_path / "out.json"),
        env=aws_env,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "out.json").read_text()) == {"ran": True}
    # The load harness signs every request.
    load = (COMMAND, "load", "--endpoint-url", served.url, "--function", "victim", "--concurrency", "2")
    code, out, err = await _run(
        *load, "--requests", "20", "--credentials", f"{KEY}:{SECRET}", "--json", "-", env=_env()
    )
    totals = json.loads(out)["totals"]
    assert (code, totals["ok"], totals["errors"]) == (0, 20, 0), err
    code, out, err = await _run(*load, "--requests", "2", "--json", "-", env=_env())
    assert code == 1 and json.loads(out)["errors"] == {"http 403 MissingAuthenticationTokenException": 2}
    assert mark.read_text().count("invoke") == 2 + 1 + 20  # invoke twice, the AWS CLI, the harness


# --- serve refuses to expose a server without authentication --------------------------------


def _template(tmp_path: Path) -> Path:
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n  Noop:\n    Type: AWS::Serverless::Function\n"
        f"    Properties: {{CodeUri: {FUNCTIONS}, Handler: basic.noop, Runtime: python3.11}}\n"
    )
    return template


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other socket holds: a server that tried to bind it would fail."""
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        yield held.getsockname()[1]


def test_serve_on_an_exposed_address_needs_auth(tmp_path: Path, busy_port: int) -> None:
    template = str(_template(tmp_path))
    # 0.0.0.0 on a port already taken, and an address this machine does not have: either bind
    # would fail, so the refusal is seen only if it comes first.
    for host, port in (("0.0.0.0", busy_port), ("192.0.2.1", 9000), ("::", busy_port)):
        done = subprocess.run(
            [COMMAND, "serve", template, "--host", host, "--port", str(port)],
            env=_env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        err = done.stderr.decode()
        assert done.returncode == 2, err
        assert f"lambda-scheduler: error: --host {host} is not a loopback address" in err
        assert "--auth sigv4" in err and "--auth none" in err and "cannot serve" not in err
    # sigv4 without credentials, and credentials without sigv4, are usage errors too.
    for args, env, message in (
        (["--auth", "sigv4"], {}, "--credentials: --auth sigv4 needs at least one KEY:SECRET"),
        ([], {"LAMBDA_SCHEDULER_CREDENTIALS": "a:b"}, "--credentials: are only checked with --auth sigv4"),
        (["--auth", "sigv4", "--credentials", "nocolon"], {}, "--credentials: cannot read (hidden)"),
        (["--auth", "maybe"], {}, "--auth: cannot read 'maybe'"),
    ):
        done = subprocess.run(
            [COMMAND, "serve", template, "--port", str(busy_port), *args],
            env=_env(**env),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2 and message in done.stderr.decode(), done.stderr.decode()


def _get(url: str, **headers: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_explicit_auth_none_serves_on_all_addresses(tmp_path: Path) -> None:
    server = Server(
        [str(_template(tmp_path)), "--host", "0.0.0.0", "--port", "0", "--auth", "none"], _env(), tmp_path / "log"
    )
    try:
        port = server.url.rsplit(":", 1)[1]
        assert server.url == f"http://0.0.0.0:{port}"
        status, body = _get(f"http://127.0.0.1:{port}/2015-03-31/functions")
        assert status == 200 and json.loads(body)["Functions"][0]["FunctionName"] == "Noop"
        # The guard still holds on all addresses: a name nobody listed is refused.
        assert _get(f"http://127.0.0.1:{port}/health", Host="attacker.example")[0] == 403
        assert server.stop() == 0
    finally:
        server.close()


def test_serve_with_sigv4_from_the_environment(tmp_path: Path) -> None:
    env = _env(LAMBDA_SCHEDULER_AUTH="sigv4", LAMBDA_SCHEDULER_CREDENTIALS=f"{KEY}:{SECRET},second:key2")
    server = Server([str(_template(tmp_path)), "--port", "0"], env, tmp_path / "log")
    try:
        assert _get(f"{server.url}/health")[0] == 200
        assert _get(f"{server.url}/2015-03-31/functions")[0] == 403
        lam = client(server.url, key="second", secret="key2")
        assert lam.invoke(FunctionName="Noop", Payload=b"{}")["StatusCode"] == 200
        assert server.stop() == 0
    finally:
        server.close()
    assert "refused a request (MissingAuthenticationTokenException GET /2015-03-31/functions)" in server.log.read_text()
