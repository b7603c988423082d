"""What the engine tells the outside world: the hook points for metrics and log files.

The engine calls these methods at the moments they name, synchronously, on the event loop.
They must be cheap (``invocation_finished`` runs once per invocation, on the hot path) and
must not raise. Gauges (environments by state, concurrency) are not pushed here: a collector
reads them from ``Scheduler.functions`` when scraped, so there is one source of truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .environment import Environment
    from .invocation import InvocationResult
    from .stops import StopReason


class Observer:
    """Base class with no-op methods; override what you need."""

    def invocation_finished(self, function: str, result: InvocationResult, provisioned_configured: bool) -> None:
        """A synchronous invocation ended (any outcome but a throttle). ``result.latency_s``
        is admission to reply. ``provisioned_configured`` says whether the function has
        provisioned concurrency, so a cold start is a spillover."""

    def throttled(self, function: str, reason: str) -> None:
        """An invocation was refused at admission (429) with Lambda's reason."""

    def environment_started(self, function: str, env: Environment, ok: bool, init_s: float) -> None:
        """An environment finished Init (``ok``) or failed it. ``env.provisioned`` tells the kind."""

    def environment_stopped(self, function: str, env: Environment, reason: StopReason) -> None:
        """An environment's process is gone, for ``reason``; ``stops.STOP_RULES[reason]``
        has its metric label and log line."""

    def environment_output(self, function: str, env: Environment, data: bytes) -> None:
        """Output an environment wrote outside any invocation (provisioned Init, background
        threads between invocations)."""


class Observers(Observer):
    """Fans each call out to several observers."""

    def __init__(self) -> None:
        self.members: list[Observer] = []

    def add(self, observer: Observer) -> None:
        self.members.append(observer)

    def invocation_finished(self, function: str, result: InvocationResult, provisioned_configured: bool) -> None:
        for member in self.members:
            member.invocation_finished(function, result, provisioned_configured)

    def throttled(self, function: str, reason: str) -> None:
        for member in self.members:
            member.throttled(function, reason)

    def environment_started(self, function: str, env: Environment, ok: bool, init_s: float) -> None:
        for member in self.members:
            member.environment_started(function, env, ok, init_s)

    def environment_stopped(self, function: str, env: Environment, reason: StopReason) -> None:
        for member in self.members:
            member.environment_stopped(function, env, reason)

    def environment_output(self, function: str, env: Environment, data: bytes) -> None:
        for member in self.members:
            member.environment_output(function, env, data)

