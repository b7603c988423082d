"""Keep-alive policies replayed on an invocation trace: cold starts against idle memory.

A discrete-event simulation (no processes, no engine) of scheduler/keepalive.py's policies,
after the evaluation in "Serverless in the Wild: Characterizing and Optimizing the Serverless
Workload at a Large Cloud Provider" (Shahrad et al., USENIX ATC 2020).

The trace. A synthetic one day, in the schema of the Azure Functions 2019 public trace
(``invocations_per_function_md.anon.d01.csv``: HashOwner, HashApp, HashFunction, Trigger, then
columns 1..1440 with each minute's invocation count), generated with a fixed seed from the
paper's published characterisation, approximately:

* triggers in the proportions of the paper's Figure 3 (functions): HTTP 55 %, timer 16 %,
  queue 15 %, orchestration 7 %, storage 3 %, event 2 %, others 2 %;
* timer functions are periodic: a period from 1 minute to 1 day (mostly 5-60 minutes), a random
  phase, usually one invocation per firing;
* HTTP functions are Poisson with a diurnal swing; the other triggers are Poisson or bursty
  (on/off: bursts of 1-10 minutes at tens of invocations a minute, hours apart);
* the daily rate of the Poisson ones is log-normal, fitted to Figure 5's two quoted points
  (45 % of applications are invoked at most once an hour, 81 % at most once a minute), so
  rates span about six orders of magnitude; capped at 50,000 a day to keep the replay fast.

The replay. Each minute's invocations are spread uniformly (seeded) within the minute; each
invocation runs for its function's duration (log-normal per function, median 1 s, clipped to
0.05-60 s, roughly the paper's Figure 7). One environment runs one invocation at a time. An
arrival takes a warm idle environment of its function if there is one (most recently used
first), else it is a cold start. When an environment goes idle the policy is asked for its
window: it is unloaded for ``prewarm_s`` (no memory), then warm for ``keep_alive_s``, then
reaped; an arrival during the unloaded part is a cold start and cancels the reload. Idle
environment-seconds are the time environments spend loaded and idle: from going idle (or being
reloaded) until reuse or reaping, each idle episode counted whole, even past the end of the day.
Functions are independent (no memory limit, no eviction).

    python benchmarks/keepalive_trace.py [--functions 400] [--seed 2019] [--regen]

Prints a table; saves benchmarks/results/keepalive_trace.json and keepalive_trace.png, and the
trace as benchmarks/data/keepalive_trace.csv (regenerated when missing or with --regen).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import heapq
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.engine.keepalive import FixedTTL, Hybrid, KeepAlivePolicy, make_policy

DATA = ROOT / "benchmarks" / "data" / "keepalive_trace.csv"
RESULTS = ROOT / "benchmarks" / "results"
MINUTES = 1440
MAX_DAILY = 50_000  # per function: keeps the replay within a minute on one core

# Bands of invocations a day: at most hourly, at most once a minute, up to ~7 a minute, more.
RATE_BANDS = {"<24": (0, 24), "24-1440": (24, 1440), "1440-10k": (1440, 10_000), ">=10k": (10_000, 1 << 62)}
TRIGGERS = {"http": 0.55, "timer": 0.16, "queue": 0.15, "orchestration": 0.07, "storage": 0.03, "event": 0.02}
TRIGGERS["others"] = 1.0 - sum(TRIGGERS.values())
TIMER_PERIODS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440]
TIMER_WEIGHTS = [4, 2, 14, 14, 12, 14, 16, 6, 4, 5, 4, 5]


# ---------------------------------------------------------------------------------------- trace


@dataclass
class TraceRow:
    owner: str
    app: str
    function: str
    trigger: str
    counts: list[int]  # MINUTES entries


def _hash(kind: str, i: int, seed: int) -> str:
    return hashlib.sha256(f"{kind}-{seed}-{i}".encode()).hexdigest()


def _daily_rate(rng: np.random.Generator) -> float:
    # log10(invocations/day) ~ N(mu, sigma) with P(<= 24/day) = 0.45 and P(<= 1440/day) = 0.81
    # (Figure 5): mu = 1.60, sigma = 1.77. At least one a day, at most MAX_DAILY.
    return float(np.clip(10 ** rng.normal(1.60, 1.77), 1.0, MAX_DAILY))


def _poisson(rng: np.random.Generator, daily: float, diurnal: float) -> np.ndarray:
    minute = np.arange(MINUTES)
    phase = rng.uniform(0, MINUTES)
    shape = 1.0 + diurnal * np.sin(2 * np.pi * (minute - phase) / MINUTES)
    return rng.poisson(daily / MINUTES * shape)


def _timer(rng: np.random.Generator) -> np.ndarray:
    period = int(rng.choice(TIMER_PERIODS_MIN, p=np.array(TIMER_WEIGHTS) / sum(TIMER_WEIGHTS)))
    counts = np.zeros(MINUTES, dtype=np.int64)
    per_fire = 1 if rng.random() < 0.85 else int(rng.integers(2, 5))
    counts[int(rng.integers(0, period)) :: period] = per_fire
    return counts


def _bursty(rng: np.random.Generator) -> np.ndarray:
    counts = np.zeros(MINUTES, dtype=np.int64)
    mean_gap = math.exp(rng.uniform(math.log(20), math.log(8 * 60)))  # minutes between bursts
    intensity = float(np.clip(rng.lognormal(math.log(20), 1.0), 2, 300))  # per minute in a burst
    t = rng.exponential(mean_gap)
    while t < MINUTES:
        length = int(rng.integers(1, 11))
        start = int(t)
        counts[start : start + length] += rng.poisson(intensity, size=len(counts[start : start + length]))
        t += length + rng.exponential(mean_gap)
    return counts


def generate(n_functions: int, seed: int) -> list[TraceRow]:
    rng = np.random.default_rng(seed)
    rows: list[TraceRow] = []
    owner = app = -1
    left_in_app = 0
    names = list(TRIGGERS)
    weights = np.array([TRIGGERS[t] for t in names])
    while len(rows) < n_functions:
        if left_in_app == 0:
            app += 1
            if app == 0 or rng.random() < 0.7:  # most owners have one application
                owner += 1
            left_in_app = int(rng.geometric(0.55))  # most applications have 1-2 functions
        left_in_app -= 1
        trigger = str(rng.choice(names, p=weights))
        if trigger == "timer":
            counts = _timer(rng)
        elif trigger == "http":
            counts = _poisson(rng, _daily_rate(rng), rng.uniform(0.2, 0.9))
        elif trigger == "orchestration" or rng.random() < 0.5:
            counts = _bursty(rng)
        else:
            counts = _poisson(rng, _daily_rate(rng), rng.uniform(0.0, 0.5))
        if counts.sum() > MAX_DAILY:
            counts = np.floor(counts * (MAX_DAILY / counts.sum())).astype(np.int64)
        if counts.sum() == 0:
            counts[int(rng.integers(0, MINUTES))] = 1  # the trace lists only invoked functions
        rows.append(
            TraceRow(
                _hash("owner", owner, seed),
                _hash("app", app, seed),
                _hash("function", len(rows), seed),
                trigger,
                [int(c) for c in counts],
            )
        )
    return rows


def save_trace(rows: Sequence[TraceRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["HashOwner", "HashApp", "HashFunction", "Trigger", *map(str, range(1, MINUTES + 1))])
        for r in rows:
            w.writerow([r.owner, r.app, r.function, r.trigger, *r.counts])


def load_trace(path: Path) -> list[TraceRow]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert header[:4] == ["HashOwner", "HashApp", "HashFunction", "Trigger"], header[:4]
        return [TraceRow(r[0], r[1], r[2], r[3], [int(c) for c in r[4:]]) for r in reader]


# ---------------------------------------------------------------------------------- simulation


@dataclass
class Workload:
    name: str  # HashFunction
    trigger: str
    arrivals: list[float]  # seconds, sorted
    duration_s: float


def workloads(rows: Sequence[TraceRow], seed: int) -> list[Workload]:
    out = []
    for i, r in enumerate(rows):
        rng = np.random.default_rng([seed, i])  # per function, so arrivals don't depend on order
        counts = np.asarray(r.counts)
        minutes = np.repeat(np.arange(len(counts)), counts)
        arrivals = np.sort((minutes + rng.random(len(minutes))) * 60.0)
        duration = float(np.clip(rng.lognormal(0.0, 1.5), 0.05, 60.0))
        out.append(Workload(r.function, r.trigger, arrivals.tolist(), duration))
    return out


@dataclass
class FunctionResult:
    invocations: int
    cold: int
    idle_s: float


def replay(w: Workload, policy: KeepAlivePolicy) -> FunctionResult:
    """Replay one function's arrivals under `policy`; functions do not interact."""
    fn = w.name
    invoked = policy.invoked
    window = policy.window
    busy: list[float] = []  # heap of the end times of running invocations
    idle: list[list[float]] = []  # [warm_from, warm_until] of each idle environment
    cold = 0
    idle_s = 0.0

    def settle(until: float) -> None:
        # Environments whose invocation ended by `until` go idle, in order, and ask the policy.
        while busy and busy[0] <= until:
            end = heapq.heappop(busy)
            win = window(fn, end)
            warm_from = end + win.prewarm_s
            idle.append([warm_from, warm_from + win.keep_alive_s])

    for t in w.arrivals:
        settle(t)
        invoked(fn, t)
        best = -1
        pending = -1
        keep: list[list[float]] = []
        for env in idle:  # reap the expired; find the most recently warmed, and a pending one
            if env[1] < t:
                idle_s += env[1] - env[0]
                continue
            keep.append(env)
            j = len(keep) - 1
            if env[0] <= t:
                if best < 0 or env[0] > keep[best][0]:
                    best = j
            elif pending < 0:
                pending = j
        idle = keep
        if best >= 0:
            idle_s += t - idle[best][0]
            del idle[best]
        else:
            cold += 1
            if pending >= 0:
                del idle[pending]  # this cold start loads the environment the reload would have
        heapq.heappush(busy, t + w.duration_s)
    settle(math.inf)
    for env in idle:
        idle_s += env[1] - env[0]
    return FunctionResult(len(w.arrivals), cold, idle_s)


def run_policy(label: str, make: Callable[[], KeepAlivePolicy], loads: Sequence[Workload]) -> dict[str, Any]:
    policy = make()
    started = time.perf_counter()
    per = [replay(w, policy) for w in loads]
    elapsed = time.perf_counter() - started
    invocations = sum(r.invocations for r in per)
    cold = sum(r.cold for r in per)
    pct = np.array([100.0 * r.cold / r.invocations for r in per])
    by_trigger: dict[str, float] = {}
    for trig in sorted({w.trigger for w in loads}):
        rs = [r for r, w in zip(per, loads, strict=True) if w.trigger == trig]
        by_trigger[trig] = 100.0 * sum(r.cold for r in rs) / sum(r.invocations for r in rs)
    by_rate: dict[str, dict[str, float]] = {}
    for band, (lo, hi) in RATE_BANDS.items():
        rs = [r for r in per if lo <= r.invocations < hi]
        if rs:
            by_rate[band] = {
                "functions": len(rs),
                "cold_pct": 100.0 * sum(r.cold for r in rs) / sum(r.invocations for r in rs),
                "idle_env_s": sum(r.idle_s for r in rs),
            }
    return {
        "policy": label,
        "invocations": invocations,
        "cold_starts": cold,
        "cold_pct": 100.0 * cold / invocations,
        "per_function_cold_pct": {q: float(np.percentile(pct, int(q[1:]))) for q in ("p50", "p75", "p90")},
        "functions_always_cold_pct": float(100.0 * np.mean(pct == 100.0)),
        "idle_env_s": sum(r.idle_s for r in per),
        "cold_pct_by_trigger": by_trigger,
        "by_daily_invocations": by_rate,
        "replay_s": elapsed,
        "_per_function_cold": [r.cold for r in per],
    }


def policies() -> list[tuple[str, Callable[[], KeepAlivePolicy]]]:
    out: list[tuple[str, Callable[[], KeepAlivePolicy]]] = []

    def fixed(minutes: int) -> Callable[[], KeepAlivePolicy]:
        return lambda: make_policy("fixed", minutes * 60.0)

    for minutes in (5, 10, 20, 60, 120):
        out.append((f"fixed {minutes} min", fixed(minutes)))
    out.append(("hybrid (fallback 10 min)", lambda: make_policy("hybrid", 600.0)))
    # The paper's own fallback for a histogram that is not yet representative: the whole range.
    out.append(("hybrid (fallback 4 h)", lambda: Hybrid(4 * 3600.0)))
    return out


# ------------------------------------------------------------------------------------- report


def table(results: Sequence[dict[str, Any]], baseline: dict[str, Any]) -> str:
    head = (
        f"{'policy':<26} {'cold %':>7} {'p50 fn':>7} {'p75 fn':>7} {'p90 fn':>7} "
        f"{'idle env-h':>11} {'vs 10 min':>9} {'timer':>7} {'http':>7} {'fns +/-':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        q = r["per_function_cold_pct"]
        lines.append(
            f"{r['policy']:<26} {r['cold_pct']:>7.2f} {q['p50']:>7.1f} {q['p75']:>7.1f} {q['p90']:>7.1f} "
            f"{r['idle_env_s'] / 3600:>11.1f} {100 * r['idle_env_s'] / baseline['idle_env_s']:>8.0f}% "
            f"{r['cold_pct_by_trigger'].get('timer', float('nan')):>7.1f} "
            f"{r['cold_pct_by_trigger'].get('http', float('nan')):>7.1f} "
            f"{r['functions_vs_fixed_10min']['fewer_cold']:>4}/{r['functions_vs_fixed_10min']['more_cold']:<4}"
        )
    return "\n".join(lines)


def band_table(results: Sequence[dict[str, Any]]) -> str:
    bands = list(results[0]["by_daily_invocations"])
    counts = ", ".join(f"{b}: {results[0]['by_daily_invocations'][b]['functions']:.0f}" for b in bands)
    head = f"{'cold % / idle env-h, by invocations a day':<42}" + "".join(f"{b:>18}" for b in bands)
    lines = [f"functions per band: {counts}", head, "-" * len(head)]
    for r in results:
        cells = r["by_daily_invocations"]
        lines.append(
            f"{r['policy']:<42}"
            + "".join(f"{cells[b]['cold_pct']:>9.1f} /{cells[b]['idle_env_s'] / 3600:>6.0f} h" for b in bands)
        )
    return "\n".join(lines)


def plot(results: Sequence[dict[str, Any]], baseline: dict[str, Any], path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    panels = (
        ("p75", "75th percentile of per-function cold-start %  (the paper's metric)"),
        ("p50", "median of per-function cold-start %"),
        ("overall", "cold starts, % of all invocations"),
    )
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        for series, marker, colour in (("fixed", "o", "tab:blue"), ("hybrid", "s", "tab:red")):
            pts = [r for r in results if r["policy"].startswith(series)]
            xs = [100 * r["idle_env_s"] / baseline["idle_env_s"] for r in pts]
            ys = [r["cold_pct"] if key == "overall" else r["per_function_cold_pct"][key] for r in pts]
            ax.plot(
                xs,
                ys,
                marker=marker,
                color=colour,
                linestyle="-" if series == "fixed" else "none",
                label="fixed TTL" if series == "fixed" else "hybrid histogram",
                markersize=8,
            )
            for r, x, y in zip(pts, xs, ys, strict=True):
                # Fixed TTLs labelled above right, hybrids below left: they never collide.
                if series == "fixed":
                    text, offset, ha = r["policy"].removeprefix("fixed "), (5, 6), "left"
                else:
                    low = key != "overall" and y < 15  # a label below would cross the x axis
                    text, offset, ha = r["policy"].replace("hybrid (", "hybrid\n("), (-8, 6 if low else -22), "right"
                ax.annotate(text, (x, y), textcoords="offset points", xytext=offset, fontsize=8, color=colour, ha=ha)
        ax.set_xlabel("idle environment-time, % of fixed 10 min")
        ax.set_title(ylabel, fontsize=9)
        ax.set_ylabel("cold-start %")
        ax.grid(True, alpha=0.3)
        if key == "overall":
            ax.set_ylim(0, 1.15 * max(r["cold_pct"] for r in results))
        else:
            ax.set_ylim(0, 110)
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(
        f"Keep-alive policies replayed on a synthetic Azure-style day (lower left is better): {subtitle}", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--functions", type=int, default=400)
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--trace", type=Path, default=DATA, help="a trace CSV in the Azure 2019 schema")
    ap.add_argument("--regen", action="store_true", help="regenerate the synthetic trace")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    if args.regen or not args.trace.exists():
        if args.trace != DATA and not args.regen:
            ap.error(f"{args.trace} does not exist")
        save_trace(generate(args.functions, args.seed), args.trace)
        print(f"generated {args.trace.relative_to(ROOT)} ({args.trace.stat().st_size / 1e6:.2f} MB)")
    rows = load_trace(args.trace)
    loads = workloads(rows, args.seed)
    n_inv = sum(len(w.arrivals) for w in loads)
    subtitle = f"{len(rows)} functions, 1 day, {n_inv:,} invocations"
    print(
        f"trace: {subtitle}; triggers: "
        + ", ".join(f"{t} {sum(w.trigger == t for w in loads)}" for t in sorted({w.trigger for w in loads}))
    )

    results = [run_policy(label, make, loads) for label, make in policies()]
    baseline = next(r for r in results if r["policy"] == "fixed 10 min")
    base_cold = baseline["_per_function_cold"]
    for r in results:
        mine = r.pop("_per_function_cold")
        r["functions_vs_fixed_10min"] = {
            "fewer_cold": sum(a < b for a, b in zip(mine, base_cold, strict=True)),
            "more_cold": sum(a > b for a, b in zip(mine, base_cold, strict=True)),
        }
    print()
    print(table(results, baseline))
    print(
        "\np50/p75/p90 fn: percentiles over functions of each function's cold-start %;"
        " idle env-h: loaded-but-idle environment-hours; timer/http: cold % of those triggers' invocations;"
        " fns +/-: functions with fewer/more cold starts than under fixed 10 min"
    )
    print()
    print(band_table(results))

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "keepalive_trace",
        "trace": {
            "path": str(args.trace.relative_to(ROOT)) if args.trace.is_relative_to(ROOT) else str(args.trace),
            "functions": len(rows),
            "invocations": n_inv,
            "seed": args.seed,
            "minutes": MINUTES,
        },
        "policies": {"fixed": repr(FixedTTL(600.0)), "hybrid": repr(make_policy("hybrid", 600.0))},
        "results": results,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "elapsed_s": time.perf_counter() - started,
    }
    (RESULTS / "keepalive_trace.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(results, baseline, RESULTS / "keepalive_trace.png", subtitle)
    print(f"\nsaved benchmarks/results/keepalive_trace.json and .png in {out['elapsed_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
