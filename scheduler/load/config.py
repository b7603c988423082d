"""``LoadConfig``: everything one run of the harness needs, checked once, before it starts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import Credential
from .arrivals import Arrivals, ClosedLoop, OpenLoop
from .workload import Target


class LoadConfigError(ValueError):
    pass


@dataclass(frozen=True)
class LoadConfig:
    endpoint: str
    targets: tuple[Target, ...]
    arrivals: Arrivals
    requests: int | None = None  # stop dispatching after this many
    duration_s: float | None = None  # stop dispatching after this long
    connections: int | None = None  # open loop: keep-alive connections (default 256); closed: = callers
    max_in_flight: int = 10_000  # open loop: requests dispatched and not yet answered, at most
    request_timeout_s: float = 60.0
    drain_timeout_s: float | None = None  # wait for in-flight requests at the end (default: request timeout)
    tail: bool = True  # ask for the log (needed for cold / warm)
    verify_field: str | None = None  # echo check: the field that carries each request's token
    seed: int | None = None
    interval_s: float = 1.0
    # Sign each request (AWS Signature Version 4) with this key, for a server with --auth sigv4.
    credentials: Credential | None = None
    region: str = "us-east-1"  # of the signature's scope

    def __post_init__(self) -> None:
        if not self.targets:
            raise LoadConfigError("give at least one --function")
        if self.requests is not None and self.requests < 1:
            raise LoadConfigError("--requests must be ≥ 1")
        if self.duration_s is not None and not self.duration_s > 0:
            raise LoadConfigError("--duration must be > 0")
        if self.connections is not None and self.connections < 1:
            raise LoadConfigError("--connections must be ≥ 1")
        if self.max_in_flight < 1 or not self.request_timeout_s > 0 or not self.interval_s > 0:
            raise LoadConfigError("--max-in-flight, --timeout and --interval must be positive")
        bounded = self.requests is not None or self.duration_s is not None
        if isinstance(self.arrivals, ClosedLoop) and not bounded:
            raise LoadConfigError("a closed loop needs --requests or --duration")
        if isinstance(self.arrivals, OpenLoop) and math.isinf(self.arrivals.duration_s) and not bounded:
            raise LoadConfigError("an open loop with no end needs --requests or --duration")

    @property
    def open_loop(self) -> bool:
        return isinstance(self.arrivals, OpenLoop)

    @property
    def connection_limit(self) -> int:
        if isinstance(self.arrivals, ClosedLoop):
            return self.arrivals.concurrency
        return self.connections or 256

    @property
    def drain_s(self) -> float:
        return self.request_timeout_s if self.drain_timeout_s is None else self.drain_timeout_s

    @property
    def deadline_s(self) -> float:
        """Seconds after the start at which dispatching stops."""
        limits = [self.duration_s or math.inf]
        if isinstance(self.arrivals, OpenLoop):
            limits.append(self.arrivals.duration_s)
        return min(limits)
