"""What a runtime's own interpreter costs: cold and warm invocations of a no-op handler on the
server's interpreter and on other Python versions' zygotes, taken in turn (one of each per
round) so that a noisy host weighs on all alike.

    python benchmarks/runtimes.py [--n 30] [--runtime python3.12=/path/to/python3.12 ...]

Without --runtime, pyenv's interpreters for python3.12 and python3.13 are used where present.
Each cold start is forced by Scheduler.reload_code (as serve --watch does after an edit).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scheduler import FunctionConfig, Scheduler

CHECKOUT = Path(__file__).resolve().parent.parent
OWN = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def _pyenv(runtime: str) -> str | None:
    release = runtime.removeprefix("python")
    found = sorted(Path("/root/.pyenv/versions").glob(f"{release}.*/bin/{runtime}"), reverse=True)
    return str(found[0]) if found else None


def _interpreters(given: list[str]) -> dict[str, str]:
    if given:
        return dict(item.split("=", 1) for item in given)
    return {r: p for r in ("python3.12", "python3.13") if r != OWN and (p := _pyenv(r))}


async def _measure(interpreters: dict[str, str], n: int) -> None:
    parent = CHECKOUT / ".tmp"
    parent.mkdir(exist_ok=True)
    code = Path(tempfile.mkdtemp(prefix="bench-runtimes-", dir=parent))
    (code / "bench.py").write_text("def noop(event, context):\n    return None\n")
    code.chmod(0o755)
    runtimes = [OWN, *interpreters]
    functions = [FunctionConfig(name=r.replace(".", "_"), handler="bench.noop", code_dir=code, runtime=r) for r in runtimes]
    cold: dict[str, list[float]] = {r: [] for r in runtimes}
    init: dict[str, list[float]] = {r: [] for r in runtimes}
    warm: dict[str, list[float]] = {r: [] for r in runtimes}
    async with Scheduler(functions, runtime_interpreters=interpreters) as s:
        for name in (f.name for f in functions):
            await s.invoke(name, {})  # every zygote up before the first round
        for _ in range(n):
            for runtime, config in zip(runtimes, functions, strict=True):
                s.reload_code(config.name)
                began = time.perf_counter()
                result = await s.invoke(config.name, {})
                cold[runtime].append((time.perf_counter() - began) * 1000)
                init[runtime].append(result.init_duration_ms or 0.0)
                for _ in range(20):
                    began = time.perf_counter()
                    await s.invoke(config.name, {})
                    warm[runtime].append((time.perf_counter() - began) * 1e6)
    print(f"{'runtime':11} {'cold p50 ms':>12} {'Init p50 ms':>12} {'warm p50 µs':>12}")
    for runtime in runtimes:
        row = (statistics.median(cold[runtime]), statistics.median(init[runtime]), statistics.median(warm[runtime]))
        print(f"{runtime:11} {row[0]:12.1f} {row[1]:12.1f} {row[2]:12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="cold starts per runtime (default: 30)")
    parser.add_argument("--runtime", action="append", default=[], metavar="RUNTIME=PYTHON")
    args = parser.parse_args()
    uvloop.run(_measure(_interpreters(args.runtime), args.n))


if __name__ == "__main__":
    main()
