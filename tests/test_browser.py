"""A real headless Chromium on an attacker's page: its JavaScript fetch()es CreateFunction (a zip,
text/plain, mode "no-cors" — sent without a preflight) and Invoke on the scheduler's port, and
a GET through a name rebound to 127.0.0.1. The server must see and refuse every one, and
nothing may be created or run.

The page is served from another port of 127.0.0.1 — the closest an attacker gets (same site,
no Private Network Access barrier). Skipped when Chromium is missing, unless
LAMBDA_SCHEDULER_REQUIRE_BROWSER is set (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from scheduler.config import ServerConfig

from .conftest import FAST_EVENTS, MakeServer, Served, aws
from .marked import create_function_body, victim

BROWSER_TIMEOUT_S = 30
REBOUND = "rebound.attacker.test"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.path.exists("/usr/bin/chromium"):
        found = "/usr/bin/chromium"
    if found is None:
        if os.environ.get("LAMBDA_SCHEDULER_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed and LAMBDA_SCHEDULER_REQUIRE_BROWSER is set")
        pytest.skip(
            "chromium is not installed (apt-get install chromium); set LAMBDA_SCHEDULER_REQUIRE_BROWSER to require it"
        )
    return found


ATTACK_PAGE = """<!doctype html>
<html><body><pre id="out">running</pre>
<script>
const target = %(target)s;
const rebound = %(rebound)s;
const steps = [
  ["create", target + "/2015-03-31/functions", "POST", %(create)s],
  ["invoke", target + "/2015-03-31/functions/victim/invocations", "POST", "{}"],
  ["invoke-created", target + "/2015-03-31/functions/pwned/invocations", "POST", "{}"],
  ["rebound-list", rebound + "/2015-03-31/functions", "GET", null],
];
async function attack() {
  const done = [];
  for (const [name, url, method, body] of steps) {
    const init = {method: method, mode: "no-cors"};
    if (body !== null) { init.body = body; init.headers = {"Content-Type": "text/plain"}; }
    try { const r = await fetch(url, init); done.push(name + ":" + r.type); }
    catch (e) { done.push(name + ":error " + e); }
  }
  document.getElementById("out").textContent = done.join(" ");
  await fetch("/done", {method: "POST", body: done.join(" ")});
}
attack();
</script></body></html>
"""


class Attacker:
    """The attacker's web server, on its own port of 127.0.0.1: the page, and /done, where
    the page reports what its requests came back as."""

    def __init__(self) -> None:
        self.page = ""
        self.finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_post("/done", self._done)
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def origin(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def aim(self, served: Served, pwned_mark: Path) -> None:
        port = served.url.rsplit(":", 1)[1]
        self.page = ATTACK_PAGE % {
            "target": json.dumps(served.url),
            "rebound": json.dumps(f"http://{REBOUND}:{port}"),
            "create": json.dumps(create_function_body("pwned", pwned_mark)),
        }

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page, content_type="text/html")

    async def _done(self, request: web.Request) -> web.Response:
        if not self.finished.done():
            self.finished.set_result(await request.text())
        return web.Response(text="ok")


async def _run_browser(chromium: str, url: str, finished: asyncio.Future[str]) -> tuple[str, str]:
    """Run Chromium on ``url`` until the page reports back (or the hard timeout); returns what
    the page reported and the dumped DOM. The browser and all its children are killed after."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    proc = await asyncio.create_subprocess_exec(
        chromium,
        "--headless=new",
        "--no-sandbox",  # needed as root; the page is ours
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1",  # a name rebound to the loopback
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: killed whole afterwards
    )
    try:
        reported = await asyncio.wait_for(asyncio.shield(finished), timeout=BROWSER_TIMEOUT_S)
        dom, err = await asyncio.wait_for(proc.communicate(), timeout=BROWSER_TIMEOUT_S)
        return reported, dom.decode(errors="replace") + err.decode(errors="replace")[-2000:]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.returncode is None:
            await asyncio.wait_for(proc.wait(), timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


async def _attack(make_server: MakeServer, tmp_path: Path, open_to_the_page: bool) -> tuple[Served, Path, Path]:
    """Serve the victim, point Chromium at the attacker's page; ``open_to_the_page`` allows
    the page's origin and rebound name (the control: proof the browser really sends all this)."""
    chromium = _chromium()
    config, mark = victim(tmp_path)
    pwned = tmp_path / "pwned.ran"
    attacker = Attacker()
    await attacker.server.start_server()
    try:
        settings = None
        if open_to_the_page:
            settings = ServerConfig(
                code_store_dir=tmp_path / "code-store",
                allowed_origins=(attacker.origin,),
                allowed_hosts=(REBOUND,),
                **FAST_EVENTS,
            )
        served = await make_server(config, server_config=settings)
        assert attacker.origin != served.url  # another port: another origin, the same site
        attacker.aim(served, pwned)
        reported, dom = await _run_browser(chromium, attacker.origin + "/", attacker.finished)
    finally:
        await attacker.server.close()
    # The page sent all four requests; each came back opaque (no-cors), none failed to send.
    steps = dict(item.split(":", 1) for item in reported.split())
    expected = {"create": "opaque", "invoke": "opaque", "invoke-created": "opaque", "rebound-list": "opaque"}
    assert steps == expected, (reported, dom)
    return served, mark, pwned


async def test_an_attackers_page_creates_and_runs_nothing(make_server: MakeServer, tmp_path: Path) -> None:
    served, mark, pwned = await _attack(make_server, tmp_path, open_to_the_page=False)
    # The server saw them and refused them: the three with a foreign Origin, the rebound Host.
    refused = (await asyncio.to_thread(_get_json, f"{served.url}/health"))["refused"]
    assert refused == {"origin": 3, "host": 1}, refused
    listed = await aws(served.client().list_functions)
    assert [f["FunctionName"] for f in listed["Functions"]] == ["victim"]
    assert not mark.exists() and not pwned.exists()
    assert not any(served.scheduler.functions["victim"].environments.values())  # no environment ever started


async def test_control_the_same_page_succeeds_when_its_origin_is_allowed(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """Without this, the test above could pass because the browser never sent the requests."""
    served, mark, pwned = await _attack(make_server, tmp_path, open_to_the_page=True)
    listed = await aws(served.client().list_functions)
    assert sorted(f["FunctionName"] for f in listed["Functions"]) == ["pwned", "victim"]
    assert mark.read_text() == "init\ninvoke\n" and pwned.read_text() == "init\ninvoke\n"
    refused = (await asyncio.to_thread(_get_json, f"{served.url}/health"))["refused"]
    assert refused == {}
