"""GET /metrics on a real server: every family and label value after a known mix of cold,
warm, provisioned, failing, timed-out, crashing, throttled and Event invocations, with exact
counts; histograms checked bucket by bucket against the results they were made from."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import aiohttp
import prometheus_client
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from scheduler.api.keys import EVENT_QUEUE
from scheduler.cli import UsageError, build_parser, configs
from scheduler.config import ServerConfig
from scheduler.engine.environment import EnvState
from scheduler.engine.invocation import Invocation, InvocationResult
from scheduler.engine.protocol import FunctionError, Response
from scheduler.events import EventQueue
from scheduler.metrics import MetricsObserver
from scheduler.metrics.cells import BOUNDS, LE
from scheduler.metrics.invocations import MAX_ERROR_TYPES

from .conftest import FAST_EVENTS, MakeServer, Served, aws, fn, until, wait_provisioned

Labels = frozenset[tuple[str, str]]


class Scrape:
    """One /metrics answer, parsed with prometheus-client's own parser."""

    def __init__(self, text: str) -> None:
        self.families: dict[str, Metric] = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, Labels], float] = {
            (s.name, frozenset(s.labels.items())): s.value for f in self.families.values() for s in f.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (KeyError if it is not exported)."""
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str, **match: str) -> dict[Labels, float]:
        """Every sample of ``name`` whose labels include ``match``."""
        want = set(match.items())
        return {labels: v for (n, labels), v in self.samples.items() if n == name and want <= labels}

    def environments(self, function: str, kind: str, *states: str) -> float:
        return sum(self.value("lambda_environments", function=function, type=kind, state=s) for s in states)


async def scrape(url: str) -> Scrape:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return Scrape(await response.text())


def parked_states() -> tuple[str, ...]:
    # An idle environment is IDLE, or FROZEN where the engine freezes idle environments.
    return tuple(s.value for s in EnvState if s.value in ("idle", "frozen"))


def invocations(s: Scrape, function: str) -> dict[tuple[str, str], float]:
    """(start, outcome) → count, leaving out the zeros."""
    out = {}
    for labels, v in s.series("lambda_invocations_total", function=function).items():
        d = dict(labels)
        if v:
            out[(d["start"], d["outcome"])] = v
    return out


async def _gone(served: Served, *names: str) -> None:
    await until(lambda: all(not served.scheduler.environments(n) for n in names))


async def _hold_provisioned_and_spill(served: Served, client: object, tmp_path: Path) -> Scrape:
    """Two invocations of `prov` at once: one on its provisioned environment, one spilling
    over to a cold on-demand one; returns a scrape taken while both run."""
    release = tmp_path / "release"
    payload = json.dumps({"path": str(release)})
    first = asyncio.ensure_future(aws(client.invoke, FunctionName="prov", Payload=payload))  # type: ignore[attr-defined]
    await until(lambda: sum(e.state is EnvState.BUSY for e in served.scheduler.environments("prov")) == 1)
    second = asyncio.ensure_future(aws(client.invoke, FunctionName="prov", Payload=payload))  # type: ignore[attr-defined]
    await until(lambda: sum(e.state is EnvState.BUSY for e in served.scheduler.environments("prov")) == 2)
    during = await scrape(served.url)
    release.touch()
    await asyncio.gather(first, second)
    return during


async def test_metric_families_and_labels_after_a_known_mix(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(
        fn("hello", "basic.noop"),
        fn("raises", "faults.raise_error"),
        fn("hangs", "faults.hang", timeout_s=0.3),
        fn("crash", "faults.sigkill_self"),
        fn("badinit", "initfault.handler", environment={"FAULT": "import"}),
        fn("zero", "basic.noop", reserved_concurrency=0),
        fn("record", "api.record"),
    )
    # Added once the server (and its observers) run, so its provisioned Init is counted too.
    served.scheduler.add_function(fn("prov", "basic.wait_for_file", provisioned_concurrency=1))
    await wait_provisioned(served.scheduler, "prov")
    client = served.client()
    for name, times in (("hello", 3), ("raises", 2), ("hangs", 1), ("crash", 1), ("badinit", 1)):
        for _ in range(times):
            await aws(client.invoke, FunctionName=name, Payload=b"{}")
    for _ in range(2):
        with pytest.raises(client.exceptions.TooManyRequestsException):
            await aws(client.invoke, FunctionName="zero", Payload=b"{}")
    ready = json.dumps({"path": str(tmp_path)})  # exists: returns at once
    await aws(client.invoke, FunctionName="prov", Payload=ready)
    during = await _hold_provisioned_and_spill(served, client, tmp_path)
    await aws(client.invoke, FunctionName="prov", Payload=ready)
    # Event invocations: one fails three times (then RetriesExhausted), one succeeds.
    queue_trace = tmp_path / "events"
    await aws(client.invoke, FunctionName="record", InvocationType="Event",
              Payload=json.dumps({"path": str(queue_trace), "fail": True}))  # fmt: skip
    await until(lambda: _queue(served).dropped == 1)
    await aws(
        client.invoke, FunctionName="record", InvocationType="Event", Payload=json.dumps({"path": str(queue_trace)})
    )
    await until(lambda: _queue(served).succeeded == 1)
    await _gone(served, "hangs", "crash", "badinit")
    s = await scrape(served.url)

    assert invocations(s, "hello") == {("cold", "success"): 1, ("warm", "success"): 2}
    assert invocations(s, "raises") == {("cold", "function_error"): 1, ("warm", "function_error"): 1}
    assert invocations(s, "hangs") == {("cold", "timeout"): 1}
    assert invocations(s, "crash") == {("cold", "crash"): 1}
    assert invocations(s, "badinit") == {("cold", "function_error"): 1}
    assert invocations(s, "zero") == {("none", "throttled"): 2}
    assert invocations(s, "prov") == {("provisioned", "success"): 3, ("cold", "success"): 1}
    assert invocations(s, "record") == {
        ("cold", "function_error"): 1,
        ("warm", "function_error"): 2,
        ("warm", "success"): 1,
    }
    # Each (function, start) seen exports every outcome, zeros included, so rate() sees the first one.
    assert len(s.series("lambda_invocations_total", function="hello", start="warm")) == 5

    assert s.series("lambda_throttles_total") == {
        frozenset({("function", "zero"), ("reason", "ReservedFunctionConcurrentInvocationLimitExceeded")}): 2
    }
    assert {(dict(k)["function"], dict(k)["error_type"]): v for k, v in s.series("lambda_errors_total").items()} == {
        ("raises", "KeyError"): 2,
        ("hangs", "Sandbox.Timedout"): 1,
        ("crash", "Runtime.ExitError"): 1,
        ("badinit", "Runtime.ImportModuleError"): 1,
        ("record", "RuntimeError"): 3,
    }
    assert s.series("lambda_provisioned_concurrency_spillover_invocations_total") == {
        frozenset({("function", "prov")}): 1
    }

    # Histograms: one observation per invocation, by function and start.
    for name in ("lambda_invocation_latency_seconds", "lambda_duration_seconds"):
        counts = {(dict(k)["function"], dict(k)["start"]): v for k, v in s.series(f"{name}_count").items()}
        assert counts == {
            ("hello", "cold"): 1, ("hello", "warm"): 2, ("raises", "cold"): 1, ("raises", "warm"): 1,
            ("hangs", "cold"): 1, ("crash", "cold"): 1, ("badinit", "cold"): 1,
            ("prov", "provisioned"): 3, ("prov", "cold"): 1, ("record", "cold"): 1, ("record", "warm"): 3,
        }  # fmt: skip
    # The timed-out invocation took at least its 0.3 s timeout: nothing in the buckets below.
    assert s.value("lambda_invocation_latency_seconds_bucket", function="hangs", start="cold", le="0.25") == 0
    assert s.value("lambda_invocation_latency_seconds_bucket", function="hangs", start="cold", le="+Inf") == 1

    starts = {tuple(dict(k)[x] for x in ("function", "type", "outcome")): v
              for k, v in s.series("lambda_environment_starts_total").items()}  # fmt: skip
    assert starts == {
        **{(f, "on_demand", "success"): 1 for f in ("hello", "raises", "hangs", "crash", "record", "prov")},
        ("prov", "provisioned", "success"): 1,
        ("badinit", "on_demand", "failure"): 2,  # Init, then its retry inside the invoke
    }
    stops = {tuple(dict(k)[x] for x in ("function", "type", "reason")): v
             for k, v in s.series("lambda_environment_stops_total").items()}  # fmt: skip
    assert stops == {
        ("hangs", "on_demand", "timeout"): 1,
        ("crash", "on_demand", "error"): 1,
        ("badinit", "on_demand", "init_failure"): 2,
    }
    init = {
        (dict(k)["function"], dict(k)["start"]): v for k, v in s.series("lambda_init_duration_seconds_count").items()
    }
    assert init == {
        **{(f, "cold"): 1 for f in ("hello", "raises", "hangs", "crash", "record", "prov")},
        ("prov", "provisioned"): 1,
    }

    # Gauges, read from the pools: while two prov invocations ran, and now.
    assert during.value("lambda_concurrent_executions", function="prov") == 2
    assert during.value("lambda_provisioned_concurrent_executions", function="prov") == 1
    assert during.value("lambda_provisioned_concurrency_utilization", function="prov") == 1.0
    assert during.environments("prov", "provisioned", "busy") == 1
    assert during.environments("prov", "on_demand", "busy") == 1
    assert during.value("lambda_account_concurrent_executions") == 2
    assert during.value("lambda_unreserved_concurrent_executions") == 2
    parked = parked_states()
    assert s.environments("hello", "on_demand", *parked) == 1
    assert s.environments("prov", "provisioned", *parked) == 1
    assert s.environments("prov", "on_demand", *parked) == 1
    assert sum(s.series("lambda_environments", function="hangs").values()) == 0
    assert not s.series("lambda_environments", type="provisioned", function="hello")  # no provisioned config
    assert {k: v for k, v in s.series("lambda_concurrent_executions").items() if v} == {}
    assert s.value("lambda_provisioned_concurrency_requested", function="prov") == 1
    assert s.value("lambda_provisioned_concurrency_allocated", function="prov") == 1
    assert s.value("lambda_provisioned_concurrency_utilization", function="prov") == 0
    assert s.series("lambda_reserved_concurrency") == {frozenset({("function", "zero")}): 0}
    assert s.value("lambda_account_concurrency_limit") == 1000
    assert s.value("lambda_unreserved_concurrency_limit") == 1000

    # The Event queue's own counters.
    assert s.value("lambda_async_events_received_total") == 2
    assert s.value("lambda_async_events_succeeded_total") == 1
    assert s.value("lambda_async_event_retries_total", cause="error") == 2
    assert s.value("lambda_async_event_retries_total", cause="throttle") == 0
    dropped = {dict(k)["reason"]: v for k, v in s.series("lambda_async_events_dropped_total").items()}
    assert dropped == {
        "RetriesExhausted": 1, "EventAgeExceeded": 0, "ZeroReservedConcurrency": 0, "FunctionDeleted": 0, "InternalError": 0,
    }  # fmt: skip
    assert s.value("lambda_async_event_queue_depth") == 0
    assert s.value("lambda_async_oldest_event_age_seconds") == 0
    _check_names_help_and_labels(s, set(served.scheduler.functions))
    isolation = getattr(served.scheduler, "isolation", None)
    if isolation is not None:  # the engine's isolation, where it has one: an info metric
        assert s.series("lambda_isolation_info") == {frozenset(isolation.describe().items()): 1}


def _queue(served: Served) -> EventQueue:
    return served.app[EVENT_QUEUE]


_BOUNDED_LABELS = {"function", "start", "outcome", "reason", "error_type", "type", "state", "cause", "le"}


def _check_names_help_and_labels(s: Scrape, functions: set[str]) -> None:
    for name, family in s.families.items():
        assert name.startswith(("lambda_", "lambda_scheduler_process_")), name
        assert family.documentation, f"{name} has no HELP"
        for sample in family.samples:
            if name == "lambda_isolation_info":
                continue  # its labels are the mechanism names
            assert set(sample.labels) <= _BOUNDED_LABELS, (sample.name, sample.labels)
            if "function" in sample.labels:
                assert sample.labels["function"] in functions


async def test_histograms_match_the_results_bucket_by_bucket(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.sleep"))
    results = [await served.scheduler.invoke("echo", {"seconds": seconds}) for seconds in (0, 0, 0.002, 0.03, 0)]
    s = await scrape(served.url)
    for name, values in (
        ("lambda_invocation_latency_seconds", [r.latency_s for r in results]),
        ("lambda_duration_seconds", [r.duration_ms / 1000 for r in results]),
    ):
        for start in ("cold", "warm"):
            mine = [v for r, v in zip(results, values) if r.start == start]
            labels = {"function": "echo", "start": start}
            assert s.value(f"{name}_count", **labels) == len(mine)
            assert math.isclose(s.value(f"{name}_sum", **labels), sum(mine), rel_tol=1e-12)
            for bound, le in zip((*BOUNDS, math.inf), LE):
                assert s.value(f"{name}_bucket", le=le, **labels) == sum(v <= bound for v in mine), (name, le)


def _result(start: str, error_type: str | None = None, report_error_type: str | None = None) -> InvocationResult:
    inv = Invocation(
        function_name="fn", version="$LATEST", memory_mb=128, timeout_s=3.0, payload=b"{}", invoked_arn="arn:aws:lambda:us-east-1:123456789012:function:fn", log_limit=4096
    )
    inv.start = start  # type: ignore[assignment]
    if error_type is None:
        return inv.finish_response(Response(inv.request_id, b"null", 1000, 20_000))
    if error_type == "Runtime.ExitError":
        return inv.finish_exit(9, 1.0, 20_000, report_error_type)
    return inv.finish_error(FunctionError(inv.request_id, error_type, b"{}", 1000, 20_000))


def test_out_of_memory_is_told_apart_from_a_crash_and_error_types_are_capped() -> None:
    """Outcome and error type come from the result alone (pure logic: real results, no engine)."""
    observer = MetricsObserver()
    observer.invocation_finished("fn", _result("warm", "Runtime.ExitError", "Runtime.OutOfMemory"), False)
    observer.invocation_finished("fn", _result("warm", "Runtime.ExitError"), False)
    for i in range(MAX_ERROR_TYPES + 3):
        observer.invocation_finished("fn", _result("cold", f"Error{i}"), True)
    families = {f.name: f for f in observer.collect()}
    outcomes = {(s.labels["start"], s.labels["outcome"]): s.value for s in families["lambda_invocations"].samples}
    assert outcomes[("warm", "out_of_memory")] == 1 and outcomes[("warm", "crash")] == 1
    assert outcomes[("cold", "function_error")] == MAX_ERROR_TYPES + 3
    types = {s.labels["error_type"]: s.value for s in families["lambda_errors"].samples}
    assert types["Runtime.OutOfMemory"] == 1 and types["Runtime.ExitError"] == 1
    assert types["other"] == 5  # two platform types and 18 of the user's were kept; 5 were not
    assert len(types) == MAX_ERROR_TYPES + 1
    spill = families["lambda_provisioned_concurrency_spillover_invocations"].samples
    assert [(x.labels, x.value) for x in spill] == [({"function": "fn"}, MAX_ERROR_TYPES + 3)]


async def test_each_server_has_its_own_registry(make_server: MakeServer, tmp_path: Path) -> None:
    config = ServerConfig(code_store_dir=tmp_path / "code", **FAST_EVENTS)
    one = await make_server(fn("a", "basic.noop"), server_config=config)
    two = await make_server(fn("a", "basic.noop"), server_config=config)
    await one.scheduler.invoke("a")
    assert (await scrape(one.url)).value("lambda_invocations_total", function="a", start="cold", outcome="success") == 1
    assert not (await scrape(two.url)).series("lambda_invocations_total")
    assert not [m for m in prometheus_client.REGISTRY.collect() if m.name.startswith("lambda_")]


async def test_metrics_can_be_turned_off(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(
        fn("a", "basic.noop"), server_config=ServerConfig(code_store_dir=tmp_path / "code", metrics=False)
    )
    await served.scheduler.invoke("a")
    assert not any(isinstance(o, MetricsObserver) for o in served.scheduler.observers.members)
    async with aiohttp.ClientSession() as http, http.get(f"{served.url}/metrics") as response:
        assert response.status == 404
        assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_metrics_and_log_dir_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert configs(build_parser().parse_args(["serve"]))[1].metrics is True
    monkeypatch.setenv("LAMBDA_SCHEDULER_METRICS", "off")
    monkeypatch.setenv("LAMBDA_SCHEDULER_LOG_DIR", "/var/log/lambda")
    _, server = configs(build_parser().parse_args(["serve"]))
    assert server.metrics is False and server.log_dir == "/var/log/lambda"
    _, server = configs(build_parser().parse_args(["serve", "--metrics", "ON", "--log-dir", "logs"]))
    assert server.metrics is True and server.log_dir == "logs"
    with pytest.raises(UsageError, match="--metrics: cannot read 'maybe'"):
        configs(build_parser().parse_args(["serve", "--metrics", "maybe"]))
