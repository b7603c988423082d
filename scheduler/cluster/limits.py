"""Reserved and account concurrency across the cluster: a ledger in a KV bucket, updated with
compare-and-set on the entry's revision, so two nodes can never both take the last slot.

What a node writes is not each invocation but a *lease*: how many slots of a key it holds.
Invocations are admitted against the lease locally; the ledger is written only when the lease
must grow or has spare slots to give back, so steady traffic costs no NATS round trip:

    Scheduler.invoke ─► ClusterLimits.enter(function, reserved)
        in use < held ─► admitted, locally
        else ─► grow the lease (one CAS in flight per key; waiting callers share it):
                read {node: held} ─► live total ─► ask for up to LEASE_BLOCK more, within the limit
                                   └► nothing left ─► Throttled (429)
    leave ─► in use − 1; spare slots held SPARE_HOLD_S after the last leave ─► trimmed back to
             what is in use (one CAS), so another node can take them

One key per function with a reserved concurrency (``fn.<name>``) and one for the account's
unreserved pool (``account``). Counts of a node whose heartbeat expired (checked again at
once, never on a stale list) are ignored and removed at the next write, so a killed node's
slots come back within the heartbeat TTL.

Tolerance: while NATS answers, the limit is never exceeded (a slot in use is a slot held, and
every grow is one successful CAS). A node's spare slots are unavailable to the others until
trimmed (SPARE_HOLD_S), and a caller that loses CAS_ATTEMPTS races in a row is throttled
although a slot was free: the ledger errs towards fewer runs, never more. A node that cannot
reach NATS admits on its local limit alone: during an outage of NATS each node may run up to
the whole limit. A killed node's slots stay taken until its heartbeat expires
(``nodes.NODE_TTL_S``), so for that long the cluster runs fewer, never more.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import nats.errors
import nats.js.errors
from nats.js import api
from nats.js.kv import KeyValue

from .. import errors
from ..errors import Throttled
from .link import REQUEST_TIMEOUT_S, ClusterLink

log = logging.getLogger("lambda_scheduler.cluster")

LIMIT_BUCKET = "lambda_limits"
ACCOUNT_KEY = "account"
# Compare-and-set attempts before a contended slot counts as unavailable (a throttle), and the
# most a lost race waits (at random, up to this times the attempts so far) before reading again:
# callers that lost together must not all come back together.
CAS_ATTEMPTS = 50
CAS_BACKOFF_S = 0.001
# Slots a lease grows by at most at once, and how long spare ones are kept after the last
# leave: long enough that a steady stream of calls reuses them, short enough that another node
# waiting for one is not held off for long.
LEASE_BLOCK = 8
SPARE_HOLD_S = 0.05


@dataclass(slots=True)
class _Lease:
    held: int = 0  # slots this node holds in the ledger under the key
    in_use: int = 0  # admitted here and not yet left
    growing: asyncio.Task[int] | None = None  # the one grow in flight; callers share it
    trim: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one write of this node's count at a time


@dataclass(frozen=True, slots=True)
class Ticket:
    """A slot taken in the ledger, to hand back with ``leave``."""

    key: str


class LiveNodes(Protocol):
    def live(self) -> set[str]: ...

    async def alive(self, names: set[str]) -> set[str]: ...


def function_key(name: str) -> str:
    return f"fn.{name}"


class ClusterLimits:
    def __init__(self, link: ClusterLink, nodes: LiveNodes) -> None:
        self.link = link
        self._nodes = nodes  # the nodes with a heartbeat
        self._kv: KeyValue | None = None
        self._leaving: set[asyncio.Task[None]] = set()
        self._leases: dict[str, _Lease] = {}
        self.conflicts = 0  # compare-and-set writes lost to another node (contention)
        self.unreachable = 0  # admissions decided locally because NATS did not answer

    async def start(self) -> None:
        # history 1: the ledger is a set of counters; old revisions have no use.
        self._kv = await self.link.js.create_key_value(api.KeyValueConfig(bucket=LIMIT_BUCKET, history=1))

    async def enter(self, function_name: str, reserved: int | None, unreserved_capacity: int) -> Ticket | None:
        """Take a slot, or raise Throttled with Lambda's reason. None: NATS did not answer,
        and the local admission alone decides."""
        if reserved is not None:
            key, limit, reason = function_key(function_name), reserved, errors.RESERVED_LIMIT
        else:
            key, limit, reason = ACCOUNT_KEY, unreserved_capacity, errors.ACCOUNT_LIMIT
        lease = self._leases.setdefault(key, _Lease())
        while lease.in_use >= lease.held:
            if lease.growing is None:
                lease.growing = asyncio.ensure_future(self._grow(key, lease, limit))
                lease.growing.add_done_callback(lambda _: setattr(lease, "growing", None))
            try:
                granted = await asyncio.shield(lease.growing)
            except (TimeoutError, nats.errors.Error) as exc:
                self.unreachable += 1
                log.warning("cluster limits unreachable (%s): admitting %s on the local limit", exc, function_name)
                return None
            if granted == 0 and lease.in_use >= lease.held:
                raise Throttled(reason)
        lease.in_use += 1
        if lease.trim is not None:
            lease.trim.cancel()
            lease.trim = None
        return Ticket(key)

    def leave(self, ticket: object) -> None:
        if not isinstance(ticket, Ticket):
            return  # admitted without the ledger (NATS did not answer)
        lease = self._leases[ticket.key]
        lease.in_use -= 1
        if lease.held > lease.in_use and lease.trim is None:
            lease.trim = asyncio.get_running_loop().call_later(SPARE_HOLD_S, self._trim_due, ticket.key)

    def _trim_due(self, key: str) -> None:
        self._leases[key].trim = None
        task = asyncio.ensure_future(self._trim(key))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def _grow(self, key: str, lease: _Lease, limit: int) -> int:
        """Ask the ledger for up to LEASE_BLOCK more slots; how many were granted (0: none free)."""
        async with lease.lock:
            wanted = LEASE_BLOCK

            def more(others: int) -> int | None:
                free = limit - others - lease.held
                return lease.held + min(wanted, free) if free > 0 else None

            target = await self._write(key, more)
            if target is None:
                return 0
            granted = target - lease.held
            lease.held = target
            return granted

    async def _trim(self, key: str) -> None:
        """Give spare slots back: the lease shrinks to what is in use."""
        lease = self._leases[key]
        async with lease.lock:
            if lease.held <= lease.in_use:
                return
            # Shrunk here first: a call admitted while the write is in flight must fit the
            # smaller lease (the ledger still counts the larger one: fewer runs, never more).
            lease.held = lease.in_use
            try:
                await self._write(key, lambda _others: lease.in_use)
            except (TimeoutError, nats.errors.Error) as exc:
                # The slots stay counted until this node's heartbeat expires or it writes the key again.
                log.warning("cluster limits: could not give back slots of %s: %s", key, exc)

    async def _write(self, key: str, mine: Callable[[int], int | None]) -> int | None:
        """Set this node's count under ``key`` to ``mine(live total of the other nodes)``, by
        compare-and-set; None when ``mine`` says no slot is free (or the key stays contended)."""
        kv = self._kv
        assert kv is not None
        me = self.link.node
        attempt = 0
        while attempt < CAS_ATTEMPTS:
            attempt += 1
            try:
                entry = await kv.get(key)
                counts = _counts(entry.value)
                revision: int | None = entry.revision
            except nats.js.errors.KeyNotFoundError:
                counts, revision = {}, None
            live = self._nodes.live() | {me}
            strangers = set(counts) - live
            if strangers:
                # A node whose heartbeat this one has not seen yet (it just joined), or one that
                # died: ask the bucket before its count is ignored, never a stale view.
                live |= await self._nodes.alive(strangers)
            counts = {node: n for node, n in counts.items() if node in live and n > 0 and node != me}
            target = mine(sum(counts.values()))
            if target is None:
                return None
            if target:
                counts[me] = target
            value = json.dumps(counts, sort_keys=True).encode()
            try:
                if revision is None:
                    await kv.create(key, value)
                else:
                    await kv.update(key, value, last=revision)
                return target
            except nats.js.errors.KeyWrongLastSequenceError:
                self.conflicts += 1  # another node wrote first: read again
                await asyncio.sleep(random.uniform(0, CAS_BACKOFF_S * attempt))
        log.warning("cluster limits: %s stayed contended for %d attempts", key, CAS_ATTEMPTS)
        return None

    async def stop(self) -> None:
        """Give back every slot held (the in-flight calls are over by now)."""
        for key, lease in self._leases.items():
            if lease.trim is not None:
                lease.trim.cancel()
                lease.trim = None
            if lease.held > lease.in_use:
                self._leaving.add(asyncio.ensure_future(self._trim(key)))
        if self._leaving:
            await asyncio.wait(self._leaving, timeout=REQUEST_TIMEOUT_S)


def _counts(value: bytes | None) -> dict[str, int]:
    if not value:
        return {}
    found = json.loads(value)
    return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}
