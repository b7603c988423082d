"""Accepting Event invocations: 202s per second and the 202's latency, with the durable SQLite
store (WAL, group commit, synchronous=FULL) against the in-memory queue.

    python benchmarks/events.py [--events 5000] [--concurrency 64]
        ─► prints a table, writes benchmarks/results/events.json

A real aiohttp server (init_app, every middleware) on 127.0.0.1, driven by an aiohttp client
with ``concurrency`` requests in flight, and by wrk (another process, when installed: the
in-process client shares the server's core and measures both). The dispatcher is halted, so
only acceptance is measured: read the body, check it, commit it, answer 202.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler import FunctionConfig, Scheduler
from scheduler.api import init_app
from scheduler.api.keys import DISPATCHER, EVENT_QUEUE
from scheduler.config import ServerConfig

RESULTS = Path(__file__).resolve().parent / "results" / "events.json"


def _latency_ms(latencies: list[float]) -> dict[str, float]:
    """p50, p99, max and mean of sorted latencies in seconds, in milliseconds."""
    return {
        "p50": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "max": round(latencies[-1] * 1000, 3),
        "mean": round(statistics.fmean(latencies) * 1000, 3),
    }


async def _run(store: str, events: int, concurrency: int) -> dict[str, Any]:
    handlers = Path(__file__).resolve().parent / "handlers"
    function = FunctionConfig(name="noop", handler="bench.noop", code_dir=handlers)
    with tempfile.TemporaryDirectory(prefix="events-bench-") as folder:
        settings = ServerConfig(data_dir=Path(folder) / "data" if store == "sqlite" else None)
        scheduler = Scheduler([function])
        app = init_app(scheduler, settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            await app[DISPATCHER].halt()  # acceptance only: nothing is delivered
            url = str(server.make_url("/2015-03-31/functions/noop/invocations"))
            latencies: list[float] = []
            body = json.dumps({"n": 1, "text": "x" * 200}).encode()
            headers = {"X-Amz-Invocation-Type": "Event", "Content-Type": "application/json"}
            remaining = iter(range(events))

            async def worker(session: aiohttp.ClientSession) -> None:
                for _ in remaining:
                    began = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        assert response.status == 202, response.status
                    latencies.append(time.perf_counter() - began)

            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:
                began = time.perf_counter()
                await asyncio.gather(*(worker(session) for _ in range(concurrency)))
                elapsed = time.perf_counter() - began
            queue = app[EVENT_QUEUE]
            commits = getattr(queue.store, "commits", None)
            assert queue.received == events
        finally:
            await server.close()
    latencies.sort()
    return {
        "store": store,
        "events": events,
        "concurrency": concurrency,
        "accepted_per_s": round(events / elapsed, 1),
        "latency_ms": _latency_ms(latencies),
        "events_per_commit": None if not commits else round(events / commits, 1),
    }


async def _wrk(store: str, connections: int, seconds: float) -> dict[str, Any] | None:
    """wrk in its own process against the same server, ``connections`` keep-alive connections."""
    from benchlib.wrk import run_wrk, wrk_path

    if wrk_path() is None:
        return None
    handlers = Path(__file__).resolve().parent / "handlers"
    function = FunctionConfig(name="noop", handler="bench.noop", code_dir=handlers)
    with tempfile.TemporaryDirectory(prefix="events-bench-") as folder:
        settings = ServerConfig(data_dir=Path(folder) / "data" if store == "sqlite" else None, log_level="warning")
        app = init_app(Scheduler([function]), settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            await app[DISPATCHER].halt()
            url = str(server.make_url("")).rstrip("/")
            body = json.dumps({"n": 1, "text": "x" * 200})
            run = await asyncio.to_thread(
                run_wrk, url, "noop", connections, seconds, event=body, check=True, invocation_type="Event"
            )
            queue = app[EVENT_QUEUE]
            commits = getattr(queue.store, "commits", None)
            received = queue.received
        finally:
            await server.close()
    data = run.to_dict()
    lat = data.get("latency_us") or {}
    return {
        "store": f"{store} (wrk)",
        "events": received,
        "concurrency": connections,
        "accepted_per_s": round(received / seconds, 1),
        "latency_ms": {k: round(lat[k] / 1000, 3) for k in ("p50", "p99", "max", "mean") if k in lat},
        "events_per_commit": None if not commits else round(received / commits, 1),
        "statuses": data.get("checked_statuses"),
    }


async def _store_only(store: str, events: int, concurrency: int) -> dict[str, Any]:
    """EventQueue.put alone, ``concurrency`` at a time: what the store can accept, without HTTP."""
    from scheduler.events import Event, EventQueue, MemoryEventStore, SqliteEventStore

    with tempfile.TemporaryDirectory(prefix="events-bench-") as folder:
        backend = SqliteEventStore(Path(folder) / "events.sqlite3") if store == "sqlite" else MemoryEventStore()
        queue = EventQueue(backend)
        await queue.open()
        latencies: list[float] = []
        remaining = iter(range(events))
        body = json.dumps({"n": 1, "text": "x" * 200}).encode()

        async def worker() -> None:
            for i in remaining:
                began = time.perf_counter()
                await queue.put(Event(f"r{i}", "noop", None, body))
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        await queue.close()
    latencies.sort()
    return {
        "store": f"{store} (put only)",
        "events": events,
        "concurrency": concurrency,
        "accepted_per_s": round(events / elapsed, 1),
        "latency_ms": _latency_ms(latencies),
        "events_per_commit": None if store != "sqlite" else round(events / max(1, backend.commits), 1),  # type: ignore[union-attr]
    }


async def main(events: int, concurrency: int) -> list[dict[str, Any]]:
    rows = [await _run(store, events, concurrency) for store in ("memory", "sqlite")]
    for store in ("memory", "sqlite"):
        row = await _wrk(store, 64, 5.0)
        if row is not None:
            rows.append(row)
    rows += [await _store_only(store, events * 4, concurrency) for store in ("memory", "sqlite")]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    rows = uvloop.run(main(args.events, args.concurrency))
    print(f"{'store':20} {'accepted/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'events/commit':>14}")
    for row in rows:
        lat = row["latency_ms"]
        print(
            f"{row['store']:20} {row['accepted_per_s']:>11} {lat['p50']:>8} {lat['p99']:>8} {lat['max']:>8} "
            f"{row['events_per_commit'] or '-':>14}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"measured_at": time.time(), "results": rows}, indent=2) + "\n")
