"""What metrics cost: the observer on the hot path, and Prometheus scraping /metrics under load.

Measured in one run, on the same machine, interleaved (A B C, A B C, …) so that drift on a
shared host hits every configuration alike; medians are reported.

- observer: cost of one ``invocation_finished`` call — the metrics observer, the same counts
  kept in prometheus-client Counter/Histogram children cached per label set, and no observer;
- Python API: warm no-op invocations per second through ``Scheduler.invoke`` with N
  environments, the server running: metrics off · metrics on · metrics on and a scraper (a
  separate process) fetching /metrics every ``--scrape-interval`` seconds;
- HTTP: the same three over the Lambda API, driven by a load generator in its own process;
- scrape: the server's CPU time to render /metrics, and its size, with ``--functions`` busy
  functions' series.

The issue's target: scraping costs < 5 % of throughput ("scrape" vs "metrics" columns).

    python benchmarks/metrics_overhead.py [--quick] [--out benchmarks/results/metrics_overhead.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any, Self

import uvloop
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scheduler import FunctionConfig, Scheduler
from scheduler.api import init_app
from scheduler.api.observability import OBSERVABILITY
from scheduler.config import ServerConfig
from scheduler.engine.invocation import Invocation, InvocationResult
from scheduler.engine.observer import Observer, Observers
from scheduler.engine.protocol import Response
from scheduler.metrics import MetricsObserver
from scheduler.metrics.cells import BOUNDS

HANDLER_CODE = "def noop(event, context):\n    return None\n"
MODES = ("off", "metrics", "scrape")

# A scraper in its own process, as Prometheus would be: GET /metrics every INTERVAL seconds.
SCRAPER = """
import signal, sys, time, urllib.request
url, interval = sys.argv[1], float(sys.argv[2])
n, busy, size = 0, 0.0, 0
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    while True:
        t = time.perf_counter()
        size = len(urllib.request.urlopen(url, timeout=10).read())
        busy += time.perf_counter() - t
        n += 1
        time.sleep(max(0.0, interval - (time.perf_counter() - t)))
finally:
    print(n, busy, size, flush=True)
"""

# A load generator in its own process: CONCURRENCY keep-alive clients invoking for SECONDS.
LOADGEN = """
import asyncio, sys, time, aiohttp, uvloop
url, concurrency, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
async def main():
    count = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def client(until):
            nonlocal count
            while time.perf_counter() < until:
                async with http.post(url, data=b"{}") as r:
                    await r.read()
                count += 1
        await asyncio.gather(*(client(time.perf_counter() + 0.5) for _ in range(concurrency)))  # warm-up
        count = 0
        start = time.perf_counter()
        await asyncio.gather(*(client(start + seconds) for _ in range(concurrency)))
        print(count / (time.perf_counter() - start), flush=True)
uvloop.run(main())
"""


# --- the observer alone -------------------------------------------------------------------


class ClientChildren(Observer):
    """The same counts in prometheus-client's own metrics, children cached per label set:
    what the metrics observer would cost written the usual way."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        registry = CollectorRegistry()
        self._invocations = Counter("i", "i", ("function", "start", "outcome"), registry=registry)
        self._latency = Histogram("l", "l", ("function", "start"), buckets=BOUNDS, registry=registry)
        self._duration = Histogram("d", "d", ("function", "start"), buckets=BOUNDS, registry=registry)
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}

    def invocation_finished(self, function: str, result: InvocationResult, provisioned_configured: bool) -> None:
        key = (function, result.start, result.status)
        children = self._children.get(key)
        if children is None:
            outcome = "success" if result.status == "success" else "error"
            children = self._children[key] = (
                self._invocations.labels(function, result.start, outcome),
                self._latency.labels(function, result.start),
                self._duration.labels(function, result.start),
            )
        children[0].inc()
        children[1].observe(result.latency_s)
        children[2].observe(result.duration_ms * 0.001)


def _warm_result() -> InvocationResult:
    inv = Invocation(
        function_name="noop", version="$LATEST", memory_mb=128, timeout_s=3.0, payload=b"{}", invoked_arn="arn:aws:lambda:us-east-1:123456789012:function:noop", log_limit=4096
    )
    result = inv.finish_response(Response(inv.request_id, b"null", 15_000, 20_000))
    result.latency_s = 0.00008
    return result


def _per_call_us(fan_out: Observers, result: InvocationResult, n: int) -> float:
    call = fan_out.invocation_finished
    return timeit.timeit(lambda: call("noop", result, False), number=n) / n * 1e6


def observer_cost(n: int) -> dict[str, float]:
    """Microseconds per invocation_finished, through the engine's fan-out (Observers)."""
    result = _warm_result()
    out = {}
    for name, member in (
        ("none", None),
        ("metrics_observer", MetricsObserver()),
        ("client_children", ClientChildren()),
    ):
        fan_out = Observers()
        if member is not None:
            fan_out.add(member)
        out[name] = min(_per_call_us(fan_out, result, n) for _ in range(5))
    return out


# --- a server under load ------------------------------------------------------------------


class Server:
    """A Scheduler behind the Lambda API on an ephemeral port, in this event loop."""

    def __init__(self, code: Path, envs: int, functions: int, metrics: bool) -> None:
        # 1,769 MB is one vCPU: at 128 MB the CPU quota (7 % of a core) would cap the rate and
        # hide what metrics cost the scheduler.
        noop = FunctionConfig(
            name="noop",
            handler="bench.noop",
            code_dir=code,
            memory_mb=1769,
            provisioned_concurrency=envs,
            reserved_concurrency=envs,
        )
        others = [FunctionConfig(name=f"busy{i}", handler="bench.noop", code_dir=code) for i in range(functions)]
        self.scheduler = Scheduler([noop, *others], min_unreserved_concurrency=0)
        self.app = init_app(self.scheduler, ServerConfig(port=0, metrics=metrics))
        self.runner = web.AppRunner(self.app, access_log=None)
        self.url = ""
        self.functions = functions

    async def __aenter__(self) -> Self:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        # Series for the other functions: cold, warm, an error would add more; two calls each.
        for i in range(self.functions):
            for _ in range(2):
                await self.scheduler.invoke(f"busy{i}", b"{}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


class Scraper:
    def __init__(self, url: str, interval: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, f"{url}/metrics", str(interval)], stdout=subprocess.PIPE, text=True
        )
        self.scrapes = 0

    def stop(self) -> None:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        self.scrapes = int(out.split()[0]) if out.strip() else 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def api_run(code: Path, mode: str, args: argparse.Namespace) -> dict[str, float]:
    async with Server(code, args.envs, args.functions, metrics=mode != "off") as server:
        s = server.scheduler
        for _ in range(200):
            await s.invoke("noop", b"{}")
        scraper = Scraper(server.url, args.scrape_interval) if mode == "scrape" else None
        await asyncio.sleep(0.3)  # the scraper's interpreter starts before the clock does
        count = 0
        stop_at = time.perf_counter() + args.seconds

        async def caller() -> None:
            nonlocal count
            while time.perf_counter() < stop_at:
                await s.invoke("noop", b"{}")
                count += 1

        cpu, start = _cpu(), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(args.envs)))
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
        if scraper is not None:
            scraper.stop()
    return {
        "per_s": count / elapsed,
        "cpu_us_per_call": cpu / count * 1e6,
        "scrapes": scraper.scrapes if scraper else 0,
    }


async def http_run(code: Path, mode: str, args: argparse.Namespace) -> dict[str, float]:
    async with Server(code, args.envs, args.functions, metrics=mode != "off") as server:
        scraper = Scraper(server.url, args.scrape_interval) if mode == "scrape" else None
        url = f"{server.url}/2015-03-31/functions/noop/invocations"
        generator = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOADGEN, url, str(args.envs), str(args.seconds), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await generator.communicate()
        if scraper is not None:
            scraper.stop()
    return {"per_s": float(out.decode().strip()), "scrapes": scraper.scrapes if scraper else 0}


async def scrape_cost(code: Path, args: argparse.Namespace) -> dict[str, float]:
    """CPU time of one render of /metrics, on a server with --functions functions' series."""
    async with Server(code, args.envs, args.functions, metrics=True) as server:
        metrics = server.app[OBSERVABILITY].metrics
        assert metrics is not None
        body = metrics.render()
        n = 50
        cpu = _cpu()
        for _ in range(n):
            metrics.render()
        per = (_cpu() - cpu) / n
    return {"render_ms": per * 1e3, "bytes": len(body), "lines": body.count(b"\n")}


# --- the run --------------------------------------------------------------------------------


async def interleaved(code: Path, run: Any, args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            runs[mode].append(await run(code, mode, args))
    out: dict[str, Any] = {}
    for mode in MODES:
        out[mode] = {"per_s": statistics.median(r["per_s"] for r in runs[mode]), "runs": runs[mode]}
    out["observer_cost_pct"] = (1 - out["metrics"]["per_s"] / out["off"]["per_s"]) * 100
    out["scrape_cost_pct"] = (1 - out["scrape"]["per_s"] / out["metrics"]["per_s"]) * 100
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    code = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    (code / "bench.py").write_text(HANDLER_CODE)
    results: dict[str, Any] = {"machine": machine(), "settings": vars(args) | {"out": str(args.out)}}
    print("observer cost …", flush=True)
    results["observer_us"] = observer_cost(50_000 if args.quick else 500_000)
    print("scrape cost …", flush=True)
    results["scrape"] = await scrape_cost(code, args)
    # The same cost as a share of a saturated event loop: CPU per scrape over the interval.
    results["scrape"]["loop_share_pct"] = results["scrape"]["render_ms"] / (args.scrape_interval * 1e3) * 100
    print("Python API throughput …", flush=True)
    results["api"] = await interleaved(code, api_run, args)
    if not args.no_http:
        print("HTTP throughput …", flush=True)
        results["http"] = await interleaved(code, http_run, args)
    return results


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def report(r: dict[str, Any]) -> str:
    o, sc = r["observer_us"], r["scrape"]
    lines = [
        "invocation_finished, per call (through the engine's fan-out):",
        (
            f"  no observer {o['none']:6.3f} µs   metrics observer {o['metrics_observer']:6.3f} µs"
            f"   prometheus-client children {o['client_children']:6.3f} µs"
        ),
        (
            f"render /metrics: {sc['render_ms']:.2f} ms CPU, {sc['bytes']} bytes, {sc['lines']} lines;"
            f" every {r['settings']['scrape_interval']:g} s that is {sc['loop_share_pct']:.2f} % of a busy event loop"
        ),
        "",
        "warm no-op invocations/s     metrics off     metrics on   + scraper    observer cost   scrape cost",
    ]
    for key, label in (("api", "Python API"), ("http", "HTTP")):
        if key in r:
            x = r[key]
            lines.append(
                f"  {label:24s} {x['off']['per_s']:12.0f} {x['metrics']['per_s']:14.0f} {x['scrape']['per_s']:11.0f}"
                f"   {x['observer_cost_pct']:10.1f} %   {x['scrape_cost_pct']:8.1f} %"
            )
    if "api" in r:
        cpu = {m: statistics.median(x["cpu_us_per_call"] for x in r["api"][m]["runs"]) for m in MODES}
        lines.append(
            f"  scheduler CPU per call      {cpu['off']:9.1f} µs {cpu['metrics']:11.1f} µs {cpu['scrape']:8.1f} µs"
        )
    lines.append("")
    lines.append("target: scrape cost < 5 % of throughput")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, one repeat (a smoke run; noisy)")
    parser.add_argument("--envs", type=int, default=4, help="environments (and callers) under load")
    parser.add_argument("--functions", type=int, default=50, help="other functions with series in /metrics")
    parser.add_argument("--seconds", type=float, default=None, help="length of each throughput run")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats of each configuration")
    parser.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP runs")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "metrics_overhead.json")
    args = parser.parse_args()
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.repeats = args.repeats or (1 if args.quick else 5)
    results = uvloop.run(run(args))
    print(report(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
