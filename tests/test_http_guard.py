"""The Host / Origin guard against a real server: what a browser page sends (a foreign Origin,
a rebound Host name, Sec-Fetch-Site: cross-site) is refused with a Lambda-shaped 403 before any
handler, creating and running nothing; what tools send (boto3, curl, urllib) passes; and
--allowed-hosts / --allowed-origins (with CORS) let chosen names and pages through."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scheduler.config import ServerConfig

from .conftest import FAST_EVENTS, MakeServer, Served, aws
from .marked import create_function_args, create_function_body, victim

EVIL = "http://evil.example"


def _port(served: Served) -> int:
    return int(served.url.rsplit(":", 1)[1])


async def request(
    method: str, url: str, *, headers: dict[str, str] | None = None, data: str | bytes | None = None
) -> tuple[int, Any, dict[str, Any] | None]:
    """Status, headers and JSON body (None when empty) of one raw HTTP request."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, data=data) as response,
    ):
        body = await response.read()
        return response.status, response.headers, json.loads(body) if body else None


def assert_refused(status: int, headers: Any, body: dict[str, Any] | None, *words: str) -> None:
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert headers["x-amzn-RequestId"]
    assert "Access-Control-Allow-Origin" not in headers
    assert body is not None and body["Type"] == "User"
    message = body.get("message") or body.get("Message")
    for word in words:
        assert word in message, message


async def refused_count(served: Served, reason: str) -> int:
    status, _, body = await request("GET", f"{served.url}/health")
    assert status == 200 and body is not None
    return int(body["refused"].get(reason, 0))


async def test_cross_origin_simple_posts_create_and_run_nothing(make_server: MakeServer, tmp_path: Path) -> None:
    config, mark = victim(tmp_path)
    served = await make_server(config)
    pwned = tmp_path / "pwned.ran"
    # What a page's fetch(..., {mode: "no-cors"}) sends: a "simple" request, no preflight.
    simple = {"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"}
    create = await request(
        "POST", f"{served.url}/2015-03-31/functions", headers=simple, data=create_function_body("pwned", pwned)
    )
    assert_refused(*create, "'http://evil.example'", "--allowed-origins http://evil.example")
    invoke = await request("POST", f"{served.url}/2015-03-31/functions/victim/invocations", headers=simple, data="{}")
    assert_refused(*invoke)
    listed = await aws(served.client().list_functions)
    assert [f["FunctionName"] for f in listed["Functions"]] == ["victim"]
    assert not mark.exists() and not pwned.exists()
    assert not any(served.scheduler.functions["victim"].environments.values())  # no environment ever started
    assert await refused_count(served, "origin") == 2


async def test_a_foreign_host_name_is_refused(make_server: MakeServer, tmp_path: Path) -> None:
    config, mark = victim(tmp_path)
    served = await make_server(config)
    port = _port(served)
    rebound = {"Host": f"evil.example:{port}"}
    listed = await request("GET", f"{served.url}/2015-03-31/functions", headers=rebound)
    assert_refused(*listed, f"'evil.example:{port}'", "--allowed-hosts evil.example")
    invoke = await request("POST", f"{served.url}/2015-03-31/functions/victim/invocations", headers=rebound, data="{}")
    assert_refused(*invoke)
    health = await request("GET", f"{served.url}/health", headers=rebound)
    assert_refused(*health)
    assert not mark.exists()
    # Names of this machine, and any address, on any port.
    for host in (
        f"localhost:{port}",
        "LOCALHOST",
        f"app.localhost:{port}",
        f"[::1]:{port}",
        "10.1.2.3:80",
        "127.0.0.1",
    ):
        status, _, _ = await request("GET", f"{served.url}/2015-03-31/functions", headers={"Host": host})
        assert status == 200, host
    for host in ("localhost.evil.example", "127.0.0.1.nip.io", f"evil.example.:{port}", "[::1"):
        status, _, _ = await request("GET", f"{served.url}/2015-03-31/functions", headers={"Host": host})
        assert status == 403, host
    assert await refused_count(served, "host") == 7


async def test_cross_site_fetches_without_origin_are_refused(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(victim(tmp_path)[0])
    url = f"{served.url}/2015-03-31/functions"
    # A no-cors GET carries no Origin, but Sec-Fetch-Site says another site's page sent it.
    for site in ("cross-site", "same-site"):
        assert_refused(*await request("GET", url, headers={"Sec-Fetch-Site": site}), f"Sec-Fetch-Site: {site}")
    # The user's own navigation, or a page of this origin (there is none).
    for site in ("none", "same-origin"):
        assert (await request("GET", url, headers={"Sec-Fetch-Site": site}))[0] == 200


async def test_allowed_hosts_and_origins_pass_with_cors(make_server: MakeServer, tmp_path: Path) -> None:
    config, mark = victim(tmp_path)
    app_origin = "http://app.example:3000"
    settings = ServerConfig(
        code_store_dir=tmp_path / "code-store",
        allowed_hosts=("dev.example", "*.lan.example"),
        allowed_origins=(app_origin,),
        **FAST_EVENTS,
    )
    served = await make_server(config, server_config=settings)
    port = _port(served)
    url = f"{served.url}/2015-03-31/functions/victim/invocations"
    for host in (f"dev.example:{port}", f"box.lan.example:{port}"):
        status, _, body = await request("POST", url, headers={"Host": host}, data="{}")
        assert status == 200 and body == {"ran": True}, host
    assert (await request("GET", url, headers={"Host": f"lan.example:{port}"}))[0] == 403
    # The preflight of a page of the allowed origin, then its request: answered with CORS.
    status, headers, _ = await request(
        "OPTIONS",
        url,
        headers={
            "Origin": app_origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,x-amz-date,x-amz-log-type,content-type",
        },
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == app_origin
    assert "POST" in headers["Access-Control-Allow-Methods"]
    allowed = headers["Access-Control-Allow-Headers"]
    for name in ("authorization", "x-amz-date", "x-amz-log-type", "x-amz-content-sha256", "x-amz-security-token"):
        assert name in allowed
    status, headers, body = await request("POST", url, headers={"Origin": app_origin}, data="{}")
    assert status == 200 and body == {"ran": True}
    assert headers["Access-Control-Allow-Origin"] == app_origin
    assert "x-amzn-RequestId" in headers["Access-Control-Expose-Headers"]
    assert "Origin" in headers["Vary"]
    # Errors too, so the page can read Lambda's code.
    status, headers, _ = await request(
        "POST", f"{served.url}/2015-03-31/functions/missing/invocations", headers={"Origin": app_origin}, data="{}"
    )
    assert status == 404 and headers["Access-Control-Allow-Origin"] == app_origin
    # Any other origin is still refused, preflight included, and gets no CORS header.
    assert_refused(*await request("POST", url, headers={"Origin": EVIL}, data="{}"))
    assert_refused(*await request("OPTIONS", url, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}))
    assert mark.read_text().count("invoke") == 3


async def test_no_cors_headers_unless_origins_are_configured(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(victim(tmp_path)[0])
    status, headers, _ = await request("GET", f"{served.url}/2015-03-31/functions")
    assert status == 200
    assert not [name for name in headers if name.lower().startswith("access-control-")]
    preflight = await request(
        "OPTIONS",
        f"{served.url}/2015-03-31/functions",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert_refused(*preflight)


async def test_tools_that_are_not_browsers_pass(make_server: MakeServer, tmp_path: Path) -> None:
    config, mark = victim(tmp_path)
    served = await make_server(config)
    client = served.client()
    made = tmp_path / "made.ran"
    created = await aws(client.create_function, **create_function_args("made", made))
    assert created["FunctionName"] == "made"
    response = await aws(client.invoke, FunctionName="made", Payload=b"{}")
    assert json.loads(response["Payload"]) == {"ran": True} and made.exists()

    def with_urllib() -> Any:
        call = urllib.request.Request(
            f"{served.url}/2015-03-31/functions/victim/invocations", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(call, timeout=10) as answer:
            return json.loads(answer.read())

    assert await asyncio.to_thread(with_urllib) == {"ran": True}
    curl = shutil.which("curl")
    if curl is not None:
        proc = await asyncio.create_subprocess_exec(
            curl,
            "-sS",
            "-X",
            "POST",
            "-d",
            "{}",
            f"{served.url}/2015-03-31/functions/victim/invocations",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
        assert json.loads(out) == {"ran": True}
    assert mark.read_text().count("invoke") == (2 if curl else 1)
    assert await refused_count(served, "host") == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"allowed_origins": ("*",)}, "allowed_origins: '*' would let any web page drive the server"),
        ({"allowed_origins": ("evil.example",)}, "allowed_origins: expected origins like http://localhost:3000"),
        ({"allowed_hosts": ("evil.example:80",)}, "allowed_hosts: expected host names without scheme or port"),
    ],
)
def test_bad_allow_lists_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        ServerConfig(**settings)
