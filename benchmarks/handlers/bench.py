"""The handlers every benchmark runs, the same code on every server (this one, the bare
aiohttp floor, serverless-offline): a no-op, an echo of a per-request token, a sleep (and one
that says when it ran), and a hang that outlives its timeout. Importing this module is the trivial Init."""

import os
import time


def noop(event, context):
    # Not None: serverless-offline 13 never answers a Python handler that returns None (its
    # runner waits for a truthy payload), so every server gets the same empty object.
    return {}


def echo(event, context):
    # Only the token: a reply that carries another request's token is a mixed-up reply.
    return {"token": event.get("token")}


def sleep(event, context):
    time.sleep(event.get("ms", 100) / 1000)
    return {"slept_ms": event.get("ms", 100)}


def span(event, context):
    """Sleep event["ms"] and say when this ran (wall clock, comparable across processes)."""
    start = time.time()
    time.sleep(event.get("ms", 50) / 1000)
    return {"start": start, "end": time.time()}


def hang(event, context):
    time.sleep(event.get("s", 30))
    return "should have timed out"


def hold(event, context):
    """Hold this environment until the file event["gate"] exists (at most event["max_s"]), or
    for event["ms"] milliseconds: lets a benchmark keep N environments alive at once, for as
    long as it measures them, then reuse the same N."""
    if "gate" not in event:
        time.sleep(event.get("ms", 100) / 1000)
        return {}
    deadline = time.monotonic() + event.get("max_s", 90)
    while not os.path.exists(event["gate"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {}
