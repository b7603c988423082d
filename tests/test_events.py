"""Event invocations: the queue and its store, retries after errors, timeouts and throttles, age
limits, and the event-invoke-config API."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from scheduler.api.keys import DISPATCHER, EVENT_QUEUE
from scheduler.errors import ValidationError
from scheduler.events import Event, EventInvokeConfig, EventQueue, MemoryEventStore

from .conftest import MakeServer, aws, fn, until


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# --- the store and the queue (pure state) -----------------------------------------------------


async def test_memory_store_orders_by_due_time_and_leases() -> None:
    queue = EventQueue(MemoryEventStore())
    first, second = Event("r1", "f", None, b"1"), Event("r2", "f", None, b"2")
    await queue.put(first)
    await queue.put(second)
    assert queue.depth == 2 and queue.received == 2
    taken = await queue.take()
    assert taken is first and queue.depth == 2  # leased, still held
    await queue.retry_later(taken, 0.05)
    assert await queue.take() is second  # due now, while r1 waits
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await queue.take() is first
    assert loop.time() - began >= 0.03
    await queue.ack(second)
    await queue.drop(first, "RetriesExhausted")
    assert queue.depth == 0 and queue.oldest_age_s == 0.0
    assert (queue.succeeded, queue.retries, queue.dropped) == (1, 1, 1)
    assert queue.dropped_by_reason == {"RetriesExhausted": 1}


async def test_take_waits_for_a_put_and_reports_the_oldest_age() -> None:
    queue = EventQueue()
    waiting = asyncio.ensure_future(queue.take())
    await asyncio.sleep(0)
    assert not waiting.done()
    old = Event("old", "f", None, b"{}", received_at=time.time() - 30)
    await queue.put(old)
    assert await asyncio.wait_for(waiting, 5) is old
    assert 29 < queue.oldest_age_s < 60
    assert queue.stats()["depth"] == 1


def test_event_invoke_config_bounds() -> None:
    assert EventInvokeConfig().maximum_retry_attempts == 2
    assert EventInvokeConfig().maximum_event_age_s == 21_600
    for kwargs, message in [
        ({"maximum_retry_attempts": 3}, "Value '3' at 'maximumRetryAttempts'"),
        ({"maximum_retry_attempts": -1}, "greater than or equal to 0"),
        ({"maximum_event_age_s": 59}, "Value '59' at 'maximumEventAgeInSeconds'"),
        ({"maximum_event_age_s": 21_601}, "less than or equal to 21600"),
    ]:
        with pytest.raises(ValidationError, match=message):
            EventInvokeConfig(**kwargs)


# --- delivery through a real server ---------------------------------------------------------


async def test_function_error_is_retried_twice_with_the_same_request_id(
    make_server: MakeServer, tmp_path: Path
) -> None:
    served = await make_server(fn("record", "api.record"))
    trace = tmp_path / "trace"
    response = await aws(
        served.client().invoke,
        FunctionName="record",
        InvocationType="Event",
        Payload=json.dumps({"path": str(trace), "fail": True}),
    )
    queue = served.app[EVENT_QUEUE]
    await until(lambda: queue.dropped == 1)
    assert lines(trace) == [response["ResponseMetadata"]["RequestId"]] * 3  # first attempt + 2 retries
    assert queue.retries == 2 and queue.dropped_by_reason == {"RetriesExhausted": 1}
    assert queue.depth == 0 and queue.succeeded == 0


async def test_maximum_retry_attempts_zero_means_one_attempt(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(fn("record", "api.record"))
    client = served.client()
    await aws(client.put_function_event_invoke_config, FunctionName="record", MaximumRetryAttempts=0)
    trace = tmp_path / "trace"
    await aws(
        client.invoke,
        FunctionName="record",
        InvocationType="Event",
        Payload=json.dumps({"path": str(trace), "fail": True}),
    )
    queue = served.app[EVENT_QUEUE]
    await until(lambda: queue.dropped == 1)
    assert len(lines(trace)) == 1 and queue.retries == 0


async def test_a_timeout_is_retried(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(fn("slow", "api.timeout_once", timeout_s=0.3))
    trace = tmp_path / "trace"
    await aws(
        served.client().invoke, FunctionName="slow", InvocationType="Event", Payload=json.dumps({"path": str(trace)})
    )
    queue = served.app[EVENT_QUEUE]
    await until(lambda: queue.succeeded == 1)
    assert len(lines(trace)) == 2 and queue.retries == 1 and queue.dropped == 0


async def test_events_older_than_the_maximum_age_are_dropped(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(fn("record", "api.record"))
    await aws(served.client().put_function_event_invoke_config, FunctionName="record", MaximumEventAgeInSeconds=60)
    trace = tmp_path / "trace"
    queue = served.app[EVENT_QUEUE]
    stale = Event("stale-1", "record", None, json.dumps({"path": str(trace)}).encode(), received_at=time.time() - 61)
    await queue.put(stale)
    await until(lambda: queue.dropped == 1)
    assert queue.dropped_by_reason == {"EventAgeExceeded": 1}
    assert not trace.exists()  # never ran


async def test_events_wait_for_capacity_instead_of_being_throttled(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(fn("hold", "basic.wait_for_file", reserved_concurrency=1))
    client = served.client()
    release = tmp_path / "release"
    held = asyncio.ensure_future(aws(client.invoke, FunctionName="hold", Payload=json.dumps({"path": str(release)})))
    await until(lambda: served.scheduler.admission.in_flight == 1)
    response = await aws(
        client.invoke, FunctionName="hold", InvocationType="Event", Payload=json.dumps({"path": str(release)})
    )
    assert response["StatusCode"] == 202
    queue = served.app[EVENT_QUEUE]
    await asyncio.sleep(0.3)  # the function has no room: the event waits, without trying
    assert served.scheduler.capacity("hold") == 0
    assert queue.succeeded == 0 and queue.throttle_retries == 0 and queue.depth == 1
    release.touch()
    await held
    await until(lambda: queue.succeeded == 1)
    assert queue.dropped == 0 and queue.throttle_retries == 0


async def test_zero_reserved_concurrency_drops_events(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(fn("record", "api.record", reserved_concurrency=0))
    trace = tmp_path / "trace"
    response = await aws(
        served.client().invoke, FunctionName="record", InvocationType="Event", Payload=json.dumps({"path": str(trace)})
    )
    assert response["StatusCode"] == 202
    queue = served.app[EVENT_QUEUE]
    await until(lambda: queue.dropped == 1)
    assert queue.dropped_by_reason == {"ZeroReservedConcurrency": 1} and not trace.exists()


async def test_event_invoke_config_api(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client()
    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST"
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="doesn't have an EventInvokeConfig"):
        await aws(client.get_function_event_invoke_config, FunctionName="echo")
    put = await aws(client.put_function_event_invoke_config, FunctionName="echo", MaximumRetryAttempts=1)
    assert put["FunctionArn"] == arn
    assert (put["MaximumRetryAttempts"], put["MaximumEventAgeInSeconds"]) == (1, 21_600)
    updated = await aws(client.update_function_event_invoke_config, FunctionName="echo", MaximumEventAgeInSeconds=120)
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (1, 120)  # merged
    assert updated["LastModified"] >= put["LastModified"]
    got = await aws(client.get_function_event_invoke_config, FunctionName="echo", Qualifier="$LATEST")
    assert (got["MaximumRetryAttempts"], got["MaximumEventAgeInSeconds"]) == (1, 120)
    assert served.app[DISPATCHER].config_for("echo").maximum_event_age_s == 120
    replaced = await aws(client.put_function_event_invoke_config, FunctionName="echo", MaximumEventAgeInSeconds=300)
    assert (replaced["MaximumRetryAttempts"], replaced["MaximumEventAgeInSeconds"]) == (2, 300)  # Put replaces
    listed = await aws(client.list_function_event_invoke_configs, FunctionName="echo")
    assert [c["MaximumEventAgeInSeconds"] for c in listed["FunctionEventInvokeConfigs"]] == [300]
    deleted = await aws(client.delete_function_event_invoke_config, FunctionName="echo")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.delete_function_event_invoke_config, FunctionName="echo")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.put_function_event_invoke_config, FunctionName="nope", MaximumRetryAttempts=1)


async def test_event_invoke_config_validation(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client(validate=False)
    for kwargs, message in [
        (
            {"MaximumRetryAttempts": 3},
            (
                "1 validation error detected: Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: "
                "Member must have value less than or equal to 2"
            ),
        ),
        (
            {"MaximumEventAgeInSeconds": 59},
            (
                "1 validation error detected: Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
                "Member must have value greater than or equal to 60"
            ),
        ),
        (
            {"MaximumEventAgeInSeconds": 21_601},
            (
                "1 validation error detected: Value '21601' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
                "Member must have value less than or equal to 21600"
            ),
        ),
    ]:
        with pytest.raises(ClientError) as exc:
            await aws(client.put_function_event_invoke_config, FunctionName="echo", **kwargs)
        assert exc.value.response["Error"] == {"Code": "ValidationException", "Message": message}
    for destination, message in [
        ({"OnFailure": {"Destination": "arn:aws:dynamodb:us-east-1:123456789012:table/t"}}, "is invalid for OnFailure"),
        ({"OnSuccess": {"Destination": "arn:aws:s3:::bucket"}}, "only for on-failure"),
    ]:
        with pytest.raises(ClientError, match=message):
            await aws(client.put_function_event_invoke_config, FunctionName="echo", DestinationConfig=destination)
    assert "echo" not in served.app[DISPATCHER].configs
