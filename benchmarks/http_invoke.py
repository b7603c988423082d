"""Benchmark 2: warm no-op invocations over HTTP, at concurrency 1, 16 and 64, in one run
against three servers of the same Invoke route and the same handler code:

- lambda-scheduler (``serve benchmarks/template.yaml``, at ``--log-level``: info by default,
  the server's own default, which prints each invocation's START … END and REPORT lines);
- a bare aiohttp handler calling the handler in-process (benchmarks/http_floor.py): the HTTP
  floor of this machine;
- serverless-offline 13 on Serverless Framework 3 (benchmarks/peers/serverless-offline), at
  the matching log level (at info: its own default, "notice").

Throughput and latency come from Debian's wrk (one thread, keep-alive, benchmarks/invoke.lua),
which is not the bottleneck where a Python client would be; wrk's own CPU is measured and a
run where wrk was saturated is flagged. The targets are ratios taken in the same run
(repeats interleave the servers, each repeat's ratio is computed, the median reported).
The Python harness (``lambda-scheduler load``) also runs against each server, at
concurrency 1 (its latency) and 16 (its throughput, and its verdict on itself).

    python benchmarks/http_invoke.py [--quick] [--repeats 3] [--duration 5] [--log-level info]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvloop
from benchlib.common import command_line, median, parser, pyplot, save
from benchlib.procs import Server
from benchlib.servers import serverless_offline_available, start_floor, start_ours, start_serverless_offline
from benchlib.targets import at_least, at_most
from benchlib.wrk import run_wrk

from scheduler.config import LOG_LEVELS, ServerConfig
from scheduler.load import ClosedLoop, LoadConfig, Target, run_load, to_json

OURS, FLOOR, SLS = "lambda-scheduler", "aiohttp-floor", "serverless-offline"


def start_all(log_level: str) -> tuple[dict[str, Server], dict[str, str]]:
    servers: dict[str, Server] = {}
    skipped: dict[str, str] = {}
    servers[OURS] = start_ours(log_level=log_level)
    servers[FLOOR] = start_floor()
    reason = serverless_offline_available()
    if reason is None:
        try:
            servers[SLS] = start_serverless_offline(log_level)
        except RuntimeError as exc:
            skipped[SLS] = str(exc)
    else:
        skipped[SLS] = reason
    return servers, skipped


def warm_up(name: str, server: Server, concurrency: list[int], duration: float) -> None:
    """Bring every environment (ours) or Python runner (serverless-offline) the largest
    concurrency needs into being, a step at a time, until the rate stops growing."""
    steps = sorted(set(concurrency))
    for c in steps[:-1]:
        run_wrk(server.url, "noop", c, 1.0)
    previous = 0.0
    for _ in range(4):
        rate = run_wrk(server.url, "noop", steps[-1], max(1.0, duration / 2)).rate
        if previous and rate < previous * 1.1:
            break
        previous = rate
    print(f"  warmed {name}: {rate:.0f}/s at {steps[-1]} connections", flush=True)


def measure(servers: dict[str, Server], concurrency: list[int], repeats: int, duration: float) -> list[dict[str, Any]]:
    names = list(servers)
    for name, server in servers.items():
        warm_up(name, server, concurrency, duration)
    runs = []
    for rep in range(repeats):
        for c in concurrency:
            order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate: no server always first
            for name in order:
                server = servers[name]
                run = run_wrk(server.url, "noop", c, duration, server_pid=server.pid)
                flag = "  CLIENT-BOUND" if run.client_bound else ""
                print(
                    f"  rep {rep + 1} c={c:<3} {name:<20} {run.rate:9.0f}/s  p50 {run.latency_us['p50'] / 1e3:6.3f} ms  "
                    f"p99 {run.latency_us['p99'] / 1e3:7.3f} ms  wrk CPU {run.wrk_cpu:4.0%}  "
                    f"server CPU {run.server_cpu:4.0%}{flag}",
                    flush=True,
                )
                runs.append({"target": name, "repeat": rep, **run.to_dict()})
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        out.setdefault(run["target"], {}).setdefault(str(run["connections"]), {"runs": []})["runs"].append(run)
    for by_c in out.values():
        for cell in by_c.values():
            rs = cell.pop("runs")
            cell.update(
                rate=median(r["rate"] for r in rs),
                rate_runs=[round(r["rate"]) for r in rs],
                p50_us=median(r["latency_us"]["p50"] for r in rs),
                p99_us=median(r["latency_us"]["p99"] for r in rs),
                wrk_cpu=median(r["wrk_cpu"] for r in rs),
                server_cpu=median(r["server_cpu"] for r in rs),
                children_cpu=median(r["server_children_cpu"] for r in rs),
                client_bound=any(r["client_bound"] for r in rs),
                errors=sum(sum(r["errors"].values()) for r in rs),
            )
    return out


def ratios(runs: list[dict[str, Any]], concurrency: list[int], repeats: int) -> dict[str, Any]:
    cell = {(r["target"], r["connections"], r["repeat"]): r for r in runs}
    out: dict[str, Any] = {}
    for peer, key in ((FLOOR, "rate_vs_floor"), (SLS, "rate_vs_serverless_offline")):
        out[key] = {}
        for c in concurrency:
            per_rep = [
                cell[(OURS, c, k)]["rate"] / cell[(peer, c, k)]["rate"]
                for k in range(repeats)
                if (peer, c, k) in cell and (OURS, c, k) in cell
            ]
            out[key][str(c)] = {"median": median(per_rep), "runs": per_rep} if per_rep else None
    p50 = [
        cell[(OURS, 1, k)]["latency_us"]["p50"] / cell[(SLS, 1, k)]["latency_us"]["p50"]
        for k in range(repeats)
        if (SLS, 1, k) in cell and (OURS, 1, k) in cell
    ]
    out["p50_c1_vs_serverless_offline"] = {"median": median(p50), "runs": p50} if p50 else None
    return out


async def harness_runs(servers: dict[str, Server], quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, server in servers.items():
        latency = await run_load(
            LoadConfig(
                server.url,
                (Target("noop"),),
                ClosedLoop(1),
                requests=500 if quick else 3000,
                duration_s=5 if quick else 15,
            )
        )
        load = await run_load(LoadConfig(server.url, (Target("noop"),), ClosedLoop(16), duration_s=2 if quick else 5))
        c1, c16 = to_json(latency), to_json(load)
        out[name] = {
            "c1": {"latency_ms": c1["latency_ms"], "throughput_per_s": c1["rates"]["throughput_per_s"]},
            "c16": {
                "throughput_per_s": c16["rates"]["throughput_per_s"],
                "latency_ms": c16["latency_ms"],
                "harness": c16["harness"],
                "errors": c16["errors"],
            },
        }
        verdict = "the harness was the bottleneck" if c16["harness"]["bottleneck"] else "harness not the bottleneck"
        print(
            f"  harness {name:<20} c=1 p50 {c1['latency_ms']['p50']:.3f} ms; c=16 "
            f"{c16['rates']['throughput_per_s']:.0f}/s ({verdict}, CPU {c16['harness']['cpu_percent']:.0f} %)",
            flush=True,
        )
    return out


def check_targets(summary: dict[str, Any], r: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    floor16 = (r["rate_vs_floor"].get("16") or {}).get("median")
    checks.append(at_least("http_vs_floor", "HTTP no-op rate at 16 connections vs bare aiohttp", floor16, 0.60))
    sls16 = (r["rate_vs_serverless_offline"].get("16") or {}).get("median")
    checks.append(at_least("http_vs_sls", "HTTP no-op rate at 16 connections vs serverless-offline", sls16, 1.5))
    p50 = (r["p50_c1_vs_serverless_offline"] or {}).get("median")
    checks.append(at_most("http_p50_vs_sls", "p50 at concurrency 1 vs serverless-offline's", p50, 0.75))
    ours_p50 = summary.get(OURS, {}).get("1", {}).get("p50_us")
    checks.append(
        at_most("http_p50_abs", "p50 at concurrency 1 (wrk)", ours_p50 / 1e3 if ours_p50 else None, 0.3, "ms")
    )
    return checks


def plot(summary: dict[str, Any], concurrency: list[int], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    names = list(summary)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        rates = [summary[name].get(str(c), {}).get("rate", 0) for c in concurrency]
        left.bar([x + (i - (len(names) - 1) / 2) * width for x in range(len(concurrency))], rates, width, label=name)
    left.set_xticks(range(len(concurrency)), [f"{c} connections" for c in concurrency])
    left.set_ylabel("no-op invocations per second (wrk)")
    left.set_title("Warm no-op over HTTP: throughput (median of repeats)", fontsize=10)
    left.legend()
    p50 = [summary[n].get("1", {}).get("p50_us", 0) / 1e3 for n in names]
    p99 = [summary[n].get("1", {}).get("p99_us", 0) / 1e3 for n in names]
    right.bar([x - 0.2 for x in range(len(names))], p50, 0.4, label="p50")
    right.bar([x + 0.2 for x in range(len(names))], p99, 0.4, label="p99")
    right.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
    right.set_ylabel("ms")
    right.set_title("Latency at concurrency 1 (wrk)", fontsize=10)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = parser(__doc__, "http")
    p.add_argument("--repeats", type=int)
    p.add_argument("--duration", type=float, help="seconds per wrk run")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=ServerConfig().log_level,
        help="the servers' log level (default: the server's own default, what users run)",
    )
    args = p.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    duration = args.duration or (1.0 if args.quick else 5.0)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    servers, skipped = start_all(args.log_level)
    try:
        print(f"servers: {', '.join(f'{n} {s.url}' for n, s in servers.items())}", flush=True)
        for name, why in skipped.items():
            print(f"  skipped {name}: {why}", flush=True)
        runs = measure(servers, concurrency, repeats, duration)
        harness = uvloop.run(harness_runs(servers, args.quick))
    finally:
        for server in servers.values():
            server.stop()
    summary = summarize(runs)
    r = ratios(runs, concurrency, repeats)
    results: dict[str, Any] = {
        "config": {
            "repeats": repeats,
            "duration_s": duration,
            "concurrency": concurrency,
            "wrk_threads": 1,
            "log_level": args.log_level,
        },
        "skipped": skipped,
        "summary": summary,
        "ratios": r,
        "harness": harness,
        "targets": check_targets(summary, r),
        "runs": runs,
    }
    for check in results["targets"]:
        print(
            f"  target {check['what']}: {check['measured']} (target {check['target']}) "
            f"{'met' if check['met'] else 'MISSED' if check['met'] is False else ''}",
            flush=True,
        )
    save(args.out, results, quick=args.quick, command=command_line())
    plot(summary, concurrency, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
