"""One run of the harness: dispatch requests by the arrival model, record, drain, assess.

    open loop:   dispatcher ── due time reached ──► task: wait for a connection ─► invoke ─► record
                 (never waits for answers, only for the clock and the --max-in-flight cap)
    closed loop: N callers ── each: invoke ─► record ─► next
    ticker:      every interval ─► CPU sample, progress callback
    probe:       10 ms sleeps ─► how late the loop wakes (selfcheck.py)

Dispatching stops at the request count or the deadline; requests still in flight then get
the drain timeout to answer, and are counted as errors if they do not.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp

from .arrivals import OpenLoop
from .client import Invoker, Outcome, Sign
from .config import LoadConfig
from .recorder import Interval, Recorder
from .selfcheck import LoopProbe, Usage, Verdict, assess
from .workload import Mix

UNFINISHED = "client unfinished at the end of the run"


@dataclass
class LoadResult:
    config: LoadConfig
    recorder: Recorder
    verdict: Verdict
    dispatch_window_s: float  # from time zero to when the schedule (or the closed loop) ended
    wall_s: float  # from time zero to the end of the drain

    @property
    def elapsed_s(self) -> float:
        """From time zero to the last answer."""
        r = self.recorder
        return 0.0 if r.last_done is None else r.last_done - r.started

    @property
    def sent_per_s(self) -> float:
        return self.recorder.sent / self.dispatch_window_s if self.dispatch_window_s > 0 else 0.0

    @property
    def throughput_per_s(self) -> float:
        """Answered requests per second, from time zero to the last answer."""
        return self.recorder.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0


Progress = Callable[[Recorder, Interval], None]
# Called with each answer: (function, outcome, intended, sent, done), perf_counter seconds —
# for scripts that need more than the histograms (e.g. each reply against its own deadline).
AnswerHook = Callable[[str, Outcome, float, float, float], None]


class Runner:
    def __init__(
        self, config: LoadConfig, progress: Progress | None = None, on_answer: AnswerHook | None = None
    ) -> None:
        self.config = config
        self._on_answer = on_answer
        self.mix = Mix(config.targets, seed=config.seed, verify_field=config.verify_field)
        self._progress = progress
        self._tasks: set[asyncio.Task[None]] = set()
        self._issued = 0
        self._limit = config.requests if config.requests is not None else math.inf
        self._cap = asyncio.Semaphore(config.max_in_flight)
        self._cap_hits = 0
        self._connections = asyncio.Semaphore(config.connection_limit)
        self._started = 0.0
        self.recorder = Recorder(0.0, config.interval_s)

    async def run(self) -> LoadResult:
        connector = aiohttp.TCPConnector(limit=self.config.connection_limit, limit_per_host=0, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
        probe = LoopProbe()
        # No Accept-Encoding, as boto3: a server that would gzip large replies (serverless-offline's
        # hapi does past 1 KB) sends them plain; one that compresses anyway is still decoded.
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, skip_auto_headers=("Accept-Encoding",)
        ) as session:
            invoker = Invoker(
                session,
                self.config.endpoint,
                tail=self.config.tail,
                verify_field=self.config.verify_field,
                sign=self._signer(),
            )
            begin = Usage()
            self._started = begin.wall
            self.recorder = Recorder(self._started, self.config.interval_s)
            probe.start()
            ticker = asyncio.ensure_future(self._tick(begin))
            try:
                window = await self._dispatch(invoker)
                await self._drain()
            finally:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
                await probe.stop()
            end = Usage()
        cpu, machine = end.since(begin)
        verdict = assess(
            open_loop=self.config.open_loop,
            cpu=cpu,
            machine=machine,
            dispatch_lag=self.recorder.dispatch_lag,
            loop_lag=probe.lag,
            connection_wait=self.recorder.connection_wait,
            in_flight_cap_hits=self._cap_hits,
        )
        return LoadResult(self.config, self.recorder, verdict, window, end.wall - self._started)

    def _signer(self) -> Sign | None:
        credential = self.config.credentials
        if credential is None:
            return None
        from ..sigv4 import Signer  # botocore: only when signing

        return Signer(credential.access_key, credential.secret_key, self.config.region).sign

    # --- dispatching ------------------------------------------------------------------------

    async def _dispatch(self, invoker: Invoker) -> float:
        arrivals = self.config.arrivals
        if isinstance(arrivals, OpenLoop):
            return await self._open(invoker, arrivals)
        callers = {asyncio.ensure_future(self._caller(invoker)) for _ in range(arrivals.concurrency)}
        self._tasks |= callers
        left = self._started + self.config.deadline_s - time.perf_counter()
        await asyncio.wait(callers, timeout=None if math.isinf(left) else max(0.0, left))
        return time.perf_counter() - self._started

    async def _open(self, invoker: Invoker, arrivals: OpenLoop) -> float:
        """Dispatch each request at its due time; returns the length of the schedule covered."""
        deadline = self.config.deadline_s
        times: Iterator[float] = arrivals.times(self.config.seed)
        for offset in times:
            if offset >= deadline:
                return deadline
            if self._issued >= self._limit:
                return offset  # the next request would have been due here
            intended = self._started + offset
            # Timers may fire a fraction of a millisecond early: never send before the due time.
            while (delay := intended - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            if self._cap.locked():
                self._cap_hits += 1
            await self._cap.acquire()
            self._launch(invoker, intended)
        return min(deadline, arrivals.duration_s)

    def _launch(self, invoker: Invoker, intended: float) -> None:
        self._issued += 1
        dispatched = time.perf_counter()
        self.recorder.on_sent(intended, dispatched)
        task = asyncio.ensure_future(self._request(invoker, intended, dispatched))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._cap.release()

    async def _request(self, invoker: Invoker, intended: float, dispatched: float) -> None:
        function, payload, token = self.mix.pick()
        sent = dispatched
        try:
            async with self._connections:
                sent = time.perf_counter()
                outcome = await invoker.invoke(function, payload, token)
        except asyncio.CancelledError:
            self.recorder.on_done(
                function, Outcome(0, error=UNFINISHED), intended, dispatched, sent, time.perf_counter()
            )
            raise
        done = time.perf_counter()
        self.recorder.on_done(function, outcome, intended, dispatched, sent, done)
        if self._on_answer is not None:
            self._on_answer(function, outcome, intended, sent, done)

    async def _caller(self, invoker: Invoker) -> None:
        stop_at = self._started + self.config.deadline_s
        while self._issued < self._limit:
            # A closed-loop caller has no schedule: it intends to send the moment it is free.
            intended = time.perf_counter()
            if intended >= stop_at:
                return
            self._issued += 1
            self.recorder.on_sent(intended, intended)
            await self._request(invoker, intended, intended)

    # --- the end ----------------------------------------------------------------------------

    async def _drain(self) -> None:
        running = {task for task in self._tasks if not task.done()}
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=self.config.drain_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _tick(self, begin: Usage) -> None:
        previous = begin
        for index in itertools.count():
            await asyncio.sleep(max(0.0, self._started + (index + 1) * self.config.interval_s - time.perf_counter()))
            now = Usage()
            cpu, _ = now.since(previous)
            previous = now
            slot = self.recorder.interval(self._started + (index + 0.5) * self.config.interval_s)
            slot.in_flight = self.recorder.in_flight
            slot.cpu_percent = cpu * 100
            if self._progress is not None:
                self._progress(self.recorder, slot)


async def run_load(
    config: LoadConfig, progress: Progress | None = None, on_answer: AnswerHook | None = None
) -> LoadResult:
    """Run the harness once with ``config``; ``progress`` is called once per interval,
    ``on_answer`` once per answered request."""
    return await Runner(config, progress, on_answer).run()
