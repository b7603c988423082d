"""Benchmark 4: correctness under load, for lambda-scheduler and serverless-offline.

1. Every response belongs to its own request: 32 closed-loop callers invoke ``echo`` with a
   unique token in each event (the harness's ``--verify-echo token``); a response that carries
   another token, or none, is a mismatch.
2. Timeout precision under load: ``hang`` (timeout 1 s, sleeps 30 s) is invoked 4 times a
   second by the harness while another process loads the server with ``noop`` — once at a
   moderate 1,000/s (``lambda-scheduler load --rate 1000`` in a subprocess), once saturating
   it (wrk, 16 connections) — so the probes' own client is never the loaded one. Each
   probe's reply should come at the deadline. Lateness = latency from the intended start − 1 s, as p50 / p99 / max
   (an upper bound: it includes the time the request waited in the loaded server before its
   deadline was set), what the reply said (Lambda's ``Sandbox.Timedout``, or something else),
   and, where the server returns its REPORT line, its own Duration − 1 s.

    python benchmarks/correctness.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import uvloop
from benchlib.common import command_line, parser, pyplot, save
from benchlib.servers import serverless_offline_available, start_ours, start_serverless_offline
from benchlib.targets import at_least, at_most
from benchlib.wrk import SCRIPT, wrk_path

from scheduler.load import ClosedLoop, LoadConfig, OpenLoop, Stage, Target, run_load, to_json
from scheduler.load.client import Outcome
from scheduler.load.histogram import Histogram
from scheduler.load.workload import encode

MODERATE_RATE = 1000
WARMUP_S = 2.0
HANG_TIMEOUT_MS = 1000.0  # Timeout: 1 of the hang function in template.yaml and serverless.yml


async def echo_check(url: str, duration: float, callers: int) -> dict[str, Any]:
    result = await run_load(
        LoadConfig(url, (Target("echo"),), ClosedLoop(callers), duration_s=duration, verify_field="token")
    )
    doc = to_json(result)
    return {
        "callers": callers,
        "requests": doc["totals"]["completed"],
        "ok": doc["totals"]["ok"],
        "mismatches": doc["totals"]["mismatches"],
        "errors": doc["errors"],
        "throughput_per_s": doc["rates"]["throughput_per_s"],
    }


async def background_load(url: str, kind: str, duration: float) -> asyncio.subprocess.Process:
    if kind == "saturating":
        command = [wrk_path() or "wrk", "-t1", "-c16", f"-d{duration:g}s", "-s", str(SCRIPT), url, "--", "noop"]
    else:
        command = [
            sys.executable,
            "-m",
            "scheduler",
            "load",
            "--endpoint-url",
            url,
            "--function",
            "noop",
            # A ramp first: a server started cold and hit at once at 1,000/s starts hundreds of
            # environments together (each request that finds none starts one, as on Lambda).
            "--stage",
            f"{WARMUP_S:g}s:0-{MODERATE_RATE}",
            "--stage",
            f"{duration - WARMUP_S:g}s:{MODERATE_RATE}",
            "--json",
            "-",
            "--progress",
            "off",
        ]
    return await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )


async def timeout_precision(url: str, duration: float, kind: str) -> dict[str, Any]:
    loader = await background_load(url, kind, duration)
    # Each reply against its own deadline: the server sets it when the invoke starts, after
    # Init on a cold start (each probe is one: a timed-out environment is destroyed), so the
    # lateness of a reply is (done - sent) - Init Duration - timeout, from the client's side.
    late_us: list[int] = []

    def on_answer(function: str, outcome: Outcome, intended: float, sent: float, done: float) -> None:
        late_ms = (done - sent) * 1e3 - (outcome.init_ms or 0.0) - HANG_TIMEOUT_MS
        late_us.append(max(0, round(late_ms * 1e3)))

    probe = await run_load(
        LoadConfig(
            url,
            (Target("hang", 1, (encode({"s": 30}),)),),
            # No probe during the background's warm-up; then 4 a second, ending 1.5 s before it.
            OpenLoop((Stage(WARMUP_S + 0.5, 0, 0), Stage(duration - WARMUP_S - 2.0, 4, 4))),
            request_timeout_s=40,
        ),
        on_answer=on_answer,
    )
    loader_out, _ = await loader.communicate()
    lateness = Histogram()
    for value in late_us:
        lateness.record(value)
    doc = to_json(probe)
    reported = probe.recorder.reported
    return {
        "probes": probe.recorder.completed,
        "replies": doc["errors"],
        "ok_replies": probe.recorder.ok,  # a "hang" that returned normally was not stopped
        "lateness_ms": {
            "p50": lateness.percentile(0.5) / 1e3,
            "p99": lateness.percentile(0.99) / 1e3,
            "max": lateness.max / 1e3,
        },
        "init_ms_p50": probe.recorder.init_ms.percentile(0.5) / 1e3 if probe.recorder.init_ms.count else None,
        "latency_ms": doc["latency_ms"],
        "server_reported_over_ms": None
        if reported.count == 0
        else {
            "p50": reported.percentile(0.5) / 1e3 - HANG_TIMEOUT_MS,
            "p99": reported.percentile(0.99) / 1e3 - HANG_TIMEOUT_MS,
            "max": reported.max / 1e3 - HANG_TIMEOUT_MS,
        },
        "background": _background_summary(loader_out.decode(errors="replace"), kind, duration),
    }


def _background_summary(output: str, kind: str, duration: float) -> dict[str, Any] | None:
    if kind == "saturating":
        line = next((l for l in output.splitlines() if l.startswith("wrk-json ")), None)
        if line is None:
            return None
        data = json.loads(line.removeprefix("wrk-json "))
        return {
            "load": "wrk, 16 connections",
            "rate": data["requests"] / duration,
            "errors": sum(data["errors"].values()),
            "p99_ms": data["latency_us"]["p99"] / 1e3,
        }
    start = output.find("{")
    try:
        doc = json.loads(output[start : output.rfind("}") + 1])
    except ValueError:
        return None
    return {
        "load": f"open loop {MODERATE_RATE}/s",
        "rate": doc["rates"]["throughput_per_s"],
        "errors": doc["totals"]["errors"],
        "p99_ms": doc["latency_ms"]["p99"],
    }


def measure(start: Any, quick: bool) -> dict[str, Any]:
    """Each scenario on a freshly started server, so one cannot damage the next."""
    server = start()
    try:
        echo = uvloop.run(echo_check(server.url, 3.0 if quick else 10.0, 16 if quick else 32))
    finally:
        server.stop()
    print(f"  echo: {echo['requests']} requests, {echo['mismatches']} mismatches, errors {echo['errors']}", flush=True)
    out: dict[str, Any] = {"echo": echo}
    for kind in ("moderate", "saturating"):
        server = start()
        try:
            timeouts = uvloop.run(timeout_precision(server.url, 6.0 if quick else 14.0, kind))
        finally:
            server.stop()
        late, inside = timeouts["lateness_ms"], timeouts["server_reported_over_ms"]
        print(
            f"  timeouts, {kind} load: {timeouts['probes']} probes, replies {timeouts['replies']}, "
            f"late p50 {late['p50']:.1f} ms p99 {late['p99']:.1f} ms max {late['max']:.1f} ms; "
            f"background {timeouts['background']}"
            + (f"; server's own Duration over by p99 {inside['p99']:.1f} ms" if inside else ""),
            flush=True,
        )
        out[f"timeouts_{kind}"] = timeouts
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    names = [n for n in ("lambda-scheduler", "serverless-offline") if n in results]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    labels: list[str] = []
    for name in names:
        for kind in ("moderate", "saturating"):
            late = results[name][f"timeouts_{kind}"]["lateness_ms"]
            x = len(labels)
            ax.bar([x - 0.2, x + 0.2], [late["p50"], late["p99"]], 0.4, color=["tab:blue", "tab:red"])
            labels.append(f"{name}\n{kind}")
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("reply after the 1 s deadline (ms)")
    ax.set_title("Timeout precision under load: p50 (blue), p99 (red)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parser(__doc__, "correctness").parse_args()
    results: dict[str, Any] = {}
    print("lambda-scheduler …", flush=True)
    results["lambda-scheduler"] = measure(start_ours, args.quick)
    reason = serverless_offline_available()
    if reason is None:
        print("serverless-offline …", flush=True)
        try:
            results["serverless-offline"] = measure(start_serverless_offline, args.quick)
        except RuntimeError as exc:
            results["skipped"] = {"serverless-offline": str(exc)}
    else:
        results["skipped"] = {"serverless-offline": reason}
    ours = results["lambda-scheduler"]
    probes = sum(ours[f"timeouts_{k}"]["probes"] for k in ("moderate", "saturating"))
    timed_out = sum(
        ours[f"timeouts_{k}"]["replies"].get("function Sandbox.Timedout", 0) for k in ("moderate", "saturating")
    )
    results["targets"] = [
        at_most("echo_mismatch", "replies carrying another request's token", ours["echo"]["mismatches"], 0, "replies"),
        at_most(
            "timeout_p99_moderate",
            f"reply after the deadline, p99, under {MODERATE_RATE}/s",
            ours["timeouts_moderate"]["lateness_ms"]["p99"],
            20,
            "ms",
        ),
        at_most(
            "timeout_p99_saturated",
            "reply after the deadline, p99, server saturated (wrk, 16 connections)",
            ours["timeouts_saturating"]["lateness_ms"]["p99"],
            20,
            "ms",
        ),
        at_least("timeout_replies", "probes answered Sandbox.Timedout", timed_out / max(1, probes), 1.0, "%"),
    ]
    save(args.out, results, quick=args.quick, command=command_line())
    plot(results, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
