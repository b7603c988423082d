"""Benchmark 3: cold start — the first response from a new execution environment, end to end
over HTTP, with a trivial Init (the handler module imports nothing) and a realistic one (it
imports boto3), against:

- a fresh ``python3`` process that imports the same handler module and calls it once (what a
  process-per-invocation emulator pays at best), timed from spawn to exit;
- serverless-offline's first invoke of a function (it spawns a Python runner for it).

Each sample is a different function (cold00…, boto00… in benchmarks/template.yaml and the
serverless.yml), invoked once, one after another, so every sample is a real first start.
Our Init Duration (from the REPORT line) is recorded beside the end-to-end time.

    python benchmarks/cold_start.py [--quick] [--samples 20]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from benchlib.common import command_line, median, parser, pyplot, save
from benchlib.procs import Server
from benchlib.servers import BENCH, serverless_offline_available, start_ours, start_serverless_offline
from benchlib.targets import at_most

from scheduler.load.client import Invoker

KINDS = {"trivial": "cold", "boto3": "boto"}
SPAWN_CODE = {
    "trivial": "import sys; sys.path.insert(0, {path!r}); import bench; bench.noop({{}}, None)",
    "boto3": "import sys; sys.path.insert(0, {path!r}); import boto_init; boto_init.handler({{}}, None)",
}


def stats_ms(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "min": ordered[0],
        "max": ordered[-1],
        "samples": [round(s, 3) for s in samples],
    }


async def first_invokes(url: str, samples: int) -> dict[str, Any]:
    """End-to-end time of the first invoke of each cold function, sequentially."""
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        invoker = Invoker(session, url)
        warm = await invoker.invoke("noop", b"{}")  # connection, server and zygote are warm
        assert warm.error is None, warm
        for kind, prefix in KINDS.items():
            e2e, init, starts, errors = [], [], [], []
            for i in range(samples):
                started = time.perf_counter()
                outcome = await invoker.invoke(f"{prefix}{i:02d}", b"{}")
                e2e.append((time.perf_counter() - started) * 1e3)
                starts.append(outcome.start)
                if outcome.error:
                    errors.append(outcome.error)
                if outcome.init_ms is not None:
                    init.append(outcome.init_ms)
            out[kind] = {
                "end_to_end_ms": stats_ms(e2e),
                "init_duration_ms": stats_ms(init),
                "starts": {s: starts.count(s) for s in set(starts)},
                "errors": errors,
            }
    return out


def spawns(samples: int) -> dict[str, Any]:
    handlers = str(BENCH / "handlers")
    out = {}
    for kind, code in SPAWN_CODE.items():
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code.format(path=handlers)], check=True)
            times.append((time.perf_counter() - started) * 1e3)
        out[kind] = {"end_to_end_ms": stats_ms(times)}
    return out


def measure_server(start: Any, samples: int) -> dict[str, Any]:
    server: Server = start()
    try:
        return uvloop.run(first_invokes(server.url, samples))
    finally:
        server.stop()


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    systems = [(n, results[n]) for n in ("lambda-scheduler", "python3 spawn", "serverless-offline") if results.get(n)]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(systems))
    for i, (name, data) in enumerate(systems):
        values = [data.get(kind, {}).get("end_to_end_ms", {}).get("p50", 0) for kind in KINDS]
        ax.bar([x + (i - (len(systems) - 1) / 2) * width for x in range(len(KINDS))], values, width, label=name)
    ax.set_xticks(range(len(KINDS)), ["trivial Init", "Init imports boto3"])
    ax.set_yscale("log")
    ax.set_ylabel("first response, p50 (ms, log scale)")
    ax.set_title("Cold start, end to end", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = parser(__doc__, "cold_start")
    p.add_argument("--samples", type=int)
    args = p.parse_args()
    samples = min(20, args.samples or (5 if args.quick else 20))  # 20 cold functions per kind exist
    results: dict[str, Any] = {"config": {"samples": samples}}
    print("lambda-scheduler …", flush=True)
    results["lambda-scheduler"] = measure_server(start_ours, samples)
    print("python3 spawn …", flush=True)
    results["python3 spawn"] = spawns(samples)
    reason = serverless_offline_available()
    if reason is None:
        print("serverless-offline …", flush=True)
        try:
            results["serverless-offline"] = measure_server(start_serverless_offline, samples)
        except RuntimeError as exc:
            results["skipped"] = {"serverless-offline": str(exc)}
    else:
        results["skipped"] = {"serverless-offline": reason}
    ours = results["lambda-scheduler"]
    for name in ("lambda-scheduler", "python3 spawn", "serverless-offline"):
        for kind in KINDS:
            cell = (results.get(name) or {}).get(kind)
            if cell:
                e2e = cell["end_to_end_ms"]
                print(f"  {name:<20} {kind:<8} p50 {e2e['p50']:8.2f} ms  p90 {e2e['p90']:8.2f} ms  (n={e2e['n']})")
    ratio: dict[str, Any] = {}
    for kind in KINDS:
        mine = ours[kind]["end_to_end_ms"]["p50"]
        ratio[kind] = {
            peer: mine / results[peer][kind]["end_to_end_ms"]["p50"]
            for peer in ("python3 spawn", "serverless-offline")
            if results.get(peer)
        }
    results["ratios"] = ratio
    results["targets"] = [
        at_most(
            "cold_trivial",
            "cold start, trivial Init, p50 end to end",
            ours["trivial"]["end_to_end_ms"]["p50"],
            5.0,
            "ms",
        )
    ]
    save(args.out, results, quick=args.quick, command=command_line())
    plot(results, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
