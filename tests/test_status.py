"""The frozen FunctionStatus the API, health check and metrics read instead of the pools."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from scheduler.engine.environment import EnvState

from .conftest import MakeScheduler, fn, wait_provisioned


async def test_a_status_is_a_snapshot_that_later_events_do_not_change(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("p", "basic.echo", provisioned_concurrency=1))
    await wait_provisioned(s, "p")
    before = s.status("p")
    assert before.provisioned.requested == 1 and before.provisioned.allocated == 1
    assert before.provisioned.status == "READY" and before.provisioned.ready == 1
    assert before.count(EnvState.IDLE, "provisioned") + before.count(EnvState.FROZEN, "provisioned") == 1
    assert before.count(kind="on_demand") == 0 and before.in_flight == 0

    # Two at once: one runs on the provisioned environment, one cold on an on-demand one.
    await asyncio.gather(s.invoke("p", b"{}"), s.invoke("p", b"{}"))
    after = s.status("p")
    assert after.count(kind="on_demand") == 1
    assert before.count(kind="on_demand") == 0  # the old snapshot still says what it saw
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.in_flight = 3  # type: ignore[misc]
    assert sum(after.by_state().values()) == after.count() == 2

