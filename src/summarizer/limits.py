"""One shared limit on model traffic: requests in flight, and optionally requests and tokens per minute.

A backend that talks to a network holds one `Limiter` and enters it around every HTTP attempt
(retries included), so a batch of many articles, each with parallel chunks, never has more than
`concurrency` requests open at once. Rates are paced, not bursty: starts are spaced evenly from
the first request on, and idle time is not banked as credit for a later burst.

With `queue_deadline` set, the limit on requests in flight also adapts to the server. A local
server with one slot answers one request at a time and queues the rest: eight requests sent at
once would wait up to eight answers long and time out. The limiter measures how fast answers come
back (Little's law: what may be in flight = throughput x the time a request may take) and keeps no
more in flight than the server can answer within half the deadline, starting from two. Slow answers
alone do not shrink it: only answers slower than the fastest one (they waited in a queue) do. An
unqueued answer that took L seconds opens the window at once to deadline / 2 / L: even a server that
answers one request at a time gets through that many within half the deadline.

Waiting requests queue first come, first served, and a freed slot wakes exactly one of them (a batch
at `-j 128` has a thousand chunks waiting; waking them all on every answer cost more CPU than the
requests themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol


class LimitSettings(Protocol):
    """The three settings a Limiter reads (Settings has them; anything with these attributes will do)."""

    @property
    def concurrency(self) -> int: ...
    @property
    def rpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...


class Permit:
    """A granted request slot. Call `settle(actual_tokens)` once the reply's usage is known."""

    def __init__(self, limiter: Limiter, tokens: int) -> None:
        self._limiter = limiter
        self.tokens = tokens
        self._settled = False
        self.started_at = limiter._clock()
        self.timed_out = False
        self.answered = False

    def timeout(self) -> None:
        """The request ran out of time: the server is slower than the window assumed."""
        self.timed_out = True

    def answer(self) -> None:
        """The server answered (any HTTP status): the request's time says how busy the server is."""
        self.answered = True

    def settle(self, actual_tokens: int) -> None:
        """Correct the token pacing with the tokens the request really used (only the first call counts)."""
        if not self._settled:
            self._settled = True
            self._limiter._adjust_tokens(actual_tokens - self.tokens)


class Limiter:
    """Bounds concurrent requests and paces their starts.

    Usage, around each single HTTP attempt:

        limiter = Limiter(concurrency=8, rpm=500, tpm=200_000)
        async with limiter.request(tokens=estimated_prompt_plus_max_output) as permit:
            reply = await client.post(...)
            permit.settle(reply.usage.total_tokens)

    `rpm`: at most one start every 60/rpm seconds. `tpm`: after a start that reserves T tokens, the
    next start waits T*60/tpm seconds (the reservation is corrected by `settle`). A single request
    larger than the per-minute budget still runs (alone), rather than waiting forever.

    Safe to create outside any event loop (a backend's constructor is the right place) and to use
    from successive `asyncio.run` calls: the slot semaphore is rebuilt for each new running loop,
    while the pacing (plain clock arithmetic) carries over. Not for use from several threads.
    `clock` and `sleep` are the time it paces by (a test passes a virtual clock and its sleep).
    """

    def __init__(
        self,
        concurrency: int,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        queue_deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if queue_deadline is not None and queue_deadline <= 0:
            raise ValueError("queue_deadline must be positive")
        if rpm is not None and rpm < 1:
            raise ValueError("rpm must be at least 1")
        if tpm is not None and tpm < 1:
            raise ValueError("tpm must be at least 1")
        self.concurrency = concurrency
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._sleep = sleep
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held = 0  # slots taken, paced starts included
        self._next_request = 0.0  # earliest start allowed by rpm
        self._next_tokens = 0.0  # earliest start allowed by tpm
        self.in_flight = 0
        self.peak_in_flight = 0
        self.started = 0
        self.queue_deadline = queue_deadline
        # The adaptive window: how many may be in flight now (never above `concurrency`).
        self.window = concurrency if queue_deadline is None else min(concurrency, 2)
        self._done: deque[float] = deque(maxlen=32)  # when recent answers came back
        self._fastest = math.inf  # the quickest answer so far: what an unqueued request takes
        self._first_start: float | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()  # requests waiting for a slot, oldest first

    @classmethod
    def from_settings(cls, settings: LimitSettings, *, queue_deadline: float | None = None) -> Limiter:
        return cls(max(1, settings.concurrency), settings.rpm, settings.tpm, queue_deadline=queue_deadline)

    def _finished(self, permit: Permit) -> None:
        """Re-size the window from how fast the server has been answering."""
        if self.queue_deadline is None:
            return
        now = self._clock()
        if permit.timed_out:
            self.window = max(1, self.window // 2)
            return
        if not permit.answered:
            return  # cancelled or never reached the server: says nothing about it
        latency = now - permit.started_at
        self._fastest = min(self._fastest, latency)
        self._done.append(now)
        if latency <= 1.5 * self._fastest:
            # Answers come as fast as ever: nothing queues, however slow the model is. Even a server
            # answering one at a time gets through deadline / 2 / fastest within half the deadline.
            serial = math.floor(self.queue_deadline / 2 / self._fastest) if self._fastest > 0 else self.concurrency
            self.window = min(self.concurrency, max(self.window + 1, serial))
            return
        # Answers take longer than the fastest did: they wait in the server's queue. Keep no more in
        # flight than it answers within half the deadline (Little's law).
        since = self._done[0] if len(self._done) > 1 else (self._first_start or permit.started_at)
        answers = len(self._done) - 1 if len(self._done) > 1 else 1
        throughput = answers / max(now - since, 1e-9)
        allowed = math.floor(throughput * self.queue_deadline / 2)
        self.window = max(1, min(self.concurrency, self.window, allowed))

    def _reserve(self, tokens: int) -> float:
        """Claim the next start time; runs without awaiting, so claims are made one at a time."""
        now = self._clock()
        start = max(now, self._next_request, self._next_tokens)
        if self.rpm:
            self._next_request = start + 60.0 / self.rpm
        if self.tpm:
            self._next_tokens = start + max(0, tokens) * 60.0 / self.tpm
        return start - now

    def _adjust_tokens(self, delta: int) -> None:
        if not self.tpm or not delta:
            return
        moved = self._next_tokens + delta * 60.0 / self.tpm
        # A refund may pull the next start back, but never before now: no banked burst.
        self._next_tokens = max(self._clock(), moved) if delta < 0 else moved

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The running loop; a new one (a later `asyncio.run`) starts with no slots held."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._held, self._waiters = loop, 0, deque()
        return loop

    def _wake(self) -> None:
        """Hand free slots to the oldest waiting requests, one slot each."""
        while self._waiters and self._held < self.window:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._held += 1
                waiter.set_result(None)

    async def _acquire(self) -> None:
        loop = self._bind()
        if self._held < self.window and not self._waiters:
            self._held += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # granted just as it was cancelled: pass the slot on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        self._held -= 1
        self._wake()

    @asynccontextmanager
    async def request(self, tokens: int = 0) -> AsyncIterator[Permit]:
        """Wait for a free slot and the next paced start, then hold the slot until the block exits.

        Args:
            tokens: what the request may use (prompt + max output), reserved for tpm pacing.
        """
        await self._acquire()
        permit: Permit | None = None
        try:
            delay = self._reserve(tokens)
            if delay > 0:
                await self._sleep(delay)
            self.in_flight += 1
            self.started += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            if self._first_start is None:
                self._first_start = self._clock()
            permit = Permit(self, tokens)
            try:
                yield permit
            finally:
                self.in_flight -= 1
        finally:
            if permit is not None:
                self._finished(permit)
            self._release()
