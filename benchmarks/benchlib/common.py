"""What every benchmark script shares: its command line, where results go, medians, and
running the harness (scheduler.load) from a script."""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .machine import machine
from .servers import BENCH, ROOT

RESULTS = BENCH / "results"

sys.path.insert(0, str(ROOT))  # the scheduler package, when run from a checkout without install


def _terminate(signum: int, frame: object) -> None:
    # run_all.py stops an item that overruns with SIGTERM: unwind, so that every `finally`
    # stops the servers the script started (they live in process groups of their own).
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _terminate)


def parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: seconds, one repeat, noisy numbers")
    p.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="results JSON (PNG beside it)")
    return p


def median(values: Iterable[float]) -> float:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else float("nan")


def save(path: Path, results: dict[str, Any], *, quick: bool, command: str) -> None:
    results = {"quick": quick, "command": command, "machine": machine(), **results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"saved {path}", flush=True)


def command_line() -> str:
    """This script's command, with paths relative to the repository (as a reader would type it)."""

    def shown(arg: str) -> str:
        if arg.startswith(str(ROOT) + "/"):
            arg = arg[len(str(ROOT)) + 1 :]
        return arg if " " not in arg else repr(arg)

    return " ".join(["python", *map(shown, sys.argv)])


def pyplot() -> Any | None:
    """matplotlib's pyplot for files, or None when the bench extra is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots (pip install -e '.[bench]')", flush=True)
        return None
    return plt
