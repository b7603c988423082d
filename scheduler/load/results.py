"""A run's results: the JSON document and the final table.

The JSON keeps the summary (totals, rates, percentiles in milliseconds, cold / warm split,
errors, throttles, the harness's verdict on itself), one row per interval for plots over
time, and the histograms themselves (sparse), so runs can be merged or re-plotted later.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from .. import __version__
from .arrivals import ClosedLoop, OpenLoop
from .histogram import Histogram
from .runner import UNFINISHED, LoadResult

PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))


def latency_ms(h: Histogram) -> dict[str, float]:
    """Percentiles, max, min and mean of a µs histogram, in ms."""
    out = {name: h.percentile(q) / 1e3 for name, q in PERCENTILES}
    out.update(max=h.max / 1e3, min=h.min / 1e3, mean=h.mean / 1e3, count=h.count)
    return out


def describe_arrivals(result: LoadResult) -> str:
    arrivals = result.config.arrivals
    if isinstance(arrivals, ClosedLoop):
        return f"closed loop, {arrivals.concurrency} callers"
    kind = "Poisson" if arrivals.poisson else "fixed"
    parts = []
    for stage in arrivals.stages:
        span = "" if stage.duration_s == float("inf") else f" for {stage.duration_s:g} s"
        rates = (
            f"{stage.start_rate:g}"
            if stage.start_rate == stage.end_rate
            else f"{stage.start_rate:g}→{stage.end_rate:g}"
        )
        parts.append(f"{rates}/s{span}")
    return f"open loop, {kind} arrivals, " + ", then ".join(parts)


def _config(result: LoadResult) -> dict[str, Any]:
    c = result.config
    arrivals: dict[str, Any]
    if isinstance(c.arrivals, OpenLoop):
        arrivals = {
            "model": "open",
            "poisson": c.arrivals.poisson,
            "stages": [dataclasses.asdict(s) for s in c.arrivals.stages],
        }
    else:
        arrivals = {"model": "closed", "concurrency": c.arrivals.concurrency}
    return {
        "endpoint": c.endpoint,
        "functions": [{"name": t.function, "weight": t.weight, "payloads": len(t.payloads)} for t in c.targets],
        "arrivals": arrivals,
        "description": describe_arrivals(result),
        "requests": c.requests,
        "duration_s": c.duration_s,
        "connections": c.connection_limit,
        "max_in_flight": c.max_in_flight,
        "request_timeout_s": c.request_timeout_s,
        "tail": c.tail,
        "verify_field": c.verify_field,
        "seed": c.seed,
        "interval_s": c.interval_s,
    }


def rates(result: LoadResult) -> dict[str, float]:
    elapsed = result.elapsed_s
    return {
        "dispatch_window_s": result.dispatch_window_s,
        "sent_per_s": result.sent_per_s,
        "elapsed_s": elapsed,
        "throughput_per_s": result.throughput_per_s,
        "ok_per_s": result.recorder.ok / elapsed if elapsed > 0 else 0.0,
    }


def timeline(result: LoadResult) -> list[dict[str, Any]]:
    r = result.recorder
    rows = []
    for index in sorted(r.intervals):
        slot = r.intervals[index]
        rows.append(
            {
                "t_s": index * r.interval_s,
                "sent": slot.sent,
                "completed": slot.completed,
                "per_s": slot.completed / r.interval_s,
                "p50_ms": slot.latency.percentile(0.5) / 1e3,
                "p99_ms": slot.latency.percentile(0.99) / 1e3,
                "errors": slot.errors,
                "throttles": slot.throttles,
                "cold": slot.cold,
                "in_flight": slot.in_flight,
                "cpu_percent": slot.cpu_percent,
            }
        )
    return rows


def to_json(result: LoadResult) -> dict[str, Any]:
    r = result.recorder
    starts = dict(r.starts)
    answered = sum(starts.values())
    return {
        "tool": "lambda-scheduler load",
        "version": __version__,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": _config(result),
        "totals": {
            "sent": r.sent,
            "completed": r.completed,
            "ok": r.ok,
            "errors": r.error_count,
            "throttles": r.throttle_count,
            "mismatches": r.mismatches,
            "unfinished": r.errors.get(UNFINISHED, 0),
        },
        "rates": rates(result),
        "latency_ms": latency_ms(r.latency),
        "service_time_ms": latency_ms(r.service),
        "starts": {
            "cold": starts.get("cold", 0),
            "warm": starts.get("warm", 0),
            "unknown": starts.get("unknown", 0),
            "cold_percent": 100 * starts.get("cold", 0) / answered if answered else 0.0,
        },
        "latency_by_start_ms": {k: latency_ms(h) for k, h in sorted(r.by_start.items())},
        "init_duration_ms": latency_ms(r.init_ms),
        "reported_duration_ms": latency_ms(r.reported),
        "by_function": {
            name: {"count": r.calls[name], "latency_ms": latency_ms(h)} for name, h in sorted(r.by_function.items())
        },
        "errors": dict(r.errors.most_common()),
        "throttles": dict(r.throttles.most_common()),
        "harness": dataclasses.asdict(result.verdict),
        "timeline": timeline(result),
        "histograms_us": {
            "latency": r.latency.to_dict(),
            "service_time": r.service.to_dict(),
            **{f"latency_{k}": h.to_dict() for k, h in sorted(r.by_start.items())},
        },
    }


def _row(label: str, h: Histogram) -> str:
    if h.count == 0:
        return f"  {label:<24} {'—':>8}"
    values = [h.percentile(q) / 1e3 for _, q in PERCENTILES] + [h.max / 1e3, h.mean / 1e3]
    return f"  {label:<24}" + "".join(f"{v:9.2f}" for v in values) + f"{h.count:9d}"


def table(result: LoadResult) -> str:
    r, doc = result.recorder, to_json(result)
    t, rate, starts, v = doc["totals"], doc["rates"], doc["starts"], result.verdict
    targets = result.config.targets
    functions = ", ".join(f"{x.function}×{x.weight:g}" if len(targets) > 1 else x.function for x in targets)
    lines = [
        f"lambda-scheduler load: {doc['config']['description']} → {result.config.endpoint} ({functions})",
        (
            f"requests    {t['sent']} sent, {t['completed']} answered: {t['ok']} ok, {t['errors']} errors, "
            f"{t['throttles']} throttles" + (f" ({t['unfinished']} unfinished)" if t["unfinished"] else "")
        ),
        (
            f"rate        sent {rate['sent_per_s']:.1f}/s over {rate['dispatch_window_s']:.2f} s; "
            f"answered {rate['throughput_per_s']:.1f}/s over {rate['elapsed_s']:.2f} s"
        ),
        "latency ms  " + " " * 14 + "".join(f"{n:>9}" for n, _ in PERCENTILES) + f"{'max':>9}{'mean':>9}{'count':>9}",
        _row("all (from intended)", r.latency),
    ]
    for start in ("warm", "cold", "unknown"):
        if start in r.by_start:
            lines.append(_row(start, r.by_start[start]))
    lines.append(_row("service (from send)", r.service))
    if len(r.by_function) > 1:
        lines += [_row(f"fn {name}", h) for name, h in sorted(r.by_function.items())]
    cold_line = f"starts      cold {starts['cold']} ({starts['cold_percent']:.1f} %), warm {starts['warm']}"
    if starts["unknown"]:
        cold_line += f", unknown {starts['unknown']} (no Tail log: X-Amz-Log-Result missing)"
    if r.init_ms.count:
        cold_line += f"; Init Duration p50 {r.init_ms.percentile(0.5) / 1e3:.2f} ms"
    lines.append(cold_line)
    if result.config.verify_field:
        lines.append(f"echo check  {t['mismatches']} responses carried another request's token (of {t['ok']} ok)")
    lines += [f"error       {name}: {n}" for name, n in r.errors.most_common()]
    lines += [f"throttle    {name}: {n}" for name, n in r.throttles.most_common()]
    summary = (
        f"CPU {v.cpu_percent:.0f} % of a core, dispatch lag p99 {v.dispatch_lag_ms['p99']:.1f} ms, "
        f"loop lag p99 {v.loop_lag_ms['p99']:.1f} ms"
    )
    if v.bottleneck:
        lines.append(f"harness     THE HARNESS WAS A BOTTLENECK ({summary}):")
        lines += [f"              - {reason}" for reason in v.reasons]
    else:
        lines.append(f"harness     not the bottleneck ({summary})")
    lines += [f"note        {note}" for note in v.notes]
    return "\n".join(lines)
