"""Engine benchmark: the Python API against the pipe floor and the process pools people use.

Measured in one run, on the same machine, so the ratios mean something on a noisy host:

- floor: a msgspec frame round trip over a pipe pair to a forked process (blocking, and
  driven by uvloop) — the cost no scheduler on this machine can go below;
- warm invoke latency, no-op handler, one in flight: back to back, and after idle gaps;
- no-op invocations per second with 2 / 4 / 8 environments (one caller per environment);
- cold start (trivial Init), end to end: admission to reply of a call that forks a new
  environment — the first of a new function (which also leases its uid), and the scale-out
  of an existing one;
- the same no-op workload through concurrent.futures.ProcessPoolExecutor (via
  loop.run_in_executor), multiprocessing.Pool and loky.

    python benchmarks/engine.py [--quick] [--out benchmarks/results/engine.json]

Prints a table and ratios; saves JSON (and a PNG if matplotlib is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import contextlib
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scheduler import FunctionConfig, Scheduler
from scheduler.engine.protocol import Invoke, Response, frame

HANDLER_CODE = "def noop(event, context):\n    return None\n"
REQUEST_ID = "5b0e8ec8-3b5e-4f8e-a3c2-1a2b3c4d5e6f"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:noop"


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


class EchoWorkers:
    """Forked msgspec echo workers, each on its own pipe pair, driven from the event loop:
    what the hardware does with no scheduler at all."""

    def __init__(self, count: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.workers: list[tuple[int, int, int]] = []  # (pid, to child, from child)
        self.waiters: dict[int, asyncio.Future[None]] = {}
        encoder = msgspec.msgpack.Encoder()
        self.msg = frame(encoder, Invoke(REQUEST_ID, b"{}", 0, ARN))
        for _ in range(count):
            to_child_r, to_child_w = os.pipe()
            from_child_r, from_child_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(to_child_w)
                    os.close(from_child_r)
                    for _, w, r in self.workers:  # the earlier workers' ends: their EOF is not ours to hold
                        os.close(w)
                        os.close(r)
                    _echo_child(to_child_r, from_child_w)
                finally:
                    os._exit(1)
            os.close(to_child_r)
            os.close(from_child_w)
            self.workers.append((pid, to_child_w, from_child_r))

    def blocking_round_trip(self) -> float:
        _, w, r = self.workers[0]
        t = time.perf_counter()
        os.write(w, self.msg)
        os.read(r, 65536)
        return time.perf_counter() - t

    def drive(self) -> None:
        for _, _, r in self.workers:
            os.set_blocking(r, False)
            self.loop.add_reader(r, self._readable, r)

    def _readable(self, fd: int) -> None:
        os.read(fd, 65536)
        self.waiters.pop(fd).set_result(None)

    async def call(self, index: int = 0) -> None:
        _, w, r = self.workers[index]
        waiter = self.loop.create_future()
        self.waiters[r] = waiter
        os.write(w, self.msg)
        await waiter

    def close(self) -> None:
        for pid, w, r in self.workers:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(r)
            os.close(w)
            os.close(r)
            os.waitpid(pid, 0)


async def floor(n: int) -> dict[str, Any]:
    """Round trip of one Invoke-sized frame to a forked echo process and back, blocking and
    driven by uvloop, after a warm-up."""
    echo = EchoWorkers(1)
    for _ in range(200):
        echo.blocking_round_trip()
    blocking = [echo.blocking_round_trip() for _ in range(n)]
    echo.drive()
    for _ in range(200):
        await echo.call()
    driven = []
    for _ in range(n):
        t = time.perf_counter()
        await echo.call()
        driven.append(time.perf_counter() - t)
    echo.close()
    return {"blocking": summary_us(blocking), "uvloop": summary_us(driven)}


async def floor_throughput(workers: int, n: int) -> dict[str, float]:
    """One caller per echo worker, back to back: the rate and the parent's CPU per call."""
    echo = EchoWorkers(workers)
    echo.drive()

    async def caller(index: int, count: int) -> None:
        for _ in range(count):
            await echo.call(index)

    await asyncio.gather(*(caller(i, 100) for i in range(workers)))
    rate, cpu = await timed(n, lambda: asyncio.gather(*(caller(i, n // workers) for i in range(workers))))
    echo.close()
    return {"per_s": rate, "cpu_us_per_call": cpu}


async def timed(n: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Calls per second and this process's CPU µs per call while ``work`` runs."""
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return n / elapsed, cpu / n * 1e6


async def open_loop(rate: float, seconds: float, call: Callable[[], Awaitable[Any]] | None) -> float:
    """Calls started at a fixed rate (each awaited before the next is due, as at 300/s a call
    is far shorter than the gap): this process's CPU µs per call. ``call`` None: the loop
    only sleeps, the cost of the wakeups alone."""
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    gap = 1 / rate

    async def run() -> None:
        start = loop.time()
        for i in range(n):
            delay = start + i * gap - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if call is not None:
                await call()

    _, cpu = await timed(n, run)
    return cpu


async def floor_open_loop(rate: float, seconds: float) -> dict[str, float]:
    echo = EchoWorkers(1)
    echo.drive()
    for _ in range(100):
        await echo.call()
    with_calls = await open_loop(rate, seconds, echo.call)
    echo.close()
    return {"echo_cpu_us_per_call": with_calls, "sleep_only_cpu_us_per_tick": await open_loop(rate, seconds, None)}


# --- the scheduler --------------------------------------------------------------------------


def _config(code: Path, name: str = "noop", **kw: Any) -> FunctionConfig:
    # 1,769 MB is one vCPU: a smaller function gets a share of a core (128 MB ≈ 7 %) and a
    # tight loop of calls would measure the CPU quota, not the scheduler.
    return FunctionConfig(name=name, handler="bench.noop", code_dir=code, **{"memory_mb": 1769, **kw})


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


async def throughput(code: Path, envs: int, n: int, idle: int = 0) -> dict[str, float]:
    """``envs`` callers back to back on as many provisioned environments; with ``idle`` more
    live environments of another function standing by (the cost of many environments)."""
    configs = [_config(code, provisioned_concurrency=envs, reserved_concurrency=envs)]
    if idle:
        configs.append(_config(code, name="standby", memory_mb=128, provisioned_concurrency=idle, reserved_concurrency=idle))
    async with Scheduler(configs, min_unreserved_concurrency=0, account_concurrency=envs + idle + 10) as s:
        for name, count in (("noop", envs), ("standby", idle)):
            if count:
                await asyncio.wait_for(asyncio.shield(s.status(name).provisioned_settled), 900)

        async def caller(count: int) -> None:
            for _ in range(count):
                await s.invoke("noop", b"{}")

        await asyncio.gather(*(caller(100) for _ in range(envs)))
        rate, cpu = await timed(n, lambda: asyncio.gather(*(caller(n // envs) for _ in range(envs))))
    return {"per_s": rate, "scheduler_cpu_us_per_call": cpu}


async def scheduler_open_loop(code: Path, rate: float, seconds: float, freeze: bool) -> float:
    async with Scheduler([_config(code)], freeze_idle=freeze) as s:

        async def call() -> None:
            await s.invoke("noop", b"{}")

        for _ in range(100):
            await call()
        return await open_loop(rate, seconds, call)


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


async def cold_start_scale_out(code: Path, n: int) -> dict[str, Any]:
    """Cold starts of one existing function (its uid already leased): every environment is
    recycled when its invocation ends (a maximum lifetime of a microsecond), so each call
    forks a new one. The pause lets the previous one's shutdown finish first."""
    async with Scheduler([_config(code)], max_lifetime_s=1e-6) as s:
        samples, init = [], []
        for _ in range(n):
            await asyncio.sleep(0.02)
            t = time.perf_counter()
            result = await s.invoke("noop", b"{}")
            samples.append(time.perf_counter() - t)
            assert result.start == "cold" and result.error_type is None
            init.append((result.init_duration_ms or 0) / 1e3)
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


async def pool_apply_async_throughput(workers: int, n: int) -> float:
    """multiprocessing.Pool.apply_async driven from the event loop: its result callback runs
    on the pool's result thread and hands the value to the loop."""
    loop = asyncio.get_running_loop()
    with mp.get_context("fork").Pool(workers) as pool:

        def submit(i: int) -> asyncio.Future[None]:
            future: asyncio.Future[None] = loop.create_future()
            pool.apply_async(noop, (i,), callback=lambda v: loop.call_soon_threadsafe(future.set_result, v))
            return future

        async def caller(count: int) -> None:
            for i in range(count):
                await submit(i)

        await asyncio.gather(*(caller(50) for _ in range(workers)))
        t = time.perf_counter()
        await asyncio.gather(*(caller(n // workers) for _ in range(workers)))
        return n / (time.perf_counter() - t)


async def _anoop(x: object) -> None:
    return None


async def aiomultiprocess_throughput(workers: int, n: int) -> float | None:
    try:
        import aiomultiprocess
    except ImportError:
        return None
    async with aiomultiprocess.Pool(processes=workers, childconcurrency=1) as pool:

        async def caller(count: int) -> None:
            for i in range(count):
                await pool.apply(_anoop, (i,))

        await asyncio.gather(*(caller(20) for _ in range(workers)))
        t = time.perf_counter()
        await asyncio.gather(*(caller(n // workers) for _ in range(workers)))
        return n / (time.perf_counter() - t)


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
    open_s = 3.0 if q else 10.0
    results: dict[str, Any] = {"machine": machine()}
    print("floor …", flush=True)
    results["floor"] = await floor(n_lat)
    results["floor"]["throughput"] = {}
    for workers in (1, 8):
        runs = [await floor_throughput(workers, n_tp) for _ in range(repeats)]
        results["floor"]["throughput"][workers] = {k: median_of(runs, k) for k in ("per_s", "cpu_us_per_call")}
    results["floor"]["open_loop"] = await floor_open_loop(OPEN_RATE, open_s)
    print("warm latency …", flush=True)
    results["warm"] = await warm_latency(code, n_lat, 50 if q else 300)
    print("cold start …", flush=True)
    results["cold"] = await cold_start(code, 30 if q else 200)
    results["cold_scale_out"] = await cold_start_scale_out(code, 30 if q else 200)
    results["throughput"] = {}
    for envs in (1, 2, 4, 8):
        print(f"throughput, {envs} environments …", flush=True)
        runs = [await throughput(code, envs, n_tp) for _ in range(repeats)]
        results["throughput"][envs] = {
            "per_s": median_of(runs, "per_s"),
            "scheduler_cpu_us_per_call": median_of(runs, "scheduler_cpu_us_per_call"),
            "runs": [r["per_s"] for r in runs],
        }
    print(f"throughput, 8 environments beside {args.standby} live ones …", flush=True)
    results["many"] = {"standby": args.standby, **(await throughput(code, 8, n_tp, idle=args.standby))}
    print(f"open loop at {OPEN_RATE:.0f}/s …", flush=True)
    results["open_loop"] = {
        "freeze_on": statistics.median([await scheduler_open_loop(code, OPEN_RATE, open_s, True) for _ in range(repeats)]),
        "freeze_off": statistics.median([await scheduler_open_loop(code, OPEN_RATE, open_s, False) for _ in range(repeats)]),
    }
    print("peers …", flush=True)
    peers: dict[str, Any] = {"ppe": {}, "pool": {}, "pool_apply_async": {}, "loky": {}, "aiomultiprocess": {}}
    for workers in (2, 4, 8):
        peers["ppe"][workers] = statistics.median([await ppe_throughput(workers, n_tp // 4) for _ in range(repeats)])
        peers["pool"][workers] = statistics.median([pool_throughput(workers, n_tp) for _ in range(repeats)])
        peers["pool_apply_async"][workers] = statistics.median([await pool_apply_async_throughput(workers, n_tp // 4) for _ in range(repeats)])
        rates = [loky_throughput(workers, n_tp // 4) for _ in range(repeats)]
        peers["loky"][workers] = statistics.median(r for r in rates if r) if all(rates) else None
        amp = [await aiomultiprocess_throughput(workers, n_tp // 20) for _ in range(repeats)]
        peers["aiomultiprocess"][workers] = statistics.median(r for r in amp if r) if all(amp) else None
    peers["ppe_latency"] = await ppe_latency(n_lat // 2)
    peers["pool_latency"] = pool_latency(n_lat // 2)
    results["peers"] = peers
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    shutil.rmtree(code, ignore_errors=True)
    return results


OPEN_RATE = 300.0


def ratios(r: dict[str, Any]) -> dict[str, float]:
    t8 = r["throughput"][8]["per_s"]
    f = r["floor"]
    return {
        "warm_p50_vs_floor_uvloop_p50": r["warm"]["back_to_back"]["p50_us"] / f["uvloop"]["p50_us"],
        "throughput_8_vs_floor_8": t8 / f["throughput"][8]["per_s"],
        "sched_cpu_8_vs_floor_cpu_8": r["throughput"][8]["scheduler_cpu_us_per_call"] / f["throughput"][8]["cpu_us_per_call"],
        "open_loop_cpu_freeze_on_vs_floor": r["open_loop"]["freeze_on"] / f["open_loop"]["echo_cpu_us_per_call"],
        "open_loop_cpu_freeze_off_vs_floor": r["open_loop"]["freeze_off"] / f["open_loop"]["echo_cpu_us_per_call"],
        "cpu_with_many_vs_8": r["many"]["scheduler_cpu_us_per_call"] / r["throughput"][8]["scheduler_cpu_us_per_call"],
        "throughput_8_vs_ppe_8": t8 / r["peers"]["ppe"][8],
        "throughput_8_vs_pool_8": t8 / r["peers"]["pool"][8],
        "throughput_8_vs_pool_apply_async_8": t8 / r["peers"]["pool_apply_async"][8],
        "warm_p50_vs_ppe_p50": r["warm"]["back_to_back"]["p50_us"] / r["peers"]["ppe_latency"]["p50_us"],
    }


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The engine's targets, each as (measured, bound, met)."""
    x = r["ratios"]
    rows = {
        "warm p50 <= 1.5x the uvloop pipe floor": (x["warm_p50_vs_floor_uvloop_p50"], 1.5, "max", "x"),
        "8-caller rate >= 0.75x eight bare echo workers": (x["throughput_8_vs_floor_8"], 0.75, "min", "x"),
        "scheduler CPU per call, 8 callers <= 20 us": (r["throughput"][8]["scheduler_cpu_us_per_call"], 20.0, "max", "µs"),
        "open loop 300/s CPU, freezing on <= 1.5x the floor's": (x["open_loop_cpu_freeze_on_vs_floor"], 1.5, "max", "x"),
        "cold start p50 <= 5 ms (scale-out of a function)": (r["cold_scale_out"]["end_to_end"]["p50_us"] / 1e3, 5.0, "max", "ms"),
        "cold start p50 <= 5 ms (first of a new function)": (r["cold"]["end_to_end"]["p50_us"] / 1e3, 5.0, "max", "ms"),
        f"CPU per call beside {r['many']['standby']} live environments <= 1.5x with 8": (x["cpu_with_many_vs_8"], 1.5, "max", "x"),
    }
    return {
        k: {"measured": v, "bound": b, "higher_is_better": kind == "min", "unit": unit, "met": v <= b if kind == "max" else v >= b}
        for k, (v, b, kind, unit) in rows.items()
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
    ft = f["throughput"]
    lines = [
        f"pipe floor, blocking        p50 {f['blocking']['p50_us']:8.1f} µs   p99 {f['blocking']['p99_us']:8.1f} µs",
        f"pipe floor, uvloop          p50 {f['uvloop']['p50_us']:8.1f} µs   p99 {f['uvloop']['p99_us']:8.1f} µs",
        f"warm invoke, back to back   p50 {w['back_to_back']['p50_us']:8.1f} µs   p99 {w['back_to_back']['p99_us']:8.1f} µs",
        f"warm invoke, after 20 ms    p50 {w['after_20ms_idle']['p50_us']:8.1f} µs   p99 {w['after_20ms_idle']['p99_us']:8.1f} µs",
        f"ProcessPoolExecutor, 1      p50 {r['peers']['ppe_latency']['p50_us']:8.1f} µs   p99 {r['peers']['ppe_latency']['p99_us']:8.1f} µs",
        f"multiprocessing.Pool.apply  p50 {r['peers']['pool_latency']['p50_us']:8.1f} µs   p99 {r['peers']['pool_latency']['p99_us']:8.1f} µs",
        f"cold start, new function    p50 {c['end_to_end']['p50_us'] / 1e3:8.2f} ms   p99 {c['end_to_end']['p99_us'] / 1e3:8.2f} ms",
        (f"cold start, scale-out       p50 {r['cold_scale_out']['end_to_end']['p50_us'] / 1e3:8.2f} ms   "
        f"p99 {r['cold_scale_out']['end_to_end']['p99_us'] / 1e3:8.2f} ms"),
        "",
        (f"echo floor: 1 worker {ft[1]['per_s']:.0f}/s ({ft[1]['cpu_us_per_call']:.1f} µs CPU/call), "
        f"8 workers {ft[8]['per_s']:.0f}/s ({ft[8]['cpu_us_per_call']:.1f} µs CPU/call)"),
        (f"open loop {OPEN_RATE:.0f}/s, CPU per call: floor {f['open_loop']['echo_cpu_us_per_call']:.0f} µs "
        f"(sleeping alone {f['open_loop']['sleep_only_cpu_us_per_tick']:.0f} µs), scheduler freezing on "
        f"{r['open_loop']['freeze_on']:.0f} µs, off {r['open_loop']['freeze_off']:.0f} µs"),
        (f"8 callers beside {r['many']['standby']} live environments: {r['many']['per_s']:.0f}/s, "
        f"{r['many']['scheduler_cpu_us_per_call']:.1f} µs CPU/call"),
        "",
        "no-op invocations/s   scheduler   sched CPU/call   ProcessPoolExecutor   Pool.imap_unordered   Pool.apply_async   loky   aiomultiprocess",
    ]
    p = r["peers"]
    for envs in (1, 2, 4, 8):
        t = r["throughput"][envs]
        if envs == 1:
            lines.append(f"  {envs} environment      {t['per_s']:9.0f}   {t['scheduler_cpu_us_per_call']:9.1f} µs")
            continue
        lines.append(
            f"  {envs} environments     {t['per_s']:9.0f}   {t['scheduler_cpu_us_per_call']:9.1f} µs"
            f"   {p['ppe'][envs]:15.0f}   {p['pool'][envs]:19.0f}   {p['pool_apply_async'][envs]:16.0f}"
            f"   {p['loky'][envs] or float('nan'):6.0f}   {p['aiomultiprocess'][envs] or float('nan'):13.0f}"
        )
    lines.append("")
    for key, value in r["ratios"].items():
        lines.append(f"{key:36s} {value:6.2f}x")
    lines.append("")
    for key, t in r["targets"].items():
        lines.append(f"{'met   ' if t['met'] else 'MISSED'} {key}: {t['measured']:.2f} (bound {t['bound']})")
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
    parser.add_argument("--standby", type=int, default=1000, help="live environments beside the 8 (default: 1000)")
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
