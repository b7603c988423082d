"""One section of BENCHMARKS.md per benchmark, each from its results JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .markdown import img, num, table
from .targets import at_least, at_most


def engine_section(r: dict[str, Any] | None, results: Path) -> tuple[str, list[dict[str, Any]]]:
    if r is None:
        return "## 1. Engine\n\nNot run.\n", []
    t, p, f = r["throughput"], r["peers"], r["floor"]

    def lat(label: str, d: dict[str, Any], ms: bool = False) -> list[str]:
        if ms:
            return [label, num(d["p50_us"] / 1e3, 2, "ms"), num(d["p99_us"] / 1e3, 2, "ms")]
        return [label, num(d["p50_us"]), num(d["p99_us"])]

    rows = [
        lat("pipe floor (msgspec frame, forked echo), blocking", f["blocking"]),
        lat("pipe floor, driven by uvloop", f["uvloop"]),
        lat("warm invoke, Python API, back to back", r["warm"]["back_to_back"]),
        lat("warm invoke, after 20 ms idle", r["warm"]["after_20ms_idle"]),
        lat("ProcessPoolExecutor, 1 worker", p["ppe_latency"]),
        lat("multiprocessing.Pool.apply", p["pool_latency"]),
        lat("cold start, trivial Init, first of a new function", r["cold"]["end_to_end"], ms=True),
    ]
    if "cold_scale_out" in r:
        rows.append(lat("cold start, trivial Init, scale-out of a function", r["cold_scale_out"]["end_to_end"], ms=True))
    text = "## 1. Engine (Python API vs the pipe floor and process pools)\n\n"
    text += f"`{r.get('command', 'python benchmarks/engine.py')}` — benchmarks/engine.py, one run, same machine.\n\n"
    text += table(["latency (µs unless noted)", "p50", "p99"], rows) + "\n"
    envs = sorted(t, key=int)
    floor_tp = f.get("throughput", {})

    def peer(key: str, e: str) -> str:
        return num(p.get(key, {}).get(e), 0)

    text += table(
        ["no-op invocations/s", *[f"{e} environments / workers" for e in envs]],
        [
            ["bare echo workers over pipes (the floor)", *[num(floor_tp.get(e, {}).get("per_s"), 0) for e in envs]],
            ["lambda-scheduler (median of runs)", *[num(t[e]["per_s"], 0) for e in envs]],
            ["scheduler CPU per call (µs)", *[num(t[e]["scheduler_cpu_us_per_call"]) for e in envs]],
            ["ProcessPoolExecutor (run_in_executor)", *[peer("ppe", e) for e in envs]],
            ["multiprocessing.Pool.imap_unordered", *[peer("pool", e) for e in envs]],
            ["multiprocessing.Pool.apply_async from the loop", *[peer("pool_apply_async", e) for e in envs]],
            ["loky", *[peer("loky", e) for e in envs]],
            ["aiomultiprocess", *[peer("aiomultiprocess", e) for e in envs]],
        ],
    )
    if "open_loop" in r and "open_loop" in f:
        o, fo = r["open_loop"], f["open_loop"]
        text += (
            f"\nOpen loop at 300/s, CPU of the calling process per invocation: bare echo floor "
            f"{num(fo['echo_cpu_us_per_call'], 0)} µs (a loop that only sleeps: {num(fo['sleep_only_cpu_us_per_tick'], 0)} µs "
            f"per tick); lambda-scheduler {num(o['freeze_on'], 0)} µs with freezing on, {num(o['freeze_off'], 0)} µs off.\n"
        )
    if "many" in r:
        m = r["many"]
        text += (
            f"\n8 callers beside {m['standby']} live environments of another function: {num(m['per_s'], 0)}/s, "
            f"{num(m['scheduler_cpu_us_per_call'])} µs of scheduler CPU per call.\n"
        )
    text += "\nRatios measured in the same run: " + ", ".join(f"{k} {v:.2f}x" for k, v in r["ratios"].items()) + "\n\n"
    text += img(results, "engine", "engine throughput")
    warm = r["warm"]["back_to_back"]
    targets = [
        at_most("engine_warm_p99", "warm invoke p99, Python API, 1 in flight", warm["p99_us"], 300, "µs"),
        at_least("engine_vs_ppe", "no-op rate, 8 environments vs ProcessPoolExecutor", r["ratios"]["throughput_8_vs_ppe_8"], 10),
        at_least("engine_vs_pool", "no-op rate, 8 environments vs Pool.imap_unordered", r["ratios"]["throughput_8_vs_pool_8"], 1.5),
    ]
    # The engine's own targets, as engine.py judged them (bound, and whether higher is better).
    for n, (what, row) in enumerate(r.get("targets", {}).items()):
        check = at_least if row.get("higher_is_better", ">=" in what) else at_most
        unit = row.get("unit", "x")
        targets.append(check(f"engine_{n}", what.replace(">=", "≥").replace("<=", "≤"), row["measured"], row["bound"], unit))
    return text, targets


def http_section(r: dict[str, Any] | None, results: Path) -> str:
    if r is None:
        return "## 2. HTTP\n\nNot run.\n"
    c = r["config"]
    text = "## 2. Warm no-op over HTTP (wrk)\n\n"
    text += (
        f"`{r['command']}` — wrk {c['wrk_threads']} thread, keep-alive, {c['duration_s']:g} s per run, "
        f"{c['repeats']} repeat(s) interleaving the servers; medians. Same route, same handler code "
        "(benchmarks/handlers/bench.py), same client, same run.\n\n"
    )
    rows = []
    for target, by_c in r["summary"].items():
        for conns, cell in sorted(by_c.items(), key=lambda kv: int(kv[0])):
            rows.append(
                [
                    target,
                    conns,
                    num(cell["rate"], 0),
                    ", ".join(str(x) for x in cell["rate_runs"]),
                    num(cell["p50_us"] / 1e3, 3),
                    num(cell["p99_us"] / 1e3, 3),
                    f"{cell['wrk_cpu']:.0%}",
                    f"{cell['server_cpu']:.0%}",
                    f"{cell['children_cpu']:.0%}",
                    "**yes**" if cell["client_bound"] else "no",
                    str(cell["errors"]),
                ]
            )
    text += table(
        [
            "server",
            "conns",
            "req/s",
            "runs",
            "p50 ms",
            "p99 ms",
            "wrk CPU",
            "server CPU",
            "its children CPU",
            "client-bound",
            "errors",
        ],
        rows,
    )
    for name, why in (r.get("skipped") or {}).items():
        text += f"\n{name} skipped: {why}\n"
    ratios = r["ratios"]
    lines = []
    for key, label in (
        ("rate_vs_floor", "lambda-scheduler / bare aiohttp"),
        ("rate_vs_serverless_offline", "lambda-scheduler / serverless-offline"),
    ):
        cells = [f"{conns} conns {v['median']:.2f}x" for conns, v in ratios[key].items() if v]
        if cells:
            lines.append(f"- rate, {label}: " + ", ".join(cells))
    if ratios.get("p50_c1_vs_serverless_offline"):
        lines.append(
            f"- p50 at 1 connection, lambda-scheduler / serverless-offline: {ratios['p50_c1_vs_serverless_offline']['median']:.2f}x"
        )
    text += "\nRatios (each repeat's ratio, median):\n\n" + "\n".join(lines) + "\n\n"
    text += (
        "wrk CPU is wrk's own (one thread): at ≥ 90 % it could not send faster and the run is marked client-bound. "
        "Server CPU is the server process; its children are the environments (ours) or the Python runners "
        "(serverless-offline). Client and servers share the machine's cores.\n\n"
    )
    hrows = []
    for target, h in r["harness"].items():
        verdict = h["c16"]["harness"]
        hrows.append(
            [
                target,
                num(h["c1"]["latency_ms"]["p50"], 3),
                num(h["c1"]["latency_ms"]["p99"], 3),
                num(h["c16"]["throughput_per_s"], 0),
                f"{verdict['cpu_percent']:.0f} %",
                "**yes**: " + "; ".join(verdict["reasons"]) if verdict["bottleneck"] else "no",
            ]
        )
    text += "The Python harness (`lambda-scheduler load`, closed loop) against the same servers, and its verdict on itself:\n\n"
    text += table(
        ["server", "c=1 p50 ms", "c=1 p99 ms", "c=16 req/s", "harness CPU", "harness was the bottleneck"], hrows
    )
    return text + "\n" + img(results, "http", "HTTP throughput and latency")


def cold_section(r: dict[str, Any] | None, results: Path) -> str:
    if r is None:
        return "## 3. Cold start\n\nNot run.\n"
    text = "## 3. Cold start\n\n"
    text += (
        f"`{r['command']}` — the first response from a new environment, end to end, {r['config']['samples']} "
        "samples each (a different function each time); a fresh `python3` is timed from spawn to exit.\n\n"
    )
    rows = []
    for system in ("lambda-scheduler", "python3 spawn", "serverless-offline"):
        data = r.get(system)
        if not data:
            continue
        for kind, label in (("trivial", "trivial Init"), ("boto3", "imports boto3")):
            cell = data.get(kind)
            if not cell:
                continue
            e2e = cell["end_to_end_ms"]
            init = (cell.get("init_duration_ms") or {}).get("p50")
            rows.append(
                [
                    system,
                    label,
                    num(e2e["p50"], 2),
                    num(e2e["p90"], 2),
                    num(e2e["min"], 2),
                    num(e2e["max"], 2),
                    num(init, 2) if init else "—",
                ]
            )
    text += table(["system", "Init", "p50 ms", "p90 ms", "min ms", "max ms", "Init Duration p50 ms"], rows)
    ratio_lines = [
        f"- {kind}: " + ", ".join(f"lambda-scheduler / {peer} {v:.2f}x" for peer, v in by_peer.items())
        for kind, by_peer in r["ratios"].items()
    ]
    text += "\nRatios of p50, same run:\n\n" + "\n".join(ratio_lines) + "\n\n"
    for name, why in (r.get("skipped") or {}).items():
        text += f"{name} skipped: {why}\n\n"
    return text + img(results, "cold_start", "cold start")


def correctness_section(r: dict[str, Any] | None, results: Path) -> str:
    if r is None:
        return "## 4. Correctness under load\n\nNot run.\n"
    text = "## 4. Correctness under load\n\n" + f"`{r['command']}`\n\n"
    rows = []
    for system in ("lambda-scheduler", "serverless-offline"):
        data = r.get(system)
        if data:
            e = data["echo"]
            rows.append(
                [
                    system,
                    str(e["callers"]),
                    str(e["requests"]),
                    f"**{e['mismatches']}**",
                    json.dumps(e["errors"]) if e["errors"] else "none",
                    num(e["throughput_per_s"], 0),
                ]
            )
    text += "Every response belongs to its own request (echo of a per-request token):\n\n"
    text += table(["server", "callers", "requests", "mismatches", "errors", "req/s"], rows)
    rows = []
    for system in ("lambda-scheduler", "serverless-offline"):
        data = r.get(system)
        if not data:
            continue
        for kind in ("moderate", "saturating"):
            t = data[f"timeouts_{kind}"]
            bg = t.get("background") or {}
            inside = t.get("server_reported_over_ms")
            rows.append(
                [
                    system,
                    f"{bg.get('load', kind)} ({num(bg.get('rate'), 0)}/s, p99 {num(bg.get('p99_ms'), 1)} ms)",
                    str(t["probes"]),
                    ", ".join(f"{k}: {v}" for k, v in t["replies"].items()) or "—",
                    num(t["lateness_ms"]["p50"], 1),
                    num(t["lateness_ms"]["p99"], 1),
                    num(t["lateness_ms"]["max"], 1),
                    num(inside["p99"], 1) if inside else "—",
                ]
            )
    text += (
        "\nTimeout precision under load: `hang` (timeout 1 s) probed 4 times a second while another process "
        "loads the server; lateness = send-to-reply − Init Duration − 1 s (what a caller sees):\n\n"
    )
    text += table(
        [
            "server",
            "background load (achieved, its p99)",
            "probes",
            "replies",
            "late p50 ms",
            "late p99 ms",
            "late max ms",
            "server's REPORT Duration over, p99 ms",
        ],
        rows,
    )
    for name, why in (r.get("skipped") or {}).items():
        text += f"\n{name} skipped: {why}\n"
    return text + "\n" + img(results, "correctness", "timeout precision")


def scale_section(r: dict[str, Any] | None, results: Path) -> str:
    if r is None:
        return "## 5. Scale\n\nNot run.\n"
    h, s, idle = r["hold"], r["at_scale"], r["memory_idle"]
    busy = h["memory_busy"]
    text = "## 5. Scale: live environments on one machine\n\n" + f"`{r['command']}`"
    if r["config"].get("lowered"):
        text += f" — environments {r['config']['lowered']}"
    text += "\n\n"
    rows = [
        ["environments requested / live at once", f"{h['requested']} / {h['live']}"],
        ["time until all were live", num(h["seconds_to_live"], 1, "s")],
        [
            "unique memory (USS) per environment, busy: p50 / p90 / max",
            f"{num(busy['uss_mb'].get('p50'), 2)} / {num(busy['uss_mb'].get('p90'), 2)} / {num(busy['uss_mb'].get('max'), 2)} MB",
        ],
        [
            "proportional memory (PSS) per environment, busy: p50 / p90",
            f"{num(busy['pss_mb'].get('p50'), 2)} / {num(busy['pss_mb'].get('p90'), 2)} MB",
        ],
        [
            "USS / PSS per environment, idle: p50",
            f"{num(idle['uss_mb'].get('p50'), 2)} / {num(idle['pss_mb'].get('p50'), 2)} MB",
        ],
        ["PSS of all environments, busy", num(busy["pss_total_mb"], 0, "MB")],
        ["scheduler process RSS with them live", num(busy.get("scheduler_rss_mb"), 0, "MB")],
        ["memory still available while held", num(h["mem_available_mb_while_held"], 0, "MB")],
        [
            f"load at scale: {s['arrivals']} on hold({s['sleep_ms']} ms), ~{s['mean_busy_environments']:.0f} busy",
            f"{s['invocations']} invocations, {num(s['throughput_per_s'], 0)}/s",
        ],
        [
            "latency over the sleep: p50 / p90 / p99 / max",
            " / ".join(num(s["overhead_ms"][k], 2) for k in ("p50", "p90", "p99", "max")) + " ms",
        ],
        ["cold starts during it (arrivals above the warm pool)", str(s["starts"]["cold"])],
        ["scheduler CPU per invocation (HTTP included)", num(s["scheduler_cpu_us_per_invocation"], 0, "µs")],
        ["environments' CPU per invocation", num(s["environments_cpu_us_per_invocation"], 0, "µs")],
        ["errors / throttles", f"{json.dumps(s['errors'])} / {json.dumps(s['throttles'])}"],
        ["server stop with all of them (SIGTERM to exit)", num(r["stop_seconds"], 1, "s")],
    ]
    text += table(["measure", "value"], rows)
    return text + "\n" + img(results, "scale", "scale")


def interop_section(r: dict[str, Any] | None) -> str:
    if r is None:
        return "## 6. Interop\n\nNot run.\n"
    text = "## 6. Interop: wrk drives the Invoke API\n\n"
    text += (
        "benchmarks/invoke.lua is a wrk script for any server of Lambda's Invoke API (the HTTP benchmark uses "
        "it too). With `check` it counts status codes and `X-Amz-Function-Error` per response.\n\n"
    )
    for system in ("lambda-scheduler", "serverless-offline"):
        data = r.get(system)
        if data:
            verdict = "every response 200 with no function error" if data["ok"] else "**unexpected responses**"
            text += f"{system}: {verdict}.\n\n```console\n$ {data['command']}\n{data['output'].rstrip()}\n```\n\n"
    return text


def foreign_section(results: Path, key: str, title: str) -> str:
    """benchmarks/metrics_overhead.py and isolation_cost.py are other engineers' scripts: the
    summary they print is shown as they print it."""
    if not (results / f"{key}.json").is_file():
        return ""
    text = f"## {title}\n\nFrom `benchmarks/{key}.py` (results/{key}.json):\n\n"
    log = results / "tmp" / "logs" / f"{key}.log"
    try:
        lines = [
            line
            for line in log.read_text().splitlines()
            if line.strip() and not line.startswith(("function ", "saved ")) and not line.endswith("…")
        ]
    except OSError:
        return text + "(its printed summary is in its JSON file)\n"
    return text + "```\n" + "\n".join(lines[-24:]) + "\n```\n"
