"""Run every benchmark, then write benchmarks/results/ and BENCHMARKS.md.

    python benchmarks/run_all.py              the full run (~10–15 minutes on 2 cores)
    python benchmarks/run_all.py --quick      a smoke run (~2 minutes): every script, seconds each
    python benchmarks/run_all.py --only http,scale
    python benchmarks/run_all.py --report-only    regenerate BENCHMARKS.md from the saved JSON

Installs what is missing first (wrk, node/npm with apt-get when root; serverless-offline with
npm ci; see benchlib/install.py). Each item runs as its own process with a time limit; one
that fails is reported and the others still run. Logs: benchmarks/results/tmp/logs/.

1. engine.py         Python API vs ProcessPoolExecutor, multiprocessing.Pool, loky
   metrics_overhead.py, isolation_cost.py (when present; other engineers': the cost of
   metrics, of isolation)
2. http_invoke.py    warm no-op over HTTP vs bare aiohttp and serverless-offline (wrk)
3. cold_start.py     first response from a new environment vs python3 spawn and serverless-offline
4. correctness.py    replies matched to requests; timeout precision under load
5. scale.py          1,000 live environments: memory, scheduler CPU, latency
6. interop.py        wrk's Lua script driving the Invoke API
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import install, report
from benchlib.common import RESULTS
from benchlib.servers import ROOT

LOGS = RESULTS / "tmp" / "logs"


@dataclass(frozen=True)
class Item:
    key: str
    script: str
    timeout_s: float  # full run; a quick run gets a fifth of it (at least 120 s)
    out_flag: bool = True  # takes --out results/KEY.json (and writes KEY.png beside it, if any)


ITEMS = (
    Item("engine", "engine.py", 600),
    Item("metrics_overhead", "metrics_overhead.py", 600),
    Item("isolation_cost", "isolation_cost.py", 300),
    Item("http", "http_invoke.py", 600),
    Item("cold_start", "cold_start.py", 300),
    Item("correctness", "correctness.py", 400),
    Item("scale", "scale.py", 600),
    Item("interop", "interop.py", 120),
)


def run_item(item: Item, quick: bool) -> dict[str, Any]:
    script = HERE / item.script
    if not script.is_file():
        return {"key": item.key, "status": "absent", "seconds": 0.0}
    command = [sys.executable, str(script)]
    if quick:
        command.append("--quick")
    if item.out_flag:
        command += ["--out", str(RESULTS / f"{item.key}.json")]
        # A failed run must not leave an older run's figures to be reported as this one's.
        for stale in (RESULTS / f"{item.key}.json", RESULTS / f"{item.key}.png"):
            stale.unlink(missing_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{item.key}.log"
    timeout = max(120.0, item.timeout_s / 5) if quick else item.timeout_s
    print(f"\n=== {item.key}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        copier = threading.Thread(target=_copy, args=(proc, sink), daemon=True)
        copier.start()
        try:
            proc.wait(timeout)
            status = "ok" if proc.returncode == 0 else f"failed ({proc.returncode})"
        except subprocess.TimeoutExpired:
            # SIGTERM first: the scripts turn it into SystemExit and stop the servers they started.
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            status = f"timed out after {timeout:.0f} s"
        copier.join(5)
    seconds = time.perf_counter() - started
    print(f"=== {item.key}: {status} in {seconds:.0f} s (log: {log.relative_to(ROOT)})", flush=True)
    return {"key": item.key, "status": status, "seconds": seconds, "log": str(log.relative_to(ROOT))}


def _copy(proc: subprocess.Popen[str], sink: TextIO) -> None:
    """Echo the item's output and keep it in its log."""
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        sink.write(line)


def _merged(summary: dict[str, Any]) -> dict[str, Any]:
    """A partial run (--only) updates its items in the last run's summary, keeping the others."""
    try:
        previous = json.loads((RESULTS / "run_all.json").read_text())
    except (OSError, ValueError):
        return summary
    fresh = {item["key"] for item in summary["items"]}
    kept = [item for item in previous.get("items", []) if item["key"] not in fresh]
    order = [i.key for i in ITEMS]
    items = sorted(kept + summary["items"], key=lambda item: order.index(item["key"]) if item["key"] in order else 99)
    seconds = sum(float(item["seconds"]) for item in items)
    return {**summary, "items": items, "seconds": seconds, "quick": summary["quick"] or previous.get("quick", False)}


def python_extras() -> list[str]:
    notes = []
    for module, extra in (("matplotlib", "bench"), ("loky", "bench"), ("boto3", "test")):
        try:
            __import__(module)
        except ImportError:
            notes.append(f"{module} missing (pip install -e '.[{extra}]')")
    return notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: every benchmark for seconds, noisy numbers")
    parser.add_argument("--only", help="comma-separated items: " + ",".join(i.key for i in ITEMS))
    parser.add_argument("--no-install", action="store_true", help="do not install wrk / node / serverless-offline")
    parser.add_argument("--report-only", action="store_true", help="only regenerate BENCHMARKS.md from results/")
    parser.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    if args.report_only:
        report.write(args.markdown, RESULTS)
        print(f"wrote {args.markdown}")
        return 0
    chosen = set(args.only.split(",")) if args.only else {i.key for i in ITEMS}
    unknown = chosen - {i.key for i in ITEMS}
    if unknown:
        parser.error(f"unknown items: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    notes = [] if args.no_install else install.ensure_all()
    notes += python_extras()
    for note in notes:
        print(f"setup: {note}", flush=True)
    items = [run_item(item, args.quick) for item in ITEMS if item.key in chosen]
    summary = {"quick": args.quick, "install": notes, "items": items, "seconds": time.perf_counter() - started}
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.only:
        summary = _merged(summary)
    (RESULTS / "run_all.json").write_text(json.dumps(summary, indent=2))
    report.write(args.markdown, RESULTS)
    print(f"\nwrote {args.markdown} and {RESULTS.relative_to(ROOT)}/ in {summary['seconds']:.0f} s")
    for item in items:
        print(f"  {item['key']:<18} {item['status']:<24} {item['seconds']:6.0f} s")
    failed = [i for i in items if i["status"] not in ("ok", "absent")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
