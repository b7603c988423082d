"""The harness's pure parts, against exact answers: the histogram against sorted samples,
arrival schedules against the area under their rate, the function mix, the echo token, the
cold / warm reading of a Tail log, and the self-check's verdict."""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import statistics
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.load.arrivals import OpenLoop, Stage, parse_duration
from scheduler.load.client import read_report, start_from_log
from scheduler.load.histogram import Histogram
from scheduler.load.selfcheck import assess
from scheduler.load.workload import Mix, Target, with_token

# --- histogram --------------------------------------------------------------------------------


def exact_percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * q - 1e-9)) - 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10**10), min_size=1, max_size=400),
    st.sampled_from([0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0]),
    st.integers(min_value=2, max_value=12),
)
def test_percentiles_are_within_the_stated_relative_error(values: list[int], q: float, bits: int) -> None:
    h = Histogram(bits)
    for v in values:
        h.record(v)
    exact = exact_percentile(values, q)
    got = h.percentile(q)
    # Never below the true value; above it by at most one bucket: a relative 2^-bits.
    assert exact <= got <= max(exact, exact + exact * 2.0**-bits)
    assert h.count == len(values) and h.min == min(values) and h.max == max(values)
    assert h.mean == pytest.approx(statistics.fmean(values))


@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=1, max_value=14))
def test_buckets_tile_the_integers_in_order(value: int, bits: int) -> None:
    h = Histogram(bits)
    index = h.index_of(value)
    low, high = h.bounds_of(index)
    assert low <= value <= high
    assert h.index_of(low) == h.index_of(high) == index
    assert h.index_of(high + 1) == index + 1  # the next bucket starts right after this one
    assert high - low <= max(0, value * 2.0**-bits)


def test_small_values_are_exact_and_memory_grows_with_the_logarithm() -> None:
    h = Histogram(10)
    for v in range(2048):
        assert h.bounds_of(h.index_of(v)) == (v, v)
    h.record(3_600 * 10**6)  # an hour in µs
    assert len(h._counts) < 25_000


def test_merge_json_and_cdf() -> None:
    rng = random.Random(7)
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(5000):
        v = int(rng.lognormvariate(8, 1.5))
        (a if i % 3 else b).record(v)
        both.record(v)
    a.merge(b)
    assert a.to_dict() == both.to_dict()
    again = Histogram.from_dict(json.loads(json.dumps(a.to_dict())))
    assert [again.percentile(q) for q in (0.5, 0.99, 0.999)] == [both.percentile(q) for q in (0.5, 0.99, 0.999)]
    cdf = again.cdf()
    assert cdf[-1] == (both.max, 1.0)
    assert all(x1 < x2 and f1 < f2 for (x1, f1), (x2, f2) in itertools.pairwise(cdf))
    with pytest.raises(ValueError):
        a.record(-1)


def test_count_at_or_above() -> None:
    h = Histogram()
    for v in [10, 200, 5_000, 150_000, 150_001, 900_000]:
        h.record(v)
    assert h.count_at_or_above(100_000) == 3
    assert h.count_at_or_above(0) == 6


# --- arrivals ---------------------------------------------------------------------------------


def test_durations_and_stages_parse() -> None:
    assert [parse_duration(t) for t in ("500ms", "1.5s", "2m", "10", "1h")] == [0.5, 1.5, 120, 10, 3600]
    assert Stage.parse("10s:0-500") == Stage(10, 0, 500)
    assert Stage.parse("2m:30") == Stage(120, 30, 30)
    for bad in ("10s", "x:5", "10s:a-b", "0s:5", "1s:-5"):
        with pytest.raises(ValueError):
            Stage.parse(bad)


def test_fixed_rate_is_evenly_spaced() -> None:
    times = list(OpenLoop((Stage(2.0, 100, 100),)).times())
    assert len(times) == 200
    assert times[0] == 0 and times[-1] == pytest.approx(1.99)
    assert all(b - a == pytest.approx(0.01) for a, b in itertools.pairwise(times))


def test_ramps_and_steps_follow_the_area_under_the_rate() -> None:
    plan = OpenLoop((Stage(4.0, 0, 400), Stage(2.0, 400, 400), Stage(3.0, 300, 100)))
    times = list(plan.times())
    assert len(times) == math.ceil(plan.arrivals) == 800 + 800 + 600
    assert times == sorted(times) and times[-1] < plan.duration_s
    # Within the ramp, the count due by t is the integral r(t) = 100 t → 50 t².
    for t in (1.0, 2.0, 3.0):
        assert sum(1 for x in times if x < t) == pytest.approx(50 * t * t, abs=1)
        assert plan.expected_by(t) == pytest.approx(50 * t * t)
    assert plan.rate_at(1.0) == pytest.approx(100) and plan.rate_at(5) == 400 and plan.rate_at(7.5) == 200


def test_poisson_arrivals_have_the_right_count_and_exponential_gaps() -> None:
    plan = OpenLoop((Stage(20.0, 500, 500),), poisson=True)
    times = list(plan.times(seed=3))
    assert abs(len(times) - 10_000) < 4 * math.sqrt(10_000)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 500, rel=0.05)
    # Exponential gaps: the standard deviation equals the mean (evenly spaced ones have none).
    assert statistics.stdev(gaps) == pytest.approx(1 / 500, rel=0.08)
    assert list(plan.times(seed=3))[:50] == times[:50]


def test_an_open_ended_stage_keeps_going() -> None:
    times = OpenLoop((Stage(math.inf, 1000, 1000),)).times()
    first = [next(times) for _ in range(5000)]
    assert first[-1] == pytest.approx(4.999)


# --- workload ---------------------------------------------------------------------------------


def test_the_mix_follows_the_weights_and_cycles_payloads() -> None:
    mix = Mix([Target("a", 3, (b'{"n":1}', b'{"n":2}')), Target("b", 1)], seed=1)
    picks = [mix.pick() for _ in range(20_000)]
    counts = Counter(fn for fn, _, _ in picks)
    assert counts["a"] / len(picks) == pytest.approx(0.75, abs=0.015)
    a_payloads = [p for fn, p, _ in picks if fn == "a"]
    assert a_payloads[:4] == [b'{"n":1}', b'{"n":2}', b'{"n":1}', b'{"n":2}']
    assert all(token is None for _, _, token in picks)


def test_echo_tokens_are_unique_and_win_over_an_existing_field() -> None:
    mix = Mix([Target("a", 1, (b'{"token": "old", "x": [1]}',))], seed=1, verify_field="token")
    events = [mix.pick() for _ in range(1000)]
    tokens = [token for _, _, token in events]
    assert len(set(tokens)) == 1000
    for _, payload, token in events[:5]:
        assert json.loads(payload) == {"token": token, "x": [1]}
    assert json.loads(with_token(b" { } ", "k", "t")) == {"k": "t"}
    with pytest.raises(ValueError):
        Mix([Target("a", 1, (b"[1]",))], verify_field="token")


def test_target_spec_parses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"a": 1}, {"a": 2}]))
    target = Target.parse(f"arn:aws:lambda:us-east-1:123456789012:function:f=2.5@{events}")
    assert target.function == "arn:aws:lambda:us-east-1:123456789012:function:f"
    assert target.weight == 2.5 and target.payloads == (b'{"a":1}', b'{"a":2}')
    with pytest.raises(ValueError):
        Target.parse("f=0")


# --- cold or warm, from the Tail log -----------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_cold_and_warm_are_read_from_the_report_line() -> None:
    rid = "6a1c2a1e-0000-4000-8000-000000000000"
    cold = (
        f"START RequestId: {rid} Version: $LATEST\nhello\nEND RequestId: {rid}\n"
        f"REPORT RequestId: {rid}\tDuration: 1.27 ms\tBilled Duration: 109 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 36 MB\tInit Duration: 107.95 ms\t\n"
    )
    assert start_from_log(b64(cold)) == ("cold", 107.95)
    assert read_report(b64(cold)) == ("cold", 107.95, 1.27)  # Duration, not Billed or Init Duration
    warm = cold.replace("Init Duration: 107.95 ms\t", "")
    assert start_from_log(b64(warm)) == ("warm", None)
    assert read_report(b64(warm)) == ("warm", None, 1.27)
    # A handler that prints a fake REPORT line with Init Duration does not fool it.
    fooled = "REPORT RequestId: x\tInit Duration: 1.00 ms\t\n" + warm
    assert start_from_log(b64(fooled)) == ("warm", None)
    # INIT_REPORT (a failed Init) is not the REPORT line.
    assert start_from_log(b64("INIT_REPORT Init Duration: 5.00 ms\tPhase: init\n"))[0] == "unknown"
    # A first Init that timed out, retried inside the invoke: still a cold start, with no
    # Init Duration in REPORT (as Lambda writes it).
    retried = (
        "INIT_REPORT Init Duration: 2000.12 ms\tPhase: init\tStatus: timeout\n"
        f"START RequestId: {rid} Version: $LATEST\nINIT_REPORT Init Duration: 5.00 ms\tPhase: invoke\tStatus: success\n"
        + warm.split("\n", 1)[1]
    )
    assert read_report(b64(retried)) == ("cold", None, 1.27)
    # A warm handler printing INIT_REPORT after START does not make it cold.
    faked = warm.replace("hello\n", "INIT_REPORT Init Duration: 1.00 ms\tPhase: init\n")
    assert read_report(b64(faked)) == ("warm", None, 1.27)
    assert start_from_log(None) == ("unknown", None)
    assert start_from_log("%%%not base64") == ("unknown", None)


def test_cold_and_warm_are_read_from_the_json_report_record() -> None:
    rid = "6a1c2a1e-0000-4000-8000-000000000000"
    start = f'{{"time":"t","type":"platform.start","record":{{"requestId":"{rid}","version":"$LATEST"}}}}\n'
    metrics = '{"durationMs":1.27,"billedDurationMs":109,"memorySizeMB":128,"maxMemoryUsedMB":36'
    report = f'{{"time":"t","type":"platform.report","record":{{"requestId":"{rid}","metrics":{metrics}%s}},"status":"success"}}}}\n'
    cold = start + '{"level":"INFO","message":"hi"}\n' + report % ',"initDurationMs":107.95'
    assert read_report(b64(cold)) == ("cold", 107.95, 1.27)
    warm = start + report % ""
    assert read_report(b64(warm)) == ("warm", None, 1.27)
    # A handler's JSON line that looks like a report, before the real one, does not count.
    fooled = report % ',"initDurationMs":1.0' + warm
    assert read_report(b64(fooled)) == ("warm", None, 1.27)
    init_failed = '{"time":"t","type":"platform.initReport","record":{"phase":"init","status":"error"}}\n' + warm
    assert read_report(b64(init_failed)) == ("cold", None, 1.27)
    assert read_report(b64(start + '{"type":"platform.report"}\n')) == ("unknown", None, None)


# --- the self-check -----------------------------------------------------------------------------


def lags(*values_ms: float) -> Histogram:
    h = Histogram()
    for v in values_ms:
        h.record(int(v * 1000))
    return h


def test_the_verdict_names_each_sign_of_a_saturated_harness() -> None:
    quiet = lags(*[0.3] * 100)
    calm = assess(
        open_loop=True,
        cpu=0.3,
        machine=0.5,
        dispatch_lag=quiet,
        loop_lag=quiet,
        connection_wait=quiet,
        in_flight_cap_hits=0,
    )
    assert not calm.bottleneck and not calm.reasons and not calm.notes
    busy = assess(
        open_loop=True,
        cpu=0.97,
        machine=0.99,
        dispatch_lag=lags(*[0.3] * 90, *[40] * 10),
        loop_lag=lags(*[20] * 10),
        connection_wait=lags(*[30] * 100),
        in_flight_cap_hits=3,
    )
    assert busy.bottleneck
    text = " | ".join(busy.reasons)
    assert "97% of a CPU core" in text and "behind its schedule" in text and "event loop" in text
    assert "--max-in-flight" in text
    assert any("free connection" in n for n in busy.notes) and any("machine" in n for n in busy.notes)
    # A closed loop has no schedule to fall behind, and its callers always hold a connection.
    closed = assess(
        open_loop=False,
        cpu=0.2,
        machine=None,
        dispatch_lag=lags(50),
        loop_lag=quiet,
        connection_wait=lags(50),
        in_flight_cap_hits=0,
    )
    assert not closed.bottleneck and not closed.notes
