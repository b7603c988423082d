"""Accepted work is never lost: the SQLite store, capacity-aware delivery, destinations and
dead letters, ``kill -9`` and restart of a real ``serve`` process, and the one drain budget."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.api.keys import DISPATCHER, EVENT_QUEUE
from scheduler.config import ServerConfig
from scheduler.events import Event, EventQueue, EventState, SqliteEventStore

from .conftest import FAST_EVENTS, FUNCTIONS, MakeServer, aws, fn, until
from .procs import cgroup_leftovers, wait_gone, zygote_family
from .serving import Server

ROOT = Path(__file__).resolve().parent.parent
ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}:$LATEST"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def shared_file(path: Path) -> Path:
    """A file every function's uid can append to (each function runs as its own uid)."""
    path.touch(mode=0o666)
    path.chmod(0o666)
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


# --- the SQLite store -------------------------------------------------------------------------


async def test_sqlite_store_commits_recovers_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    queue = EventQueue(SqliteEventStore(path))
    assert await queue.open() == 0
    events = [Event(f"r{i}", "f", None, b'{"n": %d}' % i) for i in range(50)]
    await asyncio.gather(*(queue.put(e) for e in events))  # one group commit, or a few
    assert queue.store.commits < 50  # type: ignore[attr-defined]
    first = await queue.take()
    await queue.running(first)
    second = await queue.take()
    await queue.ack(second)
    third = await queue.take()
    third.attempts = 1
    await queue.retry_later(third, 60)
    await queue.close()

    again = EventQueue(SqliteEventStore(path))
    assert await again.open() == 49  # all but the succeeded one
    found = {e.request_id: e for e in await again.store.list()}
    assert found[second.request_id].state is EventState.SUCCEEDED
    assert found[third.request_id].state is EventState.RETRYING and found[third.request_id].attempts == 1
    taken = await again.take()
    assert taken.request_id == first.request_id  # it was running: due again at once, first
    assert taken.state is EventState.PENDING and taken.payload == first.payload
    assert [e.request_id for e in await again.store.list(EventState.RETRYING)] == [third.request_id]
    await again.close()
    assert oct(path.stat().st_mode & 0o777) != "0o777"


# --- capacity ---------------------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_events_run_at_the_account_limit_without_throttling_themselves(
    make_server: MakeServer, tmp_path: Path
) -> None:
    count, limit, sleep = 600, 20, 0.05
    served = await make_server(fn("work", "api.record_then_sleep", timeout_s=10), account_concurrency=limit)
    queue = served.app[EVENT_QUEUE]
    trace = tmp_path / "trace"
    payload = json.dumps({"path": str(trace), "sleep": sleep}).encode()
    began = time.monotonic()
    for i in range(count):
        await queue.put(Event(f"e-{i:04d}", "work", None, payload))
    await until(lambda: queue.succeeded == count, timeout=60)
    elapsed = time.monotonic() - began
    ideal = count * sleep / limit  # 1.5 s: 20 environments busy all the time
    assert queue.throttle_retries == 0 and queue.dropped == 0
    assert len(set(lines(trace))) == count
    # A throttled-and-backed-off event would wait seconds to minutes; waiting for capacity costs
    # nothing. The bound is loose so that a busy machine cannot fail it.
    assert elapsed < ideal * 6 + 10, f"{elapsed:.1f} s for an ideal of {ideal:.1f} s"
    environments = served.scheduler.environments("work")
    assert len(environments) <= limit


# --- destinations and dead letters ------------------------------------------------------------


async def test_destination_records_and_dead_letters(make_server: MakeServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    kept = tmp_path / "kept"
    config = ServerConfig(code_store_dir=tmp_path / "code-store", data_dir=data, **FAST_EVENTS)
    served = await make_server(
        fn("record", "api.record"), fn("keep", "api.keep", environment={"KEEP_PATH": str(kept)}), server_config=config
    )
    client = served.client()
    queue_arn = "arn:aws:sqs:us-east-1:123456789012:successes"
    dlq_arn = "arn:aws:sqs:us-east-1:123456789012:dead-letters"
    await aws(
        client.put_function_event_invoke_config,
        FunctionName="record",
        MaximumEventAgeInSeconds=60,
        DestinationConfig={
            "OnSuccess": {"Destination": queue_arn},
            "OnFailure": {"Destination": "arn:aws:lambda:us-east-1:123456789012:function:keep"},
        },
    )
    got = await aws(client.get_function_event_invoke_config, FunctionName="record")
    assert got["DestinationConfig"]["OnSuccess"] == {"Destination": queue_arn}
    updated = await aws(client.update_function_configuration, FunctionName="record", DeadLetterConfig={"TargetArn": dlq_arn})
    assert updated["DeadLetterConfig"] == {"TargetArn": dlq_arn}
    trace = tmp_path / "trace"
    ok = await aws(client.invoke, FunctionName="record", InvocationType="Event", Payload=json.dumps({"path": str(trace)}))
    bad_event = {"path": str(tmp_path / "bad-trace"), "fail": True}  # its own file: attempts counted alone
    bad = await aws(client.invoke, FunctionName="record", InvocationType="Event", Payload=json.dumps(bad_event))
    queue = served.app[EVENT_QUEUE]
    stale = Event("stale-1", "record", None, json.dumps({"path": str(trace)}).encode(), received_at=time.time() - 61)
    await queue.put(stale)
    ok_id, bad_id = ok["ResponseMetadata"]["RequestId"], bad["ResponseMetadata"]["RequestId"]
    successes = data / "destinations" / "arn_aws_sqs_us-east-1_123456789012_successes.jsonl"
    await until(lambda: len(lines(successes)) == 1 and len(lines(kept)) == 2)

    [success] = records(successes)
    assert set(success) == {"version", "timestamp", "requestContext", "requestPayload", "responseContext", "responsePayload"}
    assert success["version"] == "1.0" and TIMESTAMP.match(success["timestamp"])
    assert success["requestContext"] == {
        "requestId": ok_id, "functionArn": ARN.format("record"), "condition": "Success", "approximateInvokeCount": 1
    }  # fmt: skip
    assert success["requestPayload"] == {"path": str(trace)}
    assert success["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert success["responsePayload"] == {"request_id": ok_id, "attempt": 1}

    failures = {r["requestContext"]["requestId"]: r for r in records(kept)}
    failed = failures[bad_id]
    assert failed["requestContext"] == {
        "requestId": bad_id, "functionArn": ARN.format("record"), "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }  # fmt: skip
    assert failed["requestPayload"] == bad_event
    assert failed["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert failed["responsePayload"]["errorType"] == "RuntimeError"
    assert failed["responsePayload"]["errorMessage"] == "failing on purpose (attempt 3)"
    too_old = failures["stale-1"]
    assert set(too_old) == {"version", "timestamp", "requestContext", "requestPayload"}  # it never ran
    assert too_old["requestContext"]["condition"] == "EventAgeExceeded"
    assert too_old["requestContext"]["approximateInvokeCount"] == 0

    dead = data / "destinations" / "arn_aws_sqs_us-east-1_123456789012_dead-letters.jsonl"
    letters = {m["attributes"]["RequestID"]: m for m in records(dead)}
    assert letters[bad_id] == {
        "body": json.dumps(bad_event),
        "attributes": {"RequestID": bad_id, "ErrorCode": 200, "ErrorMessage": "failing on purpose (attempt 3)"},
    }
    assert letters["stale-1"]["attributes"]["ErrorCode"] == 429
    listed = {e.request_id: e.state for e in await queue.store.list()}
    assert listed[ok_id] is EventState.SUCCEEDED and listed[bad_id] is EventState.DEAD_LETTERED
    assert queue.destination_failures == 0 and queue.dead_letter_errors == 0
    assert served.app[DISPATCHER].dead_letters == {"record": dlq_arn}
    metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{served.url}/metrics").read().decode())
    for name in (
        "lambda_async_events_received_total",
        'lambda_async_events_dropped_total{reason="RetriesExhausted"} 1.0',
        "lambda_destination_delivery_failures_total 0.0",
        "lambda_dead_letter_errors_total 0.0",
        'lambda_async_event_age_seconds_bucket{le="+Inf"}',
    ):
        assert name in metrics, name


# --- a real server: kill -9, restart, drain ---------------------------------------------------

TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    CodeUri: {code}
    Timeout: 30
Resources:
  Work:
    Type: AWS::Serverless::Function
    Properties: {{FunctionName: work, Handler: api.record_then_sleep}}
  Deaf:
    Type: AWS::Serverless::Function
    Properties: {{FunctionName: deaf, Handler: api.ignore_sigterm}}
"""


class Serve(Server):
    """``lambda-scheduler serve`` on the test's template and data dir, with requests of its own."""

    def __init__(self, folder: Path, data: Path, shared: Path, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_SCHEDULER_", "AWS_"))}
        args = [
            str(folder / "template.yaml"), "--port", "0",
            "--data-dir", str(data), "--shared-paths", str(shared), "--log-level", "warning",
            "--event-retry-delays", "0.05", "--event-throttle-backoff", "0.05,0.2", *extra,
        ]  # fmt: skip
        super().__init__(args, env, folder / f"serve-{time.monotonic_ns()}.log")

    def invoke(self, function: str, body: dict[str, Any], kind: str = "RequestResponse") -> tuple[int, str, bytes]:
        request = urllib.request.Request(
            f"{self.url}/2015-03-31/functions/{function}/invocations",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"X-Amz-Invocation-Type": kind},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers["x-amzn-RequestId"], response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("x-amzn-RequestId", ""), exc.read()

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/health", timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def close(self) -> None:
        super().close()
        wait_gone(zygote_family(owner=self.process.pid), timeout=5.0)


@pytest.fixture
def served_folder(tmp_path: Path) -> Iterator[tuple[Path, list[Serve]]]:
    # The template's folder is hidden from environments: it must not be the shared one.
    folder = Path(tempfile.mkdtemp(prefix="serve-", dir=os.environ["TMPDIR"]))
    (folder / "template.yaml").write_text(TEMPLATE.format(code=FUNCTIONS))
    started: list[Serve] = []
    yield folder, started
    for server in started:
        server.close()
    subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.mark.timeout(120)
def test_kill_9_then_restart_runs_every_accepted_event(
    served_folder: tuple[Path, list[Serve]], tmp_path: Path
) -> None:
    folder, started = served_folder
    data, trace = folder / "data", tmp_path / "trace"
    # Each server leases its own uid for the function (the dead one's lease may still look
    # taken): a file every one of them can append to.
    shared_file(trace)
    accepted: list[str] = []
    for kill_after in (0.3, 0.8, 1.5):  # early, in the middle of a stream, later
        server = Serve(folder, data, tmp_path)
        started.append(server)
        stop = threading.Event()

        def stream(server: Serve = server, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    status, rid, _ = server.invoke("work", {"path": str(trace), "sleep": 0.02}, "Event")
                except (OSError, urllib.error.URLError):
                    return  # the server died under the request: that event was never accepted
                if status == 202:
                    accepted.append(rid)

        senders = [threading.Thread(target=stream) for _ in range(4)]
        for sender in senders:
            sender.start()
        time.sleep(kill_after)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        stop.set()
        for sender in senders:
            sender.join(timeout=30)
    assert len(accepted) > 20
    server = Serve(folder, data, tmp_path)
    started.append(server)
    deadline = time.monotonic() + 60
    while not set(accepted) <= set(lines(trace)):
        assert time.monotonic() < deadline, f"{len(set(accepted) - set(lines(trace)))} accepted events never ran"
        time.sleep(0.1)
    ran = lines(trace)
    duplicates = len(ran) - len(set(ran))
    print(f"{len(accepted)} accepted, {len(set(ran))} ran, {duplicates} ran twice (cut short by a kill)")
    assert duplicates <= 3 * 100  # at most the events running at each kill
    listing = subprocess.run(
        [sys.executable, "-m", "scheduler", "events", "--endpoint-url", server.url, "--state", "succeeded", "--limit", "100000"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    # Newest first: with --limit above the count, the first and the last accepted are both listed.
    assert accepted[0] in listing.stdout and accepted[-1] in listing.stdout and "succeeded" in listing.stdout
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0


@pytest.mark.timeout(60)
def test_one_drain_budget_then_503_and_a_prompt_exit(served_folder: tuple[Path, list[Serve]], tmp_path: Path) -> None:
    folder, started = served_folder
    drain, grace = 3.0, 0.5
    server = Serve(folder, folder / "data", tmp_path, "--drain-timeout", str(drain), "--shutdown-timeout", str(grace))
    started.append(server)
    trace = shared_file(tmp_path / "trace")
    answers: dict[str, tuple[int, str, bytes]] = {}

    def call(name: str, function: str, body: dict[str, Any]) -> None:
        answers[name] = server.invoke(function, body)

    calls = [
        threading.Thread(target=call, args=("quick", "work", {"path": str(trace), "sleep": 0.5})),
        threading.Thread(target=call, args=("long", "work", {"path": str(trace), "sleep": 20})),
        threading.Thread(target=call, args=("deaf", "deaf", {"path": str(trace), "sleep": 20})),
    ]
    for thread in calls:
        thread.start()
    deadline = time.monotonic() + 20
    while len(lines(trace)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    queued = server.invoke("work", {"path": str(trace), "sleep": 0}, "Event")  # runs at once: not queued
    assert queued[0] == 202
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    took = time.monotonic() - signalled
    for thread in calls:
        thread.join(timeout=10)
    # One budget, not one per stage: a second drain would make it at least 2 × drain + grace.
    # The margin below that is for a loaded machine (≈ 0.4 s past drain + grace when idle).
    assert took < 2 * drain, f"exited {took:.2f} s after SIGTERM"
    assert answers["quick"][0] == 200
    for name in ("long", "deaf"):
        status, _, body = answers[name]
        assert status == 503, (name, status, body)
        assert json.loads(body) == {"Type": "Service", "Message": "The server stopped before the invocation finished."}


@pytest.mark.timeout(60)
def test_a_second_signal_exits_at_once(served_folder: tuple[Path, list[Serve]], tmp_path: Path) -> None:
    folder, started = served_folder
    server = Serve(folder, folder / "data", tmp_path, "--drain-timeout", "30")
    started.append(server)
    trace = tmp_path / "trace"

    def call() -> None:
        with contextlib.suppress(OSError):  # the process is gone before it can answer
            server.invoke("work", {"path": str(trace), "sleep": 20})

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 20
    while not lines(trace):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=10) == 128 + signal.SIGINT
    assert time.monotonic() - signalled < 2
    thread.join(timeout=30)


@pytest.mark.timeout(90)
def test_a_start_after_kill_9_removes_what_the_dead_server_left(
    served_folder: tuple[Path, list[Serve]], tmp_path: Path
) -> None:
    """kill -9 leaves the code store and (as root) the environments' cgroups behind; the next
    server on the same folders removes them, says so, and leaves a live server's alone."""
    folder, started = served_folder
    data, store = folder / "data", folder / "code-store"
    dead = Serve(folder, data, tmp_path, "--code-store-dir", str(store))
    started.append(dead)
    assert dead.invoke("work", {"path": str(tmp_path / "t"), "sleep": 0})[0] == 200  # an environment
    left_store = [p for p in store.iterdir() if p.name.startswith(f"lambda-scheduler-code-{dead.process.pid}-")]
    assert len(left_store) == 1
    dead.process.kill()
    dead.process.wait(timeout=10)
    wait_gone(zygote_family(owner=dead.process.pid), timeout=5.0)
    assert left_store[0].exists()
    alive = Serve(folder, data, tmp_path, "--code-store-dir", str(store))
    started.append(alive)
    assert not left_store[0].exists()
    assert not cgroup_leftovers(dead.process.pid)
    log = alive.log.read_text()
    assert f"removed the code store {left_store[0]}" in log
    # Its cgroups are gone too. Which server removed them (and logged it) depends on which
    # started first: any scheduler on the host cleans up those of dead ones.
    # A live server's store is not touched by a third one.
    third = Serve(folder, folder / "data3", tmp_path, "--code-store-dir", str(store))
    started.append(third)
    assert any(p.name.startswith(f"lambda-scheduler-code-{alive.process.pid}-") for p in store.iterdir())
