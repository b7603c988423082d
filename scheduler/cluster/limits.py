"""Reserved and account concurrency across the cluster: a ledger in a KV bucket, updated with
compare-and-set on the entry's revision, so two nodes can never both take the last slot.

    Scheduler.invoke ─► ClusterLimits.enter(function, reserved)
        read key ─► {node: in-flight} ─► sum over live nodes ≥ limit ─► Throttled (429)
                                      └► write count + 1 "if revision is still r" ─► lost? read again
        ... the invocation runs (local admission still applies) ...
    leave ─► the same compare-and-set with count − 1 (in the background: the caller has its answer)

One key per function with a reserved concurrency (``fn.<name>``) and one for the account's
unreserved pool (``account``). Counts of a node whose heartbeat expired (checked again at
once, never on a stale list) are ignored and removed at the next write, so a killed node's
slots come back within the heartbeat TTL.

Tolerance: while NATS answers, the limit is never exceeded (each slot is one successful CAS).
Under heavy contention on one key (tens of admissions at once across the nodes) a caller can
lose CAS_ATTEMPTS races in a row and is throttled although a slot was free: the ledger errs
towards fewer runs, never more (tests/test_cluster.py measures both and prints them). A
node that cannot reach NATS admits on its local limit alone: during an outage of NATS each
node may run up to the whole limit. A killed node's slots stay taken until its heartbeat
expires (``nodes.NODE_TTL_S``), so for that long the cluster runs fewer, never more.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
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
        try:
            if await self._change(key, +1, limit):
                return Ticket(key)
        except (TimeoutError, nats.errors.Error) as exc:
            self.unreachable += 1
            log.warning("cluster limits unreachable (%s): admitting %s on the local limit", exc, function_name)
            return None
        raise Throttled(reason)

    def leave(self, ticket: object) -> None:
        if not isinstance(ticket, Ticket):
            return  # admitted without the ledger (NATS did not answer)
        task = asyncio.ensure_future(self._give_back(ticket))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def _give_back(self, ticket: Ticket) -> None:
        try:
            await self._change(ticket.key, -1, None)
        except (TimeoutError, nats.errors.Error) as exc:
            # The slot stays counted until this node's heartbeat expires or it writes the key again.
            log.warning("cluster limits: could not give back a slot of %s: %s", ticket.key, exc)

    async def _change(self, key: str, step: int, limit: int | None) -> bool:
        """Add ``step`` to this node's count under ``key``, if the live total stays within
        ``limit``; False when it would not (or the key stays contended)."""
        kv = self._kv
        assert kv is not None
        me = self.link.node
        attempt = 0
        # Taking a slot gives up after CAS_ATTEMPTS (a throttle); giving one back never does,
        # or the slot would stay counted for as long as this node lives.
        while step < 0 or attempt < CAS_ATTEMPTS:
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
            counts = {node: n for node, n in counts.items() if node in live and n > 0}
            if limit is not None and step > 0 and sum(counts.values()) + step > limit:
                return False
            mine = max(0, counts.get(me, 0) + step)
            if mine:
                counts[me] = mine
            else:
                counts.pop(me, None)
            value = json.dumps(counts, sort_keys=True).encode()
            try:
                if revision is None:
                    await kv.create(key, value)
                else:
                    await kv.update(key, value, last=revision)
                return True
            except nats.js.errors.KeyWrongLastSequenceError:
                self.conflicts += 1  # another node wrote first: read again
                await asyncio.sleep(random.uniform(0, CAS_BACKOFF_S * min(attempt, CAS_ATTEMPTS)))
        log.warning("cluster limits: %s stayed contended for %d attempts", key, CAS_ATTEMPTS)
        return False

    async def stop(self) -> None:
        if self._leaving:
            await asyncio.wait(self._leaving, timeout=REQUEST_TIMEOUT_S)


def _counts(value: bytes | None) -> dict[str, int]:
    if not value:
        return {}
    found = json.loads(value)
    return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}
