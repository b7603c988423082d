"""The provisioned-concurrency controller of one pool.

    ensure() ─► start (target - live) environments ahead of demand, each in the background:
                  Init OK ─► allocated; parked on the pool's provisioned idle deque
                  Init failed ─► `error` set (the API's Status FAILED), retried with backoff
                               for as long as the pool still wants it
             ─► retire idle surplus ones, when the target was lowered
    a provisioned environment stops ─► no longer allocated; replaced if its stop reason says so

Live means allocated (initialised, not stopping) or still in Init; the controller keeps exactly
``target`` live. The pool routes to these environments first and parks and retires them; only
how many there are is decided here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..config import AHEAD_INIT_LIMIT_S
from .protocol import Ready
from .starter import describe
from .status import ProvisionedStatus, provisioned_state
from .stops import StopReason

if TYPE_CHECKING:
    from .environment import Environment
    from .pool import Pool

log = logging.getLogger("lambda_scheduler.pool")

_BACKOFF_MAX_S = 60.0


class Provisioned:
    __slots__ = ("_allocated", "_loop", "_pool", "_settled", "error", "starting", "target")

    def __init__(self, pool: Pool, target: int) -> None:
        self._pool = pool
        self.target = target
        self.starting = 0  # in Init
        self._allocated: set[Environment] = set()  # initialised, not yet stopping
        # The last failed Init, until one succeeds (the API reports it as Status FAILED with
        # this StatusReason).
        self.error: str | None = None
        self._loop = asyncio.get_running_loop()
        self._settled: asyncio.Future[None] = self._loop.create_future()  # nothing in Init
        self._settled.set_result(None)

    @property
    def alive(self) -> int:
        """Initialised and not yet stopping (Lambda's allocated)."""
        return len(self._allocated)

    def live(self) -> int:
        return self.starting + len(self._allocated)

    def surplus(self) -> bool:
        return self.live() > self.target

    @property
    def settled(self) -> asyncio.Future[None]:
        """Done while no provisioned environment is in Init."""
        return self._settled

    def ensure(self) -> list[asyncio.Task[None]]:
        """Start or retire provisioned environments until exactly the target are live."""
        pool = self._pool
        if pool.retired:
            return []
        tasks = []
        for _ in range(self.target - self.live()):
            self._count_starting(+1)
            tasks.append(pool.ctx.background(self._start_one()))
        while self.live() > self.target and pool.provisioned_idle:
            pool.retire(pool.provisioned_idle.popleft(), StopReason.PROVISIONED_LOWERED)
        return tasks

    def stopping(self, env: Environment) -> bool:
        """``env`` is stopping; True if it was allocated (so it may need replacing)."""
        if env not in self._allocated:
            return False
        self._allocated.discard(env)
        return True

    def status(self, busy: int) -> ProvisionedStatus:
        allocated = len(self._allocated)
        state = provisioned_state(self.target, allocated, self.starting, self.error)
        return ProvisionedStatus(self.target, allocated, self.starting, busy, state, self.error)

    async def _start_one(self) -> None:
        """Start one environment (counted in ``starting`` until it is ready), retrying a failed
        Init with backoff for as long as the pool wants it."""
        pool = self._pool
        timeout = max(AHEAD_INIT_LIMIT_S, pool.config.timeout_s)
        delay = 1.0
        counted = True
        try:
            while not pool.retired:
                env, outcome, sink = await pool.starter.start_ahead(True, timeout)
                if type(outcome) is Ready:
                    self.error = None
                    counted = False
                    self._allocated.add(env)
                    self._count_starting(-1)
                    if pool.retired or self.surplus():
                        pool.retire(env, StopReason.PROVISIONED_LOWERED)
                    else:
                        pool.park_provisioned(env)
                    return
                self.error = f"Init failed: {describe(outcome)}"
                log.error(
                    "provisioned environment of %s failed Init (%s); retrying in %.0f s\n%s",
                    pool.config.name,
                    describe(outcome),
                    delay,
                    sink.text(),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
        finally:
            if counted:
                self._count_starting(-1)

    def _count_starting(self, delta: int) -> None:
        self.starting += delta
        if self.starting and self._settled.done():
            self._settled = self._loop.create_future()
        elif not self.starting and not self._settled.done():
            self._settled.set_result(None)
