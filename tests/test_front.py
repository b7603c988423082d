"""api/front.py, the one middleware, against a real server: every response carries its request
id (successes, refusals, preflights, routing misses, crashes); a route's crash is a Lambda-shaped
500 naming the id that the log names too; a redirect is not an error; and the application runs
one middleware, SigV4 included."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from scheduler.api import init_app
from scheduler.config import Credential, ServerConfig

from .conftest import FAST_EVENTS, MakeScheduler, fn


async def request(method: str, url: str, **kwargs: Any) -> tuple[int, Any, dict[str, Any] | None]:
    async with aiohttp.ClientSession() as session, session.request(method, url, allow_redirects=False, **kwargs) as r:
        body = await r.read()
        return r.status, r.headers, json.loads(body) if body and r.content_type == "application/json" else None


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug in a route")


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/health")


@pytest.fixture
async def served(make_scheduler: MakeScheduler, tmp_path: Path) -> AsyncIterator[str]:
    scheduler = await make_scheduler(fn("echo", "basic.echo"))
    settings = ServerConfig(
        code_store_dir=tmp_path / "code-store", allowed_origins=("http://app.example",), **FAST_EVENTS
    )
    app = init_app(scheduler, settings)
    assert len(app.middlewares) == 1
    app.router.add_get("/test/boom", _boom)
    app.router.add_get("/test/moved", _moved)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_every_response_carries_its_request_id(served: str) -> None:
    invoke = f"{served}/2015-03-31/functions/echo/invocations"
    status, headers, body = await request("POST", invoke, data=b'{"a": 1}')
    assert status == 200 and body == {"a": 1}
    ids = {headers["x-amzn-RequestId"]}
    status, headers, body = await request("POST", invoke, data=b"{", headers={})
    assert status == 400 and headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    ids.add(headers["x-amzn-RequestId"])
    status, headers, _ = await request("POST", invoke, data=b"{}", headers={"Origin": "http://evil.example"})
    assert status == 403 and headers["x-amzn-ErrorType"] == "AccessDeniedException"
    ids.add(headers["x-amzn-RequestId"])
    status, headers, _ = await request(
        "OPTIONS", invoke, headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "http://app.example"
    ids.add(headers["x-amzn-RequestId"])
    status, headers, body = await request("GET", f"{served}/no/such/route")
    assert status == 404 and headers["x-amzn-ErrorType"] == "UnknownOperationException"
    ids.add(headers["x-amzn-RequestId"])
    status, headers, _ = await request("DELETE", invoke)
    assert status == 405 and headers["x-amzn-ErrorType"] == "UnknownOperationException"
    ids.add(headers["x-amzn-RequestId"])
    assert len(ids) == 6  # one new id per request


async def test_a_crashing_route_is_a_lambda_500_and_a_log_line(served: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="lambda_scheduler.api")
    status, headers, body = await request("GET", f"{served}/test/boom")
    assert status == 500 and headers["x-amzn-ErrorType"] == "ServiceException"
    request_id = headers["x-amzn-RequestId"]
    assert body is not None and request_id in (body.get("message") or body.get("Message"))
    [record] = [r for r in caplog.records if request_id in r.getMessage()]
    assert record.exc_info is not None and "a bug in a route" in str(record.exc_info[1])


async def test_a_redirect_is_not_an_error(served: str) -> None:
    status, headers, _ = await request("GET", f"{served}/test/moved")
    assert status == 302 and headers["Location"] == "/health"
    assert "x-amzn-ErrorType" not in headers


async def test_sigv4_is_the_same_one_middleware(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    scheduler = await make_scheduler(fn("echo", "basic.echo"))
    settings = ServerConfig(
        code_store_dir=tmp_path / "code-store",
        auth="sigv4",
        credentials=(Credential("AKIDTEST", "secret"),),
        **FAST_EVENTS,
    )
    app = init_app(scheduler, settings)
    assert len(app.middlewares) == 1
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        status, headers, _ = await request("POST", f"{url}/2015-03-31/functions/echo/invocations", data=b"{}")
        assert status == 403 and headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        assert headers["x-amzn-RequestId"]
        status, _, _ = await request("GET", f"{url}/health")  # open without a signature
        assert status == 200
    finally:
        await server.close()
