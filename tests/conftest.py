from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from scheduler import FunctionConfig, Scheduler

from .procs import wait_gone, zygote_family

FUNCTIONS = Path(__file__).parent / "functions"

# Short limits so the fault matrix runs in seconds; behaviour is the same as with Lambda's.
FAST = {"init_timeout_s": 2.0, "shutdown_timeout_s": 0.5, "drain_timeout_s": 5.0}


def fn(name: str, handler: str, **kwargs: Any) -> FunctionConfig:
    return FunctionConfig(name=name, handler=handler, code_dir=kwargs.pop("code_dir", FUNCTIONS), **kwargs)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Tests run on uvloop, the loop the server uses."""
    return {"uvloop": uvloop.new_event_loop}


MakeScheduler = Callable[..., Awaitable[Scheduler]]


@pytest.fixture
async def make_scheduler() -> AsyncIterator[MakeScheduler]:
    """Start schedulers for a test; stop them after it and check nothing is left running."""
    before = zygote_family()
    created: list[Scheduler] = []

    async def make(*functions: FunctionConfig, **settings: Any) -> Scheduler:
        s = Scheduler(functions, **{**FAST, **settings})
        created.append(s)
        await s.start()
        return s

    yield make
    for s in created:
        await s.stop()
    leftover = wait_gone(zygote_family() - before, timeout=5.0)
    assert not leftover, f"processes left behind: {sorted(leftover)}"
