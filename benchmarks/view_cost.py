"""What the private roots cost a cold start: the view with them (the scheduler's checkout and
every function's code hidden) against the view without them (only folders closed to others
hidden), alternated A/B/A/B so that a noisy host weighs on both alike.

    sudo python benchmarks/view_cost.py [--rounds 8] [--n 25]

Two measures: the end-to-end cold start (medians per round, then the median of those), and
the view alone — planning and mounting it in a forked child, which is what differs.
Needs root and a mount namespace; the code lives in the checkout (as a template's would).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scheduler import FunctionConfig, Scheduler
from scheduler.engine.isolation import view
from scheduler.engine.isolation.manager import Isolation

HANDLER = "def noop(event, context):\n    return None\n"
CHECKOUT = Path(__file__).resolve().parent.parent


def _code() -> Path:
    parent = CHECKOUT / ".tmp"
    parent.mkdir(exist_ok=True)
    code = Path(tempfile.mkdtemp(prefix="bench-view-", dir=parent))
    (code / "bench.py").write_text(HANDLER)
    code.chmod(0o755)
    return code


@contextmanager
def _without_private_roots(off: bool) -> Iterator[None]:
    original = Isolation._view_layout
    if off:
        Isolation._view_layout = lambda self: ([], original(self)[1])  # type: ignore[method-assign]
    try:
        yield
    finally:
        Isolation._view_layout = original  # type: ignore[method-assign]


async def cold_round(code: Path, n: int, off: bool) -> float:
    """The median end-to-end cold start of ``n`` new functions, in ms."""
    with _without_private_roots(off):
        async with Scheduler([]) as s:
            samples = []
            for i in range(n):
                s.add_function(FunctionConfig(name=f"c{i}", handler="bench.noop", code_dir=code, memory_mb=1769))
                t = time.perf_counter()
                result = await s.invoke(f"c{i}", b"{}")
                samples.append(time.perf_counter() - t)
                assert result.start == "cold" and result.error_type is None, result.payload
    return statistics.median(samples) * 1e3


def view_round(code: Path, n: int, off: bool) -> float:
    """The median time a forked child takes to plan and build its view, in ms."""
    hidden = () if off else tuple(p for p in (view.source_checkout(), str(code)) if p)
    common = [p for p in sys.path if p and p != str(CHECKOUT / "benchmarks")]  # the zygote's import path
    planner = view.Planner(common, view.Layout(hidden))  # made once, as the zygote does
    samples = []
    for _ in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            t = time.perf_counter()
            view.build(planner.plan([str(code)]), 512)
            os.write(w, str(time.perf_counter() - t).encode())
            os._exit(0)
        os.close(w)
        took = float(os.read(r, 64))
        os.close(r)
        os.waitpid(pid, 0)
        samples.append(took)
    return statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--n", type=int, default=25)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a mount namespace and sandbox uids)")
    code = _code()
    results: dict[str, dict[bool, list[float]]] = {"end to end": {True: [], False: []}, "view": {True: [], False: []}}
    try:
        for i in range(args.rounds):
            for off in (i % 2 == 1, i % 2 == 0):  # ABAB… then BABA…: neither always goes first
                results["end to end"][off].append(uvloop.run(cold_round(code, args.n, off)))
                results["view"][off].append(view_round(code, args.n * 4, off))
    finally:
        for path in code.iterdir():
            path.unlink()
        code.rmdir()
    for what, by in results.items():
        with_roots, without = statistics.median(by[False]), statistics.median(by[True])
        print(
            f"{what:10s} with private roots {with_roots:7.3f} ms   without {without:7.3f} ms   "
            f"added {with_roots - without:+.3f} ms  (median of {args.rounds} round medians each)"
        )
        pairs = [a - b for a, b in zip(by[False], by[True], strict=True)]
        print(
            f"{'':10s} per-round differences: median {statistics.median(pairs):+.3f} ms, "
            f"range {min(pairs):+.3f} … {max(pairs):+.3f} ms"
        )


if __name__ == "__main__":
    main()
