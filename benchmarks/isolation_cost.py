"""What isolation costs: cold start with cgroups (pre-warmed or not) vs the fallback, and warm
latency with freezing idle environments on vs off — all in one run.

    python benchmarks/isolation_cost.py [--quick] [--out benchmarks/results/isolation.json]

Functions have 1,769 MB (one vCPU), so the CPU quota does not throttle the tight loops.
Cold starts are measured on distinct functions kept alive, so that every one makes a new
cgroup (the worst case: a busy scheduler recycles the cgroups of exited environments).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine import machine, summary_us

from scheduler import FunctionConfig, Scheduler

HANDLER = "def noop(event, context):\n    return None\n"


def _code() -> Path:
    code = Path(tempfile.mkdtemp(prefix="bench-iso-", dir=os.environ.get("BENCH_CODE_DIR")))
    (code / "bench.py").write_text(HANDLER)
    code.chmod(0o755)
    return code


async def cold(code: Path, n: int, **settings: Any) -> dict[str, Any]:
    async with Scheduler([], **settings) as s:
        samples = []
        for i in range(n):
            s.add_function(FunctionConfig(name=f"c{i}", handler="bench.noop", code_dir=code, memory_mb=1769))
            t = time.perf_counter()
            result = await s.invoke(f"c{i}", b"{}")
            samples.append(time.perf_counter() - t)
            assert result.start == "cold" and result.error_type is None, result.payload
        return {"mechanisms": s.isolation.describe(), "end_to_end": summary_us(samples)}


async def warm(code: Path, n: int, **settings: Any) -> dict[str, Any]:
    async with Scheduler([FunctionConfig(name="w", handler="bench.noop", code_dir=code, memory_mb=1769)], **settings) as s:
        for _ in range(200):
            await s.invoke("w", b"{}")
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            await s.invoke("w", b"{}")
            samples.append(time.perf_counter() - t)
        return {"mechanisms": s.isolation.describe(), "back_to_back": summary_us(samples)}


async def run(quick: bool) -> dict[str, Any]:
    code = _code()
    n_cold = 20 if quick else 100
    n_warm = 1000 if quick else 5000
    results: dict[str, Any] = {"machine": machine(), "cold": {}, "warm": {}}
    cases = {
        "cgroups + namespace + uid": {},
        "fallback": {"isolation": "fallback"},
    }
    for label, settings in cases.items():
        print(f"cold start: {label} …", flush=True)
        results["cold"][label] = await cold(code, n_cold, **settings)
    for label, settings in {
        "isolated, frozen between calls": {},
        "isolated, not frozen": {"freeze_idle": False},
        "fallback, frozen": {"isolation": "fallback"},
        "fallback, not frozen": {"isolation": "fallback", "freeze_idle": False},
    }.items():
        print(f"warm latency: {label} …", flush=True)
        results["warm"][label] = await warm(code, n_warm, **settings)
    shutil.rmtree(code, ignore_errors=True)
    return results


def report(r: dict[str, Any]) -> str:
    lines = ["cold start (trivial Init), end to end"]
    for label, v in r["cold"].items():
        e = v["end_to_end"]
        lines.append(f"  {label:42s} p50 {e['p50_us'] / 1e3:7.2f} ms   p99 {e['p99_us'] / 1e3:7.2f} ms")
    lines.append("warm invoke, no-op, back to back")
    for label, v in r["warm"].items():
        e = v["back_to_back"]
        lines.append(f"  {label:42s} p50 {e['p50_us']:7.1f} µs   p99 {e['p99_us']:7.1f} µs")
    cold = r["cold"]
    base = cold["fallback"]["end_to_end"]["p50_us"]
    lines.append(f"cgroup + namespace + uid on a cold start (vs fallback, p50): "
                 f"{(cold['cgroups + namespace + uid']['end_to_end']['p50_us'] - base) / 1e3:+.2f} ms")
    w = r["warm"]
    lines.append(f"freeze/thaw on a warm call (p50): "
                 f"{w['isolated, frozen between calls']['back_to_back']['p50_us'] - w['isolated, not frozen']['back_to_back']['p50_us']:+.1f} µs")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "isolation.json")
    args = parser.parse_args()
    results = uvloop.run(run(args.quick))
    print(report(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
