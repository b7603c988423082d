"""The Grafana dashboard and the Prometheus rules, checked against a real Prometheus.

A server runs a short mixed load; a Prometheus (Debian's ``prometheus`` package) started on
an ephemeral port scrapes it every second with the shipped configuration and rules; then
every PromQL expression in the dashboard must return at least one series through
Prometheus's HTTP API, and every rule must evaluate cleanly. ``promtool`` checks and
unit-tests the rules. Without Prometheus installed these tests are skipped with a message,
unless LAMBDA_SCHEDULER_REQUIRE_PROMETHEUS=1 (as the CI sets), which makes them fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from scheduler.errors import Throttled

from .conftest import MakeServer, Served, fn

GRAFANA = Path(__file__).resolve().parent.parent / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "lambda-scheduler.json"
PROMETHEUS_DIR = GRAFANA / "prometheus"
REQUIRED = os.environ.get("LAMBDA_SCHEDULER_REQUIRE_PROMETHEUS") == "1"

# What Grafana puts in place of its variables when the dashboard shows every function.
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$function": ".*", "$node": ".*"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = (
            f"{name} is not installed: this test needs Debian's `prometheus` package "
            "(`apt-get install prometheus`; `make test` installs it when run as root)"
        )
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables filled in) for every query."""
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {target['expr']}"
            out.append((panel["title"], expr))
    return out


def test_dashboard_is_well_formed_and_matches_the_provisioning() -> None:
    dashboard = load_dashboard()
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert variables["datasource"]["current"]["value"] == source["uid"]
    assert variables["function"]["definition"] == "label_values(lambda_concurrent_executions, function)"
    # The compose file mounts the dashboards where the provider looks, and Grafana finds
    # Prometheus where the compose file puts it.
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "lambda-scheduler.yml").read_text())
    compose = yaml.safe_load((GRAFANA / "docker-compose.yml").read_text())["services"]
    assert f"./dashboards:{providers['providers'][0]['options']['path']}:ro" in compose["grafana"]["volumes"]
    assert "--web.listen-address=127.0.0.1:9090" in compose["prometheus"]["command"]
    assert source["url"] == "http://127.0.0.1:9090"
    assert len(queries(dashboard)) >= 30


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = tool("promtool")
    for args in (
        ["check", "rules", "rules.yml"],
        ["test", "rules", "rules_test.yml"],
        ["check", "config", "prometheus.yml"],
    ):
        done = subprocess.run(
            [promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
        assert "SUCCESS" in done.stdout + done.stderr


# --- a real Prometheus against a real server ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prometheus_config(target: str, rules: Path) -> dict[str, Any]:
    """The shipped prometheus.yml, scraping ``target`` every second."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    return config


def _start(binary: str, config: Path, home: Path, address: str) -> subprocess.Popen[bytes]:
    with open(home / "prometheus.log", "wb") as output:
        return subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address={address}",
             "--log.level=warn"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def prometheus(target: str) -> AsyncIterator[str]:
    """Prometheus scraping ``target``, in a temp dir; killed by pid and removed afterwards."""
    binary = tool("prometheus")
    home = Path(tempfile.mkdtemp(prefix="lambda-scheduler-prometheus-"))
    config = home / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(target, PROMETHEUS_DIR / "rules.yml")))
    address = f"127.0.0.1:{free_port()}"
    process = _start(binary, config, home, address)
    try:
        url = f"http://{address}"
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                assert process.poll() is None, (home / "prometheus.log").read_text()
                try:
                    async with http.get(f"{url}/-/ready") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            for _ in range(300):
                if await ready():
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"Prometheus did not start:\n{(home / 'prometheus.log').read_text()}")
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


async def query(http: aiohttp.ClientSession, url: str, promql: str) -> list[dict[str, Any]]:
    async with http.get(f"{url}/api/v1/query", params={"query": promql}) as response:
        body = await response.json()
    assert body["status"] == "success", f"{promql}: {body}"
    return body["data"]["result"]  # type: ignore[no-any-return]


async def load(served: Served, stop: asyncio.Event) -> None:
    """A little of everything the dashboard shows, until ``stop``."""
    s = served.scheduler
    hanging: set[asyncio.Task[Any]] = set()
    async with aiohttp.ClientSession() as http:
        for i in range(1_000_000):
            if stop.is_set():
                break
            for name in ("hello", "hello", "hello", "prov", "reserved", "raises"):
                await s.invoke(name, b"{}")
            with contextlib.suppress(Throttled):
                await s.invoke("zero")
            if i % 10 == 0:
                hanging.add(asyncio.ensure_future(s.invoke("hangs")))
                for name in ("raises", "hello"):
                    async with http.post(
                        f"{served.url}/2015-03-31/functions/{name}/invocations",
                        data=b"{}",
                        headers={"X-Amz-Invocation-Type": "Event"},
                    ) as response:
                        assert response.status == 202
            await asyncio.sleep(0.05)
    await asyncio.gather(*hanging)


async def test_every_dashboard_query_returns_series_from_a_real_prometheus(make_server: MakeServer) -> None:
    tool("prometheus")
    served = await make_server(
        fn("hello", "basic.noop"),
        fn("reserved", "basic.noop", reserved_concurrency=2),
        fn("zero", "basic.noop", reserved_concurrency=0),
        fn("raises", "faults.raise_error"),
        fn("hangs", "faults.hang", timeout_s=0.2),
    )
    served.scheduler.add_function(fn("prov", "basic.noop", provisioned_concurrency=1))
    stop = asyncio.Event()
    loader = asyncio.ensure_future(load(served, stop))
    target = re.sub(r"^http://", "", served.url)
    try:
        async with prometheus(target) as url, aiohttp.ClientSession() as http:
            # Enough scrapes that every rate() has two samples in its window.
            scrapes: list[dict[str, Any]] = []

            async def scraped() -> bool:
                scrapes[:] = await query(http, url, 'count_over_time(up{job="lambda-scheduler"}[1m]) >= 4')
                return bool(scrapes)

            while not await scraped():
                await asyncio.sleep(0.2)
            assert (await query(http, url, 'up{job="lambda-scheduler"}'))[0]["value"][1] == "1"
            missing = await _queries_without_series(http, url)
            assert not missing, "queries with no series:\n" + "\n".join(f"  {t}: {q}" for t, q in missing)
            await _check_rules_and_variable(http, url, set(served.scheduler.functions))
    finally:
        stop.set()
        await loader


async def _queries_without_series(http: aiohttp.ClientSession, url: str) -> list[tuple[str, str]]:
    """Queries still empty after a few seconds (the last of the load's kinds may come late)."""
    pending = queries(load_dashboard())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while pending and loop.time() < deadline:
        pending = [(title, q) for title, q in pending if not await query(http, url, q)]
        if pending:
            await asyncio.sleep(0.5)
    return pending


async def _check_rules_and_variable(http: aiohttp.ClientSession, url: str, functions: set[str]) -> None:
    # The dashboard's function variable: label_values(lambda_concurrent_executions, function).
    params = {"match[]": "lambda_concurrent_executions"}
    async with http.get(f"{url}/api/v1/label/function/values", params=params) as response:
        assert set((await response.json())["data"]) == functions
    # Every rule evaluates without error, and the recording rules record something.
    async with http.get(f"{url}/api/v1/rules") as response:
        groups = (await response.json())["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 12
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    for rule in rules:
        if rule["type"] == "recording":
            assert await query(http, url, rule["name"]), rule["name"]
