"""A function as the engine reports it: one frozen snapshot, read by the API and the metrics.

    Scheduler.functions[name] / Scheduler.status(name) ─► FunctionStatus (built by the engine)
        ─► api/ (GetFunction, concurrency, health), metrics/pools.py (gauges)

Nothing outside the engine touches a pool or a live counter: everything reported about a
function is taken here, at one instant on the event loop, so every number in a snapshot
belongs to the same moment and none can be changed through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..config import FunctionConfig
from .environment import EnvState

if TYPE_CHECKING:
    from .snapshot import SnapshotView

ProvisionedState = Literal["READY", "IN_PROGRESS", "FAILED"]
Kind = Literal["on_demand", "provisioned"]


@dataclass(frozen=True, slots=True)
class ProvisionedStatus:
    requested: int  # the configured provisioned concurrency
    allocated: int  # initialised and in service (Lambda's Allocated)
    starting: int  # still in Init
    busy: int  # running an invocation
    status: ProvisionedState
    reason: str | None  # StatusReason when FAILED: the last failed Init

    @property
    def ready(self) -> int:
        """Available and allocated, as Lambda reports them: never above the request."""
        return min(self.allocated, self.requested)


@dataclass(frozen=True, slots=True)
class FunctionStatus:
    name: str
    arn: str
    config: FunctionConfig
    # Which function this is: a function removed and created again under its name is another.
    incarnation: int
    environments: Mapping[tuple[Kind, EnvState], int]  # every (kind, state), zero included
    provisioned: ProvisionedStatus
    in_flight: int  # admitted and not yet answered (cold starts included)
    reserved: int | None
    # Resolves once this configuration is replaced or removed and its last environment is
    # gone (await it shielded); provisioned_settled once no provisioned environment is in Init.
    drained: asyncio.Future[None]
    provisioned_settled: asyncio.Future[None]
    # "$LATEST" or a published version's number; ``arn`` is qualified for a published one.
    version: str = "$LATEST"
    # A published version's SnapStart snapshot: its state (Pending until Init has run in it).
    snapshot: SnapshotView | None = None

    def count(self, state: EnvState | None = None, kind: Kind | None = None) -> int:
        return sum(
            n for (k, s), n in self.environments.items() if (state is None or s is state) and (kind is None or k == kind)
        )

    def by_state(self) -> dict[EnvState, int]:
        out = dict.fromkeys(EnvState, 0)
        for (_kind, state), n in self.environments.items():
            out[state] += n
        return out


def provisioned_state(requested: int, allocated: int, starting: int, error: str | None) -> ProvisionedState:
    if min(allocated, requested) >= requested and starting == 0:
        return "READY"
    return "FAILED" if error is not None else "IN_PROGRESS"
