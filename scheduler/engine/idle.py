"""One pool's keep-alive: how long an idle environment stays warm, pre-warming, and the reaper.

    Pool.invoke ──► policy.invoked(name, now)                    (the pool: one call per arrival)
    Pool.release ─► KeepAlive.settle(env) ─► policy.window(name, now)
                      ├─ prewarm_s == 0: park it; env.idle_until = now + keep_alive_s
                      └─ prewarm_s  > 0: retire it now (PREWARMED); if no other environment is
                         idle, a loop timer starts a fresh one at now + prewarm_s (warm, Init
                         done, like a provisioned one), which stays until keep_alive_s later
    reaper tick ───► KeepAlive.reap(now): idle past env.idle_until → IDLE_TIMEOUT;
                     idle past the maximum lifetime → LIFETIME (provisioned ones too)

Provisioned environments are not the policy's business: they stay until their lifetime ends or
the provisioned concurrency is lowered. The policies themselves live in keepalive.py.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .keepalive import KeepAlivePolicy, Window
from .stops import StopReason

if TYPE_CHECKING:
    from .environment import Environment


class KeepAlive:
    """The keep-alive rules of one pool, over the pool's two idle deques (most recently used at
    the right). The pool keeps the deques (routing pops them) and says how to park, retire and
    pre-warm an environment; this class decides when."""

    __slots__ = (
        "_idle",
        "_loop",
        "_max_lifetime_s",
        "_name",
        "_park",
        "_policy",
        "_prewarm",
        "_prewarm_timer",
        "_provisioned_idle",
        "_retire",
    )

    def __init__(
        self,
        name: str,
        policy: KeepAlivePolicy,
        idle: deque[Environment],
        provisioned_idle: deque[Environment],
        max_lifetime_s: float,
        *,
        park: Callable[[Environment], None],
        retire: Callable[[Environment, StopReason], None],
        prewarm: Callable[[float], None],
    ) -> None:
        self._name = name
        self._policy = policy
        self._idle = idle
        self._provisioned_idle = provisioned_idle
        self._max_lifetime_s = max_lifetime_s
        self._park = park
        self._retire = retire
        self._prewarm = prewarm  # start an on-demand environment that stays warm this long
        self._prewarm_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def expired(self, env: Environment, now: float) -> bool:
        """Past the maximum lifetime: recycled when next idle, whatever the policy says."""
        return now - env.created_at >= self._max_lifetime_s

    def settle(self, env: Environment) -> None:
        """An on-demand environment finished an invocation and nothing else retires it: the
        policy's window says whether it stays warm (and until when) or makes way for a
        pre-warmed one."""
        now = self._loop.time()
        window = self._policy.window(self._name, now)
        if window.prewarm_s > 0.0:
            # No call is expected for prewarm_s: holding the environment that long would only
            # cost memory, so it goes now and a fresh one is initialised just before it is due.
            self._retire(env, StopReason.PREWARMED)
            if not self._idle:  # another idle environment already serves the next call
                self._schedule(window)
            return
        self._keep(env, window.keep_alive_s)
        # An idle environment now serves the next call: a pending pre-warm would be surplus.
        self.cancel_prewarm()

    def warmed(self, env: Environment, keep_alive_s: float) -> None:
        """A pre-warmed environment finished Init: idle, warm for ``keep_alive_s``."""
        self._keep(env, keep_alive_s)

    def _keep(self, env: Environment, keep_alive_s: float) -> None:
        self._park(env)
        env.idle_until = env.last_used + keep_alive_s
        self._idle.append(env)

    # --- pre-warming ----------------------------------------------------------------------

    def _schedule(self, window: Window) -> None:
        # One pre-warm pending per pool: the newest window is the policy's latest prediction.
        self.cancel_prewarm()
        self._prewarm_timer = self._loop.call_later(window.prewarm_s, self._prewarm_due, window.keep_alive_s)

    def _prewarm_due(self, keep_alive_s: float) -> None:
        self._prewarm_timer = None
        if not self._idle:
            self._prewarm(keep_alive_s)

    def cancel_prewarm(self) -> None:
        """The pool is retired or the scheduler stops (or an idle environment makes it moot)."""
        if self._prewarm_timer is not None:
            self._prewarm_timer.cancel()
            self._prewarm_timer = None

    @property
    def prewarm_pending(self) -> bool:
        return self._prewarm_timer is not None

    # --- the reaper -----------------------------------------------------------------------

    def reap(self, now: float) -> int:
        """Retire idle environments past their window or their maximum lifetime; busy ones are
        never here. Returns how many were retired."""
        reaped = 0
        idle = self._idle
        # Under a fixed TTL the deadlines follow the deque's order, but a policy's windows vary
        # from one environment to the next: every idle environment is looked at (the lifetime
        # check has to look at each anyway).
        for env in [e for e in idle if e.idle_until <= now or self.expired(e, now)]:
            idle.remove(env)
            self._retire(env, StopReason.IDLE_TIMEOUT if env.idle_until <= now else StopReason.LIFETIME)
            reaped += 1
        queue = self._provisioned_idle
        for env in [e for e in queue if self.expired(e, now)]:
            queue.remove(env)
            self._retire(env, StopReason.LIFETIME)  # the pool replaces it (STOP_RULES)
            reaped += 1
        return reaped
