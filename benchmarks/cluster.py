"""Cluster mode: throughput and latency with 1, 2 and 3 nodes sharing one nats-server, the cost
of a forwarded (warm-first) invocation, and a single node with and without --cluster.

    python benchmarks/cluster.py [--requests 2000] [--concurrency 32]
        ─► prints a table, writes benchmarks/results/cluster.json

Every node is a real ``lambda-scheduler serve --cluster`` process on 127.0.0.1, and the NATS
server a real ``nats-server -js`` with a temporary store. One aiohttp client in this process
spreads synchronous invocations (and then Event invocations) round-robin over the nodes, with
``concurrency`` requests in flight. On a 2-core machine the nodes, nats-server and the client
share the two cores: more nodes cannot add CPU here, so the 2- and 3-node rows show what the
cluster costs, not what it would gain on machines of their own (benchmarks/notes/cluster.md).

The forwarded cost: node b holds the function's only warm environment; sequential calls go
through b (run locally) and through a (forwarded to b over NATS request/reply) in turn, and
the difference of the medians is what a forward adds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats_floor  # beside this file

from tests.natsd import NatsServer  # the same server the tests start

RESULTS = Path(__file__).resolve().parent / "results" / "cluster.json"
HANDLERS = Path(__file__).resolve().parent / "handlers"
COMMAND = str(Path(sys.executable).with_name("lambda-scheduler"))
TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Noop:
    Type: AWS::Serverless::Function
    Properties: {{FunctionName: noop, Runtime: python3.11, CodeUri: {code}, Handler: bench.noop, Timeout: 10}}
  Span:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: span
      Runtime: python3.11
      CodeUri: {code}
      Handler: bench.span
      Timeout: 10
      ReservedConcurrentExecutions: {reserved}
"""
RESERVED = 4


class Node:
    def __init__(self, folder: Path, name: str, nats_url: str | None) -> None:
        args = [COMMAND, "serve", str(folder / "template.yaml"), "--port", "0", "--log-level", "warning"]
        args += ["--data-dir", str(folder / f"data-{name}")]
        if nats_url is not None:
            args += ["--cluster", nats_url, "--node-name", name]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_SCHEDULER_")}
        env["PYTHONPATH"] = str(ROOT)
        self.log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the node
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self.log)
        self.url = self._url()

    def _url(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not select.select([self.process.stdout], [], [], 1.0)[0]:
                continue
            found = re.search(r" at (http://\S+)$", self.process.stdout.readline().decode().strip())
            if found:
                return found.group(1)
        raise RuntimeError("a node printed no URL")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _ms(latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        "p50": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        "mean": round(statistics.fmean(latencies) * 1000, 3),
    }


async def _drive(urls: list[str], requests: int, concurrency: int, kind: str) -> dict[str, Any]:
    """``requests`` invocations of noop spread round-robin over ``urls``."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in counter:
            url = f"{urls[i % len(urls)]}/2015-03-31/functions/noop/invocations"
            began = time.perf_counter()
            async with session.post(url, data=b"{}", headers={"X-Amz-Invocation-Type": kind}) as response:
                await response.read()
            latencies.append(time.perf_counter() - began)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"per_s": round(requests / elapsed, 1), "latency_ms": _ms(latencies), "statuses": statuses}


async def _alternating(urls: list[str], calls: int) -> list[list[float]]:
    """``calls`` rounds of one sequential call through each URL in turn: each URL's latencies.
    Taking them in turn gives both the same moments of a noisy machine."""
    latencies: list[list[float]] = [[] for _ in urls]
    async with aiohttp.ClientSession() as session:
        for _ in range(calls):
            for url, seen in zip(urls, latencies, strict=True):
                began = time.perf_counter()
                async with session.post(f"{url}/2015-03-31/functions/noop/invocations", data=b"{}") as response:
                    await response.read()
                    assert response.status == 200, response.status
                seen.append(time.perf_counter() - began)
    return latencies


async def _limit(urls: list[str], requests: int, concurrency: int, ms: int) -> dict[str, Any]:
    """The cluster-wide reserved limit under load: ``requests`` calls of span (reserved
    RESERVED) by ``concurrency`` callers over ``urls``, each sending its call again 2 ms after
    a throttle, so that the limit is under pressure all along. From the handlers' own start and
    end times: the most that ever ran at once (never over the limit is the promise) and how
    much of the limit was used (fewer run, never more, is the tolerance)."""
    spans: list[tuple[float, float]] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))
    body = json.dumps({"ms": ms}).encode()

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in counter:
            status = 429
            while status == 429:
                url = f"{urls[i % len(urls)]}/2015-03-31/functions/span/invocations"
                async with session.post(url, data=body) as response:
                    answer = await response.read()
                status = response.status
                statuses[status] = statuses.get(status, 0) + 1
                if status == 429:
                    await asyncio.sleep(0.002)
                    i += 1  # the next try through the other node
            if status == 200:
                ran = json.loads(answer)
                spans.append((ran["start"], ran["end"]))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    busy = sum(end - start for start, end in spans)
    return {
        "reserved": RESERVED,
        "requests": requests,
        "statuses": statuses,
        "most_at_once": most,
        "limit_used": round(busy / (RESERVED * wall), 3),
    }


async def _sequential(url: str, calls: int) -> list[float]:
    return (await _alternating([url], calls))[0]


def _code(value: int) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", f"def handler(event, context):\n    return {value}\n")
    return base64.b64encode(buffer.getvalue()).decode()


def _send(method: str, url: str, body: dict[str, Any] | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _answers(url: str, name: str) -> Any:
    request = urllib.request.Request(f"{url}/2015-03-31/functions/{name}/invocations", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code


def _until(url: str, name: str, expected: Any) -> float:
    """Seconds until invoking ``name`` through ``url`` answers ``expected``."""
    began = time.perf_counter()
    deadline = time.monotonic() + 30
    while _answers(url, name) != expected:
        assert time.monotonic() < deadline, "the change never reached the other node"
        time.sleep(0.005)
    return time.perf_counter() - began


def _propagation(a: str, b: str, rounds: int) -> dict[str, Any]:
    """Seconds from a's answer to a change until b serves it: a function created, its code
    updated, a version published with an alias on it, the function deleted."""
    seen: dict[str, list[float]] = {"create": [], "code": [], "version_and_alias": [], "delete": []}
    functions = f"{a}/2015-03-31/functions"
    for i in range(rounds):
        name = f"made{i}"
        body = {"FunctionName": name, "Runtime": "python3.11", "Role": "arn:aws:iam::123456789012:role/r"}
        assert _send("POST", functions, {**body, "Handler": "app.handler", "Code": {"ZipFile": _code(1)}}) == 201
        seen["create"].append(_until(b, name, 1))
        assert _send("PUT", f"{functions}/{name}/code", {"ZipFile": _code(2)}) == 200
        seen["code"].append(_until(b, name, 2))
        assert _send("POST", f"{functions}/{name}/versions", {}) == 201
        assert _send("POST", f"{functions}/{name}/aliases", {"Name": "live", "FunctionVersion": "1"}) == 201
        seen["version_and_alias"].append(_until(b, f"{name}:live", 2))
        assert _send("DELETE", f"{functions}/{name}") == 204
        seen["delete"].append(_until(b, name, 404))
    return {what: _ms(times) for what, times in seen.items()}


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _cluster_state(url: str) -> dict[str, Any]:
    return _get(f"{url}/cluster")["self"]  # type: ignore[no-any-return]


def _wait_events_ran(urls: list[str], count: int, began: float) -> float:
    """Seconds from ``began`` until the nodes together ran ``count`` events (the stream is
    empty again before the next row)."""
    deadline = time.monotonic() + 300
    while sum(_get(f"{u}/health")["events"]["succeeded"] for u in urls) < count:
        assert time.monotonic() < deadline, "events never ran"
        time.sleep(0.02)
    return time.perf_counter() - began


def _offered(url: str) -> None:
    """Until the node at ``url`` offers noop to the others (an idle environment of it)."""
    deadline = time.monotonic() + 30
    while "noop" not in _cluster_state(url)["warm"]:
        assert time.monotonic() < deadline, f"{url} never offered noop"
        time.sleep(0.05)


def run(requests: int, concurrency: int, calls: int, forward_only: bool = False) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="cluster-bench-", dir=os.environ.get("TMPDIR")))
    (folder / "template.yaml").write_text(TEMPLATE.format(code=HANDLERS, reserved=RESERVED))
    rows: list[dict[str, Any]] = []
    limit: dict[str, Any] = {}
    nats = NatsServer()
    try:
        for count, cluster in () if forward_only else ((1, False), (1, True), (2, True), (3, True)):
            nodes = [Node(folder, f"n{count}{i}", nats.url if cluster else None) for i in range(count)]
            try:
                urls = [n.url for n in nodes]
                asyncio.run(_drive(urls, min(requests, 50), concurrency, "RequestResponse"))  # warm up
                if count == 2 and cluster:
                    limit = asyncio.run(_limit(urls, 200, concurrency, 50))
                    print(json.dumps({"limit": limit}))
                for kind in ("RequestResponse", "Event"):
                    began = time.perf_counter()
                    row = asyncio.run(_drive(urls, requests, concurrency, kind))
                    if kind == "Event":
                        row["ran_per_s"] = round(requests / _wait_events_ran(urls, requests, began), 1)
                    rows.append({"nodes": count, "cluster": cluster, "kind": kind, **row})
                    print(json.dumps(rows[-1]))
            finally:
                for node in nodes:
                    node.close()
        a, b = Node(folder, "fa", nats.url), Node(folder, "fb", nats.url)
        try:
            asyncio.run(_sequential(b.url, 1))  # b's environment: the only warm one
            _offered(b.url)
            # Through b (run there) and through a (which has no environment of noop and hands
            # each call to b), in turn; b keeps offering its environment between calls.
            local, forwarded = asyncio.run(_alternating([b.url, a.url], calls))
            state = _cluster_state(a.url)
            forward = {
                "local_ms": _ms(local),
                "forwarded_ms": _ms(forwarded),
                "forwarded_count": state["forwarded"],
                "added_p50_ms": round(statistics.median(forwarded) * 1e3 - statistics.median(local) * 1e3, 3),
                "environments_on_a": sum(_get(f"{a.url}/health")["environments"].values()),
            }
            print(json.dumps(forward))
            propagation = _propagation(a.url, b.url, 10)
            print(json.dumps({"propagation": propagation}))
        finally:
            a.close()
            b.close()
        assert nats.process is not None
        floor = asyncio.run(nats_floor.measure(nats.url, nats.process.pid))
        print(nats_floor.report(floor))
    finally:
        nats.close()
        shutil.rmtree(folder, ignore_errors=True)
    out = {"requests": requests, "concurrency": concurrency, "rows": rows, "limit": limit, "forward": forward}
    return {**out, "propagation": propagation, "nats": floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--calls", type=int, default=500, help="sequential calls for the forwarded cost")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--forward-only", action="store_true", help="only the forwarded call's cost (kept beside the saved rows)")
    args = parser.parse_args()
    os.environ.setdefault("TMPDIR", str(ROOT / ".tmp"))
    Path(os.environ["TMPDIR"]).mkdir(exist_ok=True)
    result = run(args.requests, args.concurrency, args.calls, args.forward_only)
    if args.forward_only and args.out.is_file():
        kept = json.loads(args.out.read_text())
        result = {**kept, **{k: result[k] for k in ("forward", "propagation", "nats")}}
    print(f"{'nodes':>5} {'cluster':>7} {'kind':>15} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for row in result["rows"]:
        latency = row["latency_ms"]
        print(
            f"{row['nodes']:>5} {row['cluster']!s:>7} {row['kind']:>15} {row['per_s']:>9} "
            f"{latency['p50']:>8} {latency['p99']:>8}"
        )
    forward = result["forward"]
    print(
        f"forwarded call p50 {forward['forwarded_ms']['p50']} ms against local {forward['local_ms']['p50']} ms "
        f"(+{forward['added_p50_ms']} ms; {forward['forwarded_count']} of {args.calls} calls forwarded, "
        f"{forward['environments_on_a']} environments started on the forwarding node)"
    )
    limit = result["limit"]
    if limit:
        print(
            f"reserved {limit['reserved']} over 2 nodes: at most {limit['most_at_once']} ran at once, "
            f"{limit['limit_used'] * 100:.0f} % of the limit used; statuses {limit['statuses']}"
        )
    for what, times in result["propagation"].items():
        print(f"registry, {what}: served by the other node p50 {times['p50']} ms, worst of 10 {times['p99']} ms")
    print(nats_floor.report(result["nats"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
