"""The scheduler's one deadline timer (engine/deadlines.py), on a real uvloop loop.

The environments' own timeouts go through it in test_faults.py and test_lifecycle.py; these
tests pin the timer's contract: nothing expires early, an unwatched item never expires, an
earlier deadline is honoured at once, and steady traffic arms no timer per invocation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from scheduler.engine.deadlines import Deadlines


class Item:
    def __init__(self, deadline: float, on_expire: Callable[[Item], None] | None = None) -> None:
        self.deadline = deadline
        self.expired_at: float | None = None
        self.done = asyncio.get_running_loop().create_future()
        self._on_expire = on_expire

    def expire(self) -> None:
        self.expired_at = time.perf_counter()
        if self._on_expire is not None:
            self._on_expire(self)
        self.done.set_result(None)


def _in(seconds: float) -> float:
    return time.perf_counter() + seconds


async def test_an_item_expires_at_its_deadline_and_never_before() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    items = [Item(_in(0.02 * i)) for i in range(1, 6)]
    for item in reversed(items):  # the latest first: each earlier one moves the timer
        deadlines.watch(item, item.deadline)
    await asyncio.wait_for(asyncio.gather(*(i.done for i in items)), 10)
    for item in items:
        assert item.expired_at is not None and item.expired_at >= item.deadline
    assert len(deadlines) == 0
    deadlines.close()


async def test_an_unwatched_item_never_expires() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    answered, late = Item(_in(0.01)), Item(_in(0.05))
    deadlines.watch(answered, answered.deadline)
    deadlines.watch(late, late.deadline)
    deadlines.unwatch(answered)  # the reply came first
    await asyncio.wait_for(late.done, 10)
    assert answered.expired_at is None
    deadlines.close()


async def test_an_earlier_deadline_is_not_held_back_by_a_later_one() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    slow = Item(_in(3600))
    deadlines.watch(slow, slow.deadline)
    quick = Item(_in(0.02))
    deadlines.watch(quick, quick.deadline)
    await asyncio.wait_for(quick.done, 10)
    assert slow.expired_at is None and len(deadlines) == 1
    deadlines.close()
    assert len(deadlines) == 0


async def test_an_item_watched_again_from_its_expiry_expires_again() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    second = asyncio.get_running_loop().create_future()

    def again(item: Item) -> None:
        if not second.done():
            item.deadline = _in(0.02)
            item.expire = lambda: second.set_result(time.perf_counter())  # type: ignore[method-assign]
            deadlines.watch(item, item.deadline)

    item = Item(_in(0.02), on_expire=again)
    deadlines.watch(item, item.deadline)
    at = await asyncio.wait_for(second, 10)
    assert at >= item.deadline
    deadlines.close()


async def test_steady_traffic_arms_no_timer_per_invocation(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    real_call_later = loop.call_later

    def counting(delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        armed.append(delay)
        return real_call_later(delay, callback, *args)

    monkeypatch.setattr(loop, "call_later", counting)
    deadlines = Deadlines(loop)
    for _ in range(1000):  # invocations of a 3 s function, each answered at once
        item = Item(_in(3.0))
        deadlines.watch(item, item.deadline)
        deadlines.unwatch(item)
    assert len(armed) == 1  # the first one armed the timer; the others are later: untouched
    deadlines.close()


async def test_close_cancels_the_timer() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    item = Item(_in(0.01))
    deadlines.watch(item, item.deadline)
    deadlines.close()
    await asyncio.sleep(0.05)
    assert item.expired_at is None
