"""The durable event store: SQLite (the standard library's sqlite3) in WAL mode, in the data dir.

    event loop                          writer thread (owns the connection)
    add / save / list ─► ops queue ─► take every op queued ─► BEGIN; op; op; …; COMMIT
         await future ◄──── call_soon_threadsafe(resolve all) ◄──┘

Group commit: one transaction, and one fsync, for everything that was queued while the
previous transaction committed, so accepting stays fast under load while every 202 still
follows its own commit (``synchronous=FULL``: a commit survives a crash of the machine, not
only of the process). Finished events stay in the table for listing for a day.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .model import Event, EventState

log = logging.getLogger("lambda_scheduler.events")

FINISHED_KEPT_S = 86_400.0
_UNFINISHED = (EventState.PENDING.value, EventState.RUNNING.value, EventState.RETRYING.value)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    request_id  TEXT PRIMARY KEY,
    function    TEXT NOT NULL,
    qualifier   TEXT,
    payload     BLOB NOT NULL,
    received_at REAL NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    throttles   INTEGER NOT NULL DEFAULT 0,
    due         REAL NOT NULL,
    response    BLOB,
    error_type  TEXT,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_state ON events (state, received_at);
"""

_Op = Callable[[sqlite3.Connection], Any]


def _row(event: Event) -> tuple[Any, ...]:
    return (
        event.request_id,
        event.function_name,
        event.qualifier,
        event.payload,
        event.received_at,
        event.state.value,
        event.attempts,
        event.throttles,
        event.due,
        event.response,
        event.error_type,
        time.time(),
    )


def _event(row: tuple[Any, ...]) -> Event:
    rid, function, qualifier, payload, received_at, state, attempts, throttles, due, response, error_type = row
    return Event(
        rid, function, qualifier, bytes(payload), received_at, attempts, throttles, due, EventState(state),
        None if response is None else bytes(response), error_type,
    )  # fmt: skip


_COLUMNS = "request_id, function, qualifier, payload, received_at, state, attempts, throttles, due, response, error_type"
_UPSERT = f"INSERT OR REPLACE INTO events ({_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class SqliteEventStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._ops: queue.SimpleQueue[tuple[_Op, asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0  # transactions, for the benchmark: events per commit = writes / commits

    # --- the writer thread ----------------------------------------------------------------

    def _submit(self, op: _Op) -> asyncio.Future[Any]:
        if self._loop is None or self._thread is None:
            raise RuntimeError("the event store is not open")
        future = self._loop.create_future()
        self._ops.put((op, future))
        return future

    def _run(self, ready: threading.Event, failure: list[Exception]) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:  # reported to open(), on the loop
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            while True:
                first = self._ops.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while True:
                    try:
                        item = self._ops.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._commit(db, batch)
                if stop:
                    return
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, batch: list[tuple[_Op, asyncio.Future[Any]]]) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for op, future in batch:
                try:
                    results.append((future, op(db), None))
                except sqlite3.Error as exc:
                    results.append((future, None, exc))
            db.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            log.error("event store: a transaction of %d writes failed: %s", len(batch), exc)
            if db.in_transaction:
                db.execute("ROLLBACK")
            results = [(future, None, exc) for _, future in batch]
        assert self._loop is not None
        self._loop.call_soon_threadsafe(_resolve, results)

    # --- the store ------------------------------------------------------------------------

    async def open(self) -> list[Event]:
        self._loop = asyncio.get_running_loop()
        ready, failure = threading.Event(), list[Exception]()
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="event-store", daemon=True)
        self._thread.start()
        await asyncio.to_thread(ready.wait)
        if failure:
            self._thread = None
            raise failure[0]
        return await self._submit(_recover)  # type: ignore[no-any-return]

    async def add(self, event: Event) -> None:
        await self._submit(_upsert(_row(event)))

    async def save(self, event: Event) -> None:
        # The row is taken now: the event may change again before the thread writes it.
        await self._submit(_upsert(_row(event)))

    async def list(self, state: EventState | None = None, limit: int = 1000) -> list[Event]:
        def query(db: sqlite3.Connection) -> list[Event]:
            if state is None:
                rows = db.execute(f"SELECT {_COLUMNS} FROM events ORDER BY received_at DESC LIMIT ?", (limit,))
            else:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE state = ? ORDER BY received_at DESC LIMIT ?",
                    (state.value, limit),
                )
            return [_event(row) for row in rows]

        return await self._submit(query)  # type: ignore[no-any-return]

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._ops.put(None)
        await asyncio.to_thread(thread.join)


def _upsert(row: tuple[Any, ...]) -> _Op:
    def op(db: sqlite3.Connection) -> None:
        db.execute(_UPSERT, row)

    return op


def _recover(db: sqlite3.Connection) -> list[Event]:
    """Unfinished events, oldest first; finished ones older than a day are deleted."""
    db.execute("DELETE FROM events WHERE state NOT IN (?, ?, ?) AND updated_at < ?", (*_UNFINISHED, time.time() - FINISHED_KEPT_S))
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM events WHERE state IN (?, ?, ?) ORDER BY received_at", _UNFINISHED
    ).fetchall()
    return [_event(row) for row in rows]


def _resolve(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():
            continue  # its caller gave up waiting (cancelled); the write happened anyway
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
