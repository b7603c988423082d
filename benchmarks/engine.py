"""Engine benchmark: the Python API against the pipe floor and the process pools people use.

Measured in one run, on the same machine, so the ratios mean something on a noisy host:

- floor: a msgspec frame round trip over a pipe pair to a forked process (blocking, and
  driven by uvloop) — the cost no scheduler on this machine can go below;
- warm invoke latency, no-op handler, one in flight: back to back, and after idle gaps;
- no-op invocations per second with 2 / 4 / 8 environments (one caller per environment);
- cold start (trivial Init), end to end: admission to reply of a call that forks a new
  environment;
- the same no-op workload through concurrent.futures.ProcessPoolExecutor (via
  loop.run_in_executor), multiprocessing.Pool and loky.

    python benchmarks/engine.py [--quick] [--out benchmarks/results/engine.json]

Prints a table and ratios; saves JSON (and a PNG if matplotlib is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scheduler import FunctionConfig, Scheduler
from scheduler.engine.protocol import Invoke, Response, frame

HANDLER_CODE = "def noop(event, context):\n    return None\n"


def noop(x: object) -> None:
    return None


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary_us(samples_s: list[float]) -> dict[str, float]:
    us = [s * 1e6 for s in samples_s]
    return {"p50_us": pct(us, 0.5), "p99_us": pct(us, 0.99), "mean_us": statistics.fmean(us), "n": len(us)}


# --- the floor ------------------------------------------------------------------------------


def _echo_child(rfd: int, wfd: int) -> None:
    decoder = msgspec.msgpack.Decoder(Invoke)
    encoder = msgspec.msgpack.Encoder()
    while True:
        data = os.read(rfd, 65536)
        if not data:
            os._exit(0)
        msg = decoder.decode(data[4:])
        os.write(wfd, frame(encoder, Response(msg.request_id, b"null", 0, 0)))


async def floor(n: int) -> dict[str, Any]:
    """Round trip of one Invoke-sized frame to a forked echo process and back."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(to_child_w)
            os.close(from_child_r)
            _echo_child(to_child_r, from_child_w)
        finally:
            os._exit(1)
    os.close(to_child_r)
    os.close(from_child_w)
    encoder = msgspec.msgpack.Encoder()
    msg = frame(encoder, Invoke("5b0e8ec8-3b5e-4f8e-a3c2-1a2b3c4d5e6f", b"{}", 0, "arn:aws:lambda:us-east-1:123456789012:function:noop"))
    blocking = []
    for _ in range(n):
        t = time.perf_counter()
        os.write(to_child_w, msg)
        os.read(from_child_r, 65536)
        blocking.append(time.perf_counter() - t)
    loop = asyncio.get_running_loop()
    os.set_blocking(from_child_r, False)
    waiter: asyncio.Future[None] | None = None

    def readable() -> None:
        os.read(from_child_r, 65536)
        assert waiter is not None
        waiter.set_result(None)

    loop.add_reader(from_child_r, readable)
    driven = []
    for _ in range(n):
        waiter = loop.create_future()
        t = time.perf_counter()
        os.write(to_child_w, msg)
        await waiter
        driven.append(time.perf_counter() - t)
    loop.remove_reader(from_child_r)
    for fd in (to_child_w, from_child_r):
        os.close(fd)
    os.waitpid(pid, 0)  # noqa: ASYNC222 - the echo child exits at once on EOF
    return {"blocking": summary_us(blocking), "uvloop": summary_us(driven)}


# --- the scheduler --------------------------------------------------------------------------


def _config(code: Path, name: str = "noop", **kw: Any) -> FunctionConfig:
    # 1,769 MB is one vCPU: a smaller function gets a share of a core (128 MB ≈ 7 %) and a
    # tight loop of calls would measure the CPU quota, not the scheduler.
    return FunctionConfig(name=name, handler="bench.noop", code_dir=code, memory_mb=1769, **kw)


async def warm_latency(code: Path, n: int, idle_n: int) -> dict[str, Any]:
    async with Scheduler([_config(code)]) as s:
        for _ in range(200):
            await s.invoke("noop", b"{}")
        back_to_back = []
        for _ in range(n):
            t = time.perf_counter()
            await s.invoke("noop", b"{}")
            back_to_back.append(time.perf_counter() - t)
        after_idle = []
        for _ in range(idle_n):
            await asyncio.sleep(0.02)
            t = time.perf_counter()
            await s.invoke("noop", b"{}")
            after_idle.append(time.perf_counter() - t)
    return {"back_to_back": summary_us(back_to_back), "after_20ms_idle": summary_us(after_idle)}


async def throughput(code: Path, envs: int, n: int) -> dict[str, float]:
    config = _config(code, provisioned_concurrency=envs, reserved_concurrency=envs)
    async with Scheduler([config], min_unreserved_concurrency=0) as s:

        async def caller(count: int) -> None:
            for _ in range(count):
                await s.invoke("noop", b"{}")

        await asyncio.gather(*(caller(100) for _ in range(envs)))
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        await asyncio.gather(*(caller(n // envs) for _ in range(envs)))
        elapsed = time.perf_counter() - t
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"per_s": n / elapsed, "scheduler_cpu_us_per_call": cpu / n * 1e6}


async def cold_start(code: Path, n: int) -> dict[str, Any]:
    async with Scheduler([]) as s:
        samples, init = [], []
        for i in range(n):
            s.add_function(_config(code, name=f"cold{i}"))
            t = time.perf_counter()
            result = await s.invoke(f"cold{i}", b"{}")
            samples.append(time.perf_counter() - t)
            assert result.start == "cold" and result.error_type is None
            init.append((result.init_duration_ms or 0) / 1e3)
            s.remove_function(f"cold{i}")
    return {"end_to_end": summary_us(samples), "init_duration": summary_us(init)}


# --- the peers ------------------------------------------------------------------------------


async def ppe_throughput(workers: int, n: int) -> float:
    loop = asyncio.get_running_loop()
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:

        async def caller(count: int) -> None:
            for i in range(count):
                await loop.run_in_executor(ex, noop, i)

        await asyncio.gather(*(caller(50) for _ in range(workers)))
        t = time.perf_counter()
        await asyncio.gather(*(caller(n // workers) for _ in range(workers)))
        return n / (time.perf_counter() - t)


async def ppe_latency(n: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as ex:
        for i in range(100):
            await loop.run_in_executor(ex, noop, i)
        samples = []
        for i in range(n):
            t = time.perf_counter()
            await loop.run_in_executor(ex, noop, i)
            samples.append(time.perf_counter() - t)
    return summary_us(samples)


def pool_throughput(workers: int, n: int) -> float:
    with mp.get_context("fork").Pool(workers) as pool:
        list(pool.imap_unordered(noop, range(500)))
        t = time.perf_counter()
        list(pool.imap_unordered(noop, range(n)))
        return n / (time.perf_counter() - t)


def pool_latency(n: int) -> dict[str, float]:
    with mp.get_context("fork").Pool(1) as pool:
        for i in range(100):
            pool.apply(noop, (i,))
        samples = []
        for i in range(n):
            t = time.perf_counter()
            pool.apply(noop, (i,))
            samples.append(time.perf_counter() - t)
    return summary_us(samples)


def loky_throughput(workers: int, n: int) -> float | None:
    try:
        from loky import get_reusable_executor
    except ImportError:
        return None
    ex = get_reusable_executor(max_workers=workers)
    list(ex.map(noop, range(200)))
    t = time.perf_counter()
    futures = [ex.submit(noop, i) for i in range(n)]
    for f in futures:
        f.result()
    rate = n / (time.perf_counter() - t)
    ex.shutdown(wait=True)
    return rate


# --- the run --------------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    q = args.quick
    code = Path(tempfile.mkdtemp(prefix="bench-"))
    (code / "bench.py").write_text(HANDLER_CODE)
    code.chmod(0o755)  # readable by the unprivileged users environments run as
    n_lat = 1000 if q else 5000
    n_tp = 4000 if q else 40000
    repeats = 1 if q else 3
    results: dict[str, Any] = {"machine": machine()}
    print("floor …", flush=True)
    results["floor"] = await floor(n_lat)
    print("warm latency …", flush=True)
    results["warm"] = await warm_latency(code, n_lat, 50 if q else 300)
    print("cold start …", flush=True)
    results["cold"] = await cold_start(code, 30 if q else 200)
    results["throughput"] = {}
    for envs in (2, 4, 8):
        print(f"throughput, {envs} environments …", flush=True)
        runs = [await throughput(code, envs, n_tp) for _ in range(repeats)]
        results["throughput"][envs] = {
            "per_s": median_of(runs, "per_s"),
            "scheduler_cpu_us_per_call": median_of(runs, "scheduler_cpu_us_per_call"),
            "runs": [r["per_s"] for r in runs],
        }
    print("peers …", flush=True)
    peers: dict[str, Any] = {"ppe": {}, "pool": {}, "loky": {}}
    for workers in (2, 4, 8):
        peers["ppe"][workers] = statistics.median([await ppe_throughput(workers, n_tp // 4) for _ in range(repeats)])
        peers["pool"][workers] = statistics.median([pool_throughput(workers, n_tp) for _ in range(repeats)])
        rates = [loky_throughput(workers, n_tp // 4) for _ in range(repeats)]
        peers["loky"][workers] = statistics.median(r for r in rates if r) if all(rates) else None
    peers["ppe_latency"] = await ppe_latency(n_lat // 2)
    peers["pool_latency"] = pool_latency(n_lat // 2)
    results["peers"] = peers
    results["ratios"] = ratios(results)
    shutil.rmtree(code, ignore_errors=True)
    return results


def ratios(r: dict[str, Any]) -> dict[str, float]:
    t8 = r["throughput"][8]["per_s"]
    return {
        "throughput_8_vs_ppe_8": t8 / r["peers"]["ppe"][8],
        "throughput_8_vs_pool_8": t8 / r["peers"]["pool"][8],
        "warm_p50_vs_floor_uvloop_p50": r["warm"]["back_to_back"]["p50_us"] / r["floor"]["uvloop"]["p50_us"],
        "warm_p50_vs_ppe_p50": r["warm"]["back_to_back"]["p50_us"] / r["peers"]["ppe_latency"]["p50_us"],
    }


def machine() -> dict[str, Any]:
    import msgspec as m

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "uvloop": uvloop.__version__,
        "msgspec": m.__version__,
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def report(r: dict[str, Any]) -> str:
    f, w, c = r["floor"], r["warm"], r["cold"]
    lines = [
        f"pipe floor, blocking        p50 {f['blocking']['p50_us']:8.1f} µs   p99 {f['blocking']['p99_us']:8.1f} µs",
        f"pipe floor, uvloop          p50 {f['uvloop']['p50_us']:8.1f} µs   p99 {f['uvloop']['p99_us']:8.1f} µs",
        f"warm invoke, back to back   p50 {w['back_to_back']['p50_us']:8.1f} µs   p99 {w['back_to_back']['p99_us']:8.1f} µs",
        f"warm invoke, after 20 ms    p50 {w['after_20ms_idle']['p50_us']:8.1f} µs   p99 {w['after_20ms_idle']['p99_us']:8.1f} µs",
        f"ProcessPoolExecutor, 1      p50 {r['peers']['ppe_latency']['p50_us']:8.1f} µs   p99 {r['peers']['ppe_latency']['p99_us']:8.1f} µs",
        f"multiprocessing.Pool.apply  p50 {r['peers']['pool_latency']['p50_us']:8.1f} µs   p99 {r['peers']['pool_latency']['p99_us']:8.1f} µs",
        f"cold start, end to end      p50 {c['end_to_end']['p50_us'] / 1e3:8.2f} ms   p99 {c['end_to_end']['p99_us'] / 1e3:8.2f} ms",
        "",
        "no-op invocations/s   scheduler   sched CPU/call   ProcessPoolExecutor   Pool.imap_unordered   loky",
    ]
    for envs in (2, 4, 8):
        t = r["throughput"][envs]
        loky = r["peers"]["loky"][envs]
        lines.append(
            f"  {envs} environments     {t['per_s']:9.0f}   {t['scheduler_cpu_us_per_call']:9.1f} µs"
            f"   {r['peers']['ppe'][envs]:15.0f}   {r['peers']['pool'][envs]:19.0f}   {loky or float('nan'):6.0f}"
        )
    lines.append("")
    for key, value in r["ratios"].items():
        lines.append(f"{key:32s} {value:6.2f}x")
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    envs = [2, 4, 8]
    width = 0.2
    series = [
        ("lambda-scheduler", [r["throughput"][e]["per_s"] for e in envs]),
        ("ProcessPoolExecutor", [r["peers"]["ppe"][e] for e in envs]),
        ("multiprocessing.Pool", [r["peers"]["pool"][e] for e in envs]),
        ("loky", [r["peers"]["loky"][e] or 0 for e in envs]),
    ]
    for i, (label, values) in enumerate(series):
        ax.bar([x + (i - 1.5) * width for x in range(len(envs))], values, width, label=label)
    ax.set_xticks(range(len(envs)), [f"{e} workers" for e in envs])
    ax.set_ylabel("no-op calls per second")
    ax.set_title("No-op throughput, one run, same machine")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples, one repeat (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "engine.json")
    args = parser.parse_args()
    results = uvloop.run(run(args))
    text = report(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    plot(results, args.out.with_suffix(".png"))
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
