"""What the NATS server itself does on this machine, with no scheduler: the figures the cluster's
per-invocation costs and its 10- and 100-node estimate rest on (benchmarks/notes/cluster.md).

    python benchmarks/nats_floor.py        ─► prints them, writes benchmarks/results/nats_floor.json
    (benchmarks/cluster.py runs it too, against the same nats-server as its nodes)

Measured from one nats-py client in this process against a real ``nats-server -js``:

- a core request/reply round trip (the floor of a forwarded invocation's hand-over);
- deliveries per second of small messages to 1 and to 10 subscribers (heartbeats are N puts
  delivered to N watchers);
- a KV put, a KV compare-and-set on one key (the ledger's write) and a JetStream publish
  with its acknowledgement (an Event's 202), one at a time and 32 in flight;
- the server's CPU per idle pull request: 1,000 consumers long-polled with 1 s waits, as every
  node does for every function, for a few seconds, read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.js import api

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "nats_floor.json"


def _us(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
    }


async def _timed(count: int, step: Any) -> list[float]:
    latencies = []
    for i in range(count):
        began = time.perf_counter()
        await step(i)
        latencies.append(time.perf_counter() - began)
    return latencies


async def _rate(count: int, in_flight: int, step: Any) -> float:
    """Operations per second with ``in_flight`` awaited at once."""
    began = time.perf_counter()
    for start in range(0, count, in_flight):
        await asyncio.gather(*(step(i) for i in range(start, min(count, start + in_flight))))
    return round(count / (time.perf_counter() - began))


async def _deliveries(nc: Any, subscribers: int, messages: int) -> float:
    received = 0
    done = asyncio.Event()
    total = subscribers * messages

    async def count(_msg: Any) -> None:
        nonlocal received
        received += 1
        if received == total:
            done.set()

    subscriptions = [await nc.subscribe(f"floor.fan.{subscribers}", cb=count) for _ in range(subscribers)]
    await nc.flush()
    began = time.perf_counter()
    payload = b"x" * 200  # about a heartbeat's size
    for _ in range(messages):
        await nc.publish(f"floor.fan.{subscribers}", payload)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - began
    for subscription in subscriptions:
        await subscription.unsubscribe()
    return round(total / elapsed)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _idle_pulls(js: Any, pid: int, consumers: int, seconds: float) -> dict[str, float]:
    await js.add_stream(api.StreamConfig(name="FLOOR_PULL", subjects=["floor.pull.>"]))
    subscriptions = [
        await js.pull_subscribe(f"floor.pull.{i}", durable=f"floor-{i}", stream="FLOOR_PULL") for i in range(consumers)
    ]
    requests = 0
    stop = time.monotonic() + seconds

    async def poll(subscription: Any) -> None:
        nonlocal requests
        while time.monotonic() < stop:
            requests += 1
            try:
                await subscription.fetch(1, timeout=1.0)
            except nats.errors.TimeoutError:
                pass

    before = _cpu_s(pid)
    await asyncio.gather(*(poll(s) for s in subscriptions))
    used = _cpu_s(pid) - before
    await js.delete_stream("FLOOR_PULL")
    return {
        "consumers": consumers,
        "pull_requests_per_s": round(requests / seconds),
        "server_cpu_share": round(used / seconds, 4),  # of one core
        "server_cpu_us_per_pull": round(used / requests * 1e6, 1),
    }


async def measure(url: str, pid: int, count: int = 2000) -> dict[str, Any]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:

        async def echo(msg: Any) -> None:
            await msg.respond(msg.data)

        await nc.subscribe("floor.echo", cb=echo)
        await nc.request("floor.echo", b"warm", timeout=5)
        request_reply = await _timed(count, lambda _i: nc.request("floor.echo", b"x" * 100, timeout=5))

        kv = await js.create_key_value(api.KeyValueConfig(bucket="floor_kv", history=1))
        put = await _timed(count, lambda i: kv.put(f"k{i % 50}", b"v" * 100))
        revision = await kv.put("ledger", b"0")

        async def cas(i: int) -> None:
            nonlocal revision
            revision = await kv.update("ledger", str(i).encode(), last=revision)

        compare_and_set = await _timed(count, cas)
        await js.add_stream(api.StreamConfig(name="FLOOR_EVENTS", subjects=["floor.events.>"]))
        publish = await _timed(count, lambda i: js.publish("floor.events.f", b"e" * 300))
        publish_32 = await _rate(count * 4, 32, lambda i: js.publish("floor.events.f", b"e" * 300))
        kv_put_32 = await _rate(count * 4, 32, lambda i: kv.put(f"k{i % 50}", b"v" * 100))
        deliveries_1 = await _deliveries(nc, 1, 100_000)
        deliveries_10 = await _deliveries(nc, 10, 20_000)
        await js.delete_stream("FLOOR_EVENTS")
        await js.delete_key_value("floor_kv")
        pulls = await _idle_pulls(js, pid, 1000, 5.0)
    finally:
        await nc.close()
    return {
        "request_reply": _us(request_reply),
        "kv_put": _us(put),
        "kv_compare_and_set": _us(compare_and_set),
        "js_publish_acked": _us(publish),
        "js_publish_acked_per_s_32_in_flight": publish_32,
        "kv_put_per_s_32_in_flight": kv_put_32,
        "deliveries_per_s_1_subscriber": deliveries_1,
        "deliveries_per_s_10_subscribers": deliveries_10,
        "idle_pulls": pulls,
    }


def report(floor: dict[str, Any]) -> str:
    pulls = floor["idle_pulls"]
    requests = (
        f"request/reply p50 {floor['request_reply']['p50_us']} µs; KV put {floor['kv_put']['p50_us']} µs, "
        f"compare-and-set {floor['kv_compare_and_set']['p50_us']} µs; JetStream publish acked "
        f"{floor['js_publish_acked']['p50_us']} µs ({floor['js_publish_acked_per_s_32_in_flight']}/s at 32 in flight)"
    )
    deliveries = (
        f"deliveries/s: {floor['deliveries_per_s_1_subscriber']} to 1 subscriber, "
        f"{floor['deliveries_per_s_10_subscribers']} to 10"
    )
    idle = (
        f"idle pulls: {pulls['pull_requests_per_s']}/s over {pulls['consumers']} consumers cost the server "
        f"{pulls['server_cpu_share'] * 100:.1f} % of a core ({pulls['server_cpu_us_per_pull']} µs each)"
    )
    lines = (requests, deliveries, idle)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.natsd import NatsServer  # the same server the tests start

    os.environ.setdefault("TMPDIR", str(ROOT / ".tmp"))
    Path(os.environ["TMPDIR"]).mkdir(exist_ok=True)
    server = NatsServer()
    try:
        assert server.process is not None
        floor = asyncio.run(measure(server.url, server.process.pid))
    finally:
        server.close()
    print(report(floor))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(floor, indent=2) + "\n")


if __name__ == "__main__":
    main()
