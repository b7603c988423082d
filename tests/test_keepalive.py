"""Keep-alive policies (scheduler/keepalive.py): pure, no engine, no event loop."""

from __future__ import annotations

import random
import sys

import pytest

from scheduler.engine.keepalive import FixedTTL, Hybrid, KeepAlivePolicy, Window, make_policy

MIN = 60.0


def feed(policy: KeepAlivePolicy, function: str, idle_times: list[float], start: float = 1000.0) -> float:
    """Invoke `function` once, then once after each idle time; return the last arrival."""
    now = start
    policy.invoked(function, now)
    for idle in idle_times:
        now += idle
        policy.invoked(function, now)
    return now


def test_fixed_ttl_window() -> None:
    p = FixedTTL(600.0)
    assert p.name == "fixed"
    p.invoked("f", 1.0)
    assert p.window("f", 2.0) == Window(0.0, 600.0)
    assert p.window("never-invoked", 2.0) == Window(0.0, 600.0)
    assert FixedTTL().window("f", 0.0) == Window(0.0, 600.0)  # today's default
    with pytest.raises(ValueError):
        FixedTTL(-1.0)
    with pytest.raises(ValueError):
        FixedTTL(float("nan"))


def test_window_is_frozen() -> None:
    w = Window(1.0, 2.0)
    with pytest.raises(AttributeError):
        w.prewarm_s = 3.0  # type: ignore[misc]


def test_make_policy() -> None:
    fixed = make_policy("fixed", 300.0)
    assert isinstance(fixed, FixedTTL) and fixed.name == "fixed"
    assert fixed.window("f", 0.0) == Window(0.0, 300.0)
    hybrid = make_policy("hybrid", 300.0)
    assert isinstance(hybrid, Hybrid) and hybrid.name == "hybrid"
    assert hybrid.fallback_ttl_s == 300.0
    assert hybrid.window("f", 0.0) == Window(0.0, 300.0)
    for bad in ("", "FIXED", "arima", "lru"):
        with pytest.raises(ValueError):
            make_policy(bad, 300.0)


def test_hybrid_falls_back_with_few_samples() -> None:
    p = Hybrid(600.0, min_samples=10)
    assert p.window("f", 0.0) == Window(0.0, 600.0)  # never invoked
    now = feed(p, "f", [10 * MIN] * 9)  # 9 idle times: one short of min_samples
    assert p.window("f", now + 1.0) == Window(0.0, 600.0)
    p.invoked("f", now + 10 * MIN)  # the 10th
    assert p.window("f", now + 10 * MIN + 1.0) != Window(0.0, 600.0)


def test_hybrid_periodic_ten_minutes() -> None:
    rng = random.Random(1)
    p = Hybrid(600.0)
    # Every 10 minutes +-5 s: the idle times fall in bins 9 and 10 (9-10 and 10-11 minutes).
    now = feed(p, "timer", [10 * MIN + rng.uniform(-5.0, 5.0) for _ in range(200)])
    w = p.window("timer", now + 1.0)
    # Pre-warm: the head bin's lower edge, 9 minutes, less the 10 % margin.
    assert w.prewarm_s == pytest.approx(9 * MIN * 0.9)
    # Kept until the tail bin's upper edge, 11 minutes, plus 10 %.
    assert w.prewarm_s + w.keep_alive_s == pytest.approx(11 * MIN * 1.1)
    # So an environment unloaded at idle is warm again well before every next arrival...
    assert w.prewarm_s < 10 * MIN - 5.0
    # ...and stays warm past the latest one.
    assert w.prewarm_s + w.keep_alive_s > 10 * MIN + 5.0
    # Much less warm time per cycle than the 10-minute TTL would hold before the next arrival.
    assert w.keep_alive_s < 5 * MIN


def test_hybrid_frequent_function_no_prewarm() -> None:
    # Invoked every ~20 s: the head is in the first bin, so no unload, and a short keep-alive.
    rng = random.Random(2)
    p = Hybrid(600.0)
    now = feed(p, "busy", [rng.uniform(5.0, 35.0) for _ in range(500)])
    w = p.window("busy", now)
    assert w.prewarm_s == 0.0
    assert w.keep_alive_s == pytest.approx(1 * MIN * 1.1)


def test_hybrid_bimodal_covers_the_tail() -> None:
    # 70 % of idle times ~2 minutes, 30 % ~30 minutes: the 5th percentile is in the 2-minute mode
    # and the 99th in the 30-minute mode, so the window spans both.
    rng = random.Random(3)
    idle = [
        2.5 * MIN + rng.uniform(-10, 10) if rng.random() < 0.7 else 30.5 * MIN + rng.uniform(-10, 10)
        for _ in range(300)
    ]
    p = Hybrid(600.0)
    now = feed(p, "bimodal", idle)
    w = p.window("bimodal", now)
    assert w.prewarm_s == pytest.approx(2 * MIN * 0.9)
    assert w.prewarm_s + w.keep_alive_s == pytest.approx(31 * MIN * 1.1)
    covered = sum(w.prewarm_s <= x <= w.prewarm_s + w.keep_alive_s for x in idle)
    assert covered / len(idle) >= 0.99


def test_hybrid_flat_histogram_falls_back() -> None:
    # Idle times spread evenly over the whole 4-hour range: the CV of the bin counts is low,
    # nothing to predict, so the fixed TTL.
    rng = random.Random(4)
    p = Hybrid(600.0)
    now = feed(p, "flat", [rng.uniform(0.0, 240 * MIN) for _ in range(2000)])
    assert p.window("flat", now) == Window(0.0, 600.0)


def test_hybrid_out_of_range_falls_back() -> None:
    p = Hybrid(600.0, max_oob_fraction=0.5)
    # Every 5 hours: beyond the 4-hour range.
    now = feed(p, "daily-ish", [5 * 60 * MIN] * 50)
    assert p.window("daily-ish", now) == Window(0.0, 600.0)
    # A minority out of range does not: the window comes from the in-range idle times.
    q = Hybrid(600.0, max_oob_fraction=0.5)
    now = feed(q, "mostly", [10 * MIN + 1.0] * 40 + [5 * 60 * MIN] * 10)
    w = q.window("mostly", now)
    assert w.prewarm_s == pytest.approx(10 * MIN * 0.9)


def test_hybrid_functions_are_independent() -> None:
    p = Hybrid(600.0)
    feed(p, "a", [10 * MIN + 1.0] * 50)
    assert p.window("b", 0.0) == Window(0.0, 600.0)
    assert p.window("a", 0.0).prewarm_s > 0.0


def test_hybrid_adapts_lazily_but_soon() -> None:
    # The window is recomputed only after the sample count grows by 1/32; a pattern change
    # still shows within a bounded number of samples.
    p = Hybrid(600.0)
    now = feed(p, "f", [10 * MIN + 1.0] * 100)
    assert p.window("f", now).prewarm_s == pytest.approx(10 * MIN * 0.9)
    for _ in range(200):  # now every 2 minutes: these soon outnumber the old ones
        now += 2 * MIN + 1.0
        p.invoked("f", now)
        p.window("f", now)
    assert p.window("f", now).prewarm_s == pytest.approx(2 * MIN * 0.9)


def test_hybrid_bounded_memory_and_o1_invoked() -> None:
    p = Hybrid(600.0)
    rng = random.Random(5)
    now = 0.0
    p.invoked("f", now)
    h = p._functions["f"]
    counts = h.counts
    size = sys.getsizeof(counts)
    for i in range(20_000):
        # Idle times in range and far out of it, and arrivals out of order.
        now += rng.choice([0.001, 30.0, 600.0, 10 * 3600.0, -1.0])
        p.invoked("f", now)
        if i % 7 == 0:
            p.window("f", now)
    assert h.counts is counts  # the same list, never replaced...
    assert len(counts) == 240  # ...never grown
    assert sys.getsizeof(counts) == size
    assert sum(counts) + h.oob == h.total == 20_000
    assert len(p._functions) == 1
    assert not hasattr(h, "__dict__")  # slots: no per-function attribute growth


def test_hybrid_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Hybrid(-1.0)
    with pytest.raises(ValueError):
        Hybrid(600.0, bins=0)
    with pytest.raises(ValueError):
        Hybrid(600.0, head_percentile=99.0, tail_percentile=5.0)
    with pytest.raises(ValueError):
        Hybrid(600.0, margin=1.0)
