"""Code uploads against invocations: concurrent ~48 MB CreateFunction uploads while warm no-op
invocations run back to back, on a `lambda-scheduler serve` process of its own.

Reports each no-op invocation's latency alone (baseline) and while the uploads are processed
(the issue's target: no invocation stalled by more than ~50 ms), the longest gap between two
invocation replies, each upload's time, and the server process's memory: VmHWM (peak RSS since
start) before and after, RSS sampled every 5 ms, and RSS left once the uploads are done.

The uploads are built before anything is measured (random bytes stored uncompressed in the zip,
plus a handler), and sent from this process with aiohttp, so the client's base64 and JSON
encoding cost the server nothing. ``--source DIR`` serves from another checkout, e.g. the code
before a change: ``git archive HEAD | tar -x -C /tmp/before``.

    python benchmarks/upload_stall.py [--uploads 4] [--zip-mb 48] [--source DIR] [--label after]
        [--out benchmarks/results/upload_stall.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = """AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Noop:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: noop
      Runtime: python3.11
      CodeUri: code/
      Handler: app.noop
      MemorySize: 1769
      Timeout: 30
"""
HANDLER = "def noop(event, context):\n    return {}\n"
INVOKE = "/2015-03-31/functions/{}/invocations"


def build_zip(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("app.py", HANDLER)
        archive.writestr("blob.bin", os.urandom(size - 4096))  # incompressible, stored as is
    return buffer.getvalue()


def create_bodies(count: int, zip_bytes: bytes) -> list[bytes]:
    encoded = base64.b64encode(zip_bytes)
    return [
        b'{"FunctionName": "up%d", "Runtime": "python3.11", "Role": "arn:aws:iam::123456789012:role/r", '
        b'"Handler": "app.noop", "Code": {"ZipFile": "%s"}}' % (i, encoded)
        for i in range(count)
    ]


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def start_server(workdir: Path, source: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "serve", str(workdir / "template.yaml"), "--port", "0",
         "--log-level", "warning", "--code-store-dir", str(workdir / "store")],
        cwd=workdir, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " at http" not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, line.split(" at ", 1)[1].split()[0]


def summary_ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50": 1000 * statistics.median(values),
        "p99": 1000 * values[min(len(values) - 1, int(0.99 * len(values)))],
        "max": 1000 * values[-1],
    }


async def invoke_loop(http: aiohttp.ClientSession, until: asyncio.Event, samples: list[tuple[float, float]]) -> None:
    while not until.is_set():
        started = time.perf_counter()
        async with http.post(INVOKE.format("noop"), data=b"{}") as response:
            await response.read()
            assert response.status == 200, response.status
        samples.append((started, time.perf_counter() - started))


async def sample_rss(pid: int, until: asyncio.Event, peak: list[int]) -> None:
    while not until.is_set():
        peak[0] = max(peak[0], status_kb(pid)["VmRSS"])
        await asyncio.sleep(0.005)


async def upload(url: str, body: bytes) -> dict[str, Any]:
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=300)
    async with (
        aiohttp.ClientSession(url, timeout=timeout) as http,
        http.post("/2015-03-31/functions", data=body) as response,
    ):
        text = await response.text()
    return {
        "status": response.status,
        "seconds": time.perf_counter() - started,
        "error": None if response.status == 201 else text[:300],
    }


async def uploader(url: str, count: int, zip_mb: int) -> None:
    """The uploads, from a process of their own (``--uploader``): building and sending 67 MB
    bodies would stall the measuring process's own loop."""
    bodies = create_bodies(count, build_zip(zip_mb * 1024 * 1024))
    print(json.dumps({"ready": True, "zip_bytes": len(bodies[0]) // 4 * 3, "body_bytes": len(bodies[0])}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    started = time.perf_counter()
    results = await asyncio.gather(*(upload(url, body) for body in bodies))
    print(json.dumps({"uploads": results, "wall_s": time.perf_counter() - started}), flush=True)


async def loop_lag(until: asyncio.Event, worst: list[float]) -> None:
    """How late this process's own loop wakes up: a check that the client measures the server."""
    loop = asyncio.get_running_loop()
    while not until.is_set():
        due = loop.time() + 0.001
        await asyncio.sleep(0.001)
        worst[0] = max(worst[0], loop.time() - due)


async def measure(url: str, pid: int, count: int, zip_mb: int, baseline_s: float) -> dict[str, Any]:
    sender = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--uploader", url, "--uploads", str(count), "--zip-mb", str(zip_mb),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20,
    )  # fmt: skip
    assert sender.stdin is not None and sender.stdout is not None
    sizes = json.loads(await sender.stdout.readline())
    async with aiohttp.ClientSession(url) as http:
        for _ in range(50):  # warm: the environment exists and the connection is open
            async with http.post(INVOKE.format("noop"), data=b"{}") as response:
                await response.read()
        alone: list[tuple[float, float]] = []
        stop = asyncio.Event()
        loop_task = asyncio.ensure_future(invoke_loop(http, stop, alone))
        await asyncio.sleep(baseline_s)
        stop.set()
        await loop_task

        before = status_kb(pid)
        during: list[tuple[float, float]] = []
        done = asyncio.Event()
        peak = [before["VmRSS"]]
        lag = [0.0]
        watchers = [asyncio.ensure_future(sample_rss(pid, done, peak)), asyncio.ensure_future(loop_lag(done, lag))]
        loop_task = asyncio.ensure_future(invoke_loop(http, done, during))
        started = time.perf_counter()
        sender.stdin.write(b"go\n")
        sent = json.loads(await sender.stdout.readline())
        done.set()
        await asyncio.gather(loop_task, *watchers)
        await sender.wait()
        after = status_kb(pid)
        await asyncio.sleep(1.0)
        settled = status_kb(pid)
        # Each new function answers from its own code.
        for i in range(count):
            async with http.post(INVOKE.format(f"up{i}"), data=b"{}") as response:
                assert response.status == 200 and await response.read() == b"{}", f"up{i}"
    ends = [start + latency for start, latency in during]
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    slowest = sorted(during, key=lambda sample: -sample[1])[:5]
    return {
        "sizes": sizes,
        "uploads": sent["uploads"],
        "uploads_wall_s": sent["wall_s"],
        "invoke_alone_ms": summary_ms([latency for _, latency in alone]),
        "invoke_during_uploads_ms": summary_ms([latency for _, latency in during]),
        "max_gap_between_replies_ms": 1000 * max(gaps, default=0.0),
        "slowest_invokes": [{"at_s": at - started, "ms": 1000 * latency} for at, latency in slowest],
        "client_loop_lag_max_ms": 1000 * lag[0],
        "server_memory_mb": {
            "hwm_before": before["VmHWM"] / 1024,
            "hwm_after": after["VmHWM"] / 1024,
            "rss_before": before["VmRSS"] / 1024,
            "rss_peak_sampled": peak[0] / 1024,
            "rss_after_1s": settled["VmRSS"] / 1024,
        },
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(
        prefix="upload-stall-", dir=ROOT / ".tmp" if (ROOT / ".tmp").is_dir() else None
    ) as tmp:
        workdir = Path(tmp)
        (workdir / "code").mkdir()
        (workdir / "code" / "app.py").write_text(HANDLER)
        (workdir / "template.yaml").write_text(TEMPLATE)
        proc, url = start_server(workdir, args.source)
        try:
            result = uvloop.run(measure(url, proc.pid, args.uploads, args.zip_mb, args.baseline))
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "label": args.label,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "settings": {"uploads": args.uploads, "zip_mib": args.zip_mb, "source": str(args.source)},
        **result,
    }


def report(r: dict[str, Any]) -> str:
    alone, during, mem = r["invoke_alone_ms"], r["invoke_during_uploads_ms"], r["server_memory_mb"]
    statuses = ", ".join(f"{u['status']} in {u['seconds']:.2f}s" for u in r["uploads"])
    slowest = ", ".join(f"{x['at_s']:.2f}: {x['ms']:.0f}" for x in r["slowest_invokes"])
    lines = [
        (
            f"{r['label']}: {r['settings']['uploads']} uploads of a {r['sizes']['zip_bytes'] / 1e6:.1f} MB zip "
            f"({r['sizes']['body_bytes'] / 1e6:.1f} MB requests): {statuses}; all done in {r['uploads_wall_s']:.2f}s"
        ),
        (
            f"  no-op invoke alone:          p50 {alone['p50']:7.2f} ms  p99 {alone['p99']:7.2f} ms"
            f"  max {alone['max']:7.2f} ms  ({alone['count']} calls)"
        ),
        (
            f"  no-op invoke during uploads: p50 {during['p50']:7.2f} ms  p99 {during['p99']:7.2f} ms"
            f"  max {during['max']:7.2f} ms  ({during['count']} calls);"
            f" longest gap between replies {r['max_gap_between_replies_ms']:.1f} ms"
        ),
        (
            f"  server RSS: peak (VmHWM) {mem['hwm_before']:.0f} MB before, {mem['hwm_after']:.0f} MB after;"
            f" sampled peak {mem['rss_peak_sampled']:.0f} MB; {mem['rss_before']:.0f} MB before,"
            f" {mem['rss_after_1s']:.0f} MB 1 s after"
        ),
        (
            f"  slowest invokes (s after the uploads began: ms): {slowest};"
            f" this client's own loop lagged {r['client_loop_lag_max_ms']:.1f} ms at most"
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=4, help="concurrent CreateFunction uploads")
    parser.add_argument("--zip-mb", type=int, default=48, help="size of each zip, MiB (Lambda's limit: 50)")
    parser.add_argument("--baseline", type=float, default=2.0, help="seconds of invocations alone, first")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose scheduler/ the server runs")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "upload_stall.json")
    parser.add_argument("--uploader", metavar="URL", help=argparse.SUPPRESS)  # the sending process
    args = parser.parse_args()
    if args.uploader:
        uvloop.run(uploader(args.uploader, args.uploads, args.zip_mb))
        return
    args.source = args.source.resolve()
    results = run(args)
    print(report(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
