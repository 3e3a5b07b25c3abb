"""Per-endpoint limits: concurrent calls, and calls in any one-second window, shared by every call
and retry of the process and, on a shared database, by every replica of the bot.

Why not aiolimiter (a leaky bucket), which this module used before: a bucket that starts empty
lets its whole capacity through at once and keeps draining at the rate, so the busiest second
saw 2x the quota (bench/sweep.py, Q = 400/s: 799 calls in one second). The API's flow control
counts calls per account in a second, so the guarantee needed is "at most Q in any window",
which is a sliding log of send times, hand-written here (about 50 lines).

The service counts calls as they arrive, and a call takes longer to arrive on a new connection
than on a pooled one (measured on loopback: 45-60 ms vs 1-10 ms; 330 ms for a cold process's
first burst), enough to put a burst sent at the start of one second into the next. So a call
counts in the log from the moment it is let through until its answer is back, and then for a
window: it arrived somewhere in between, so no window at the server holds more than the cap. The
price is one API latency per window of throughput (about 5% at 50 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot import metrics

log = logging.getLogger(__name__)


def window_of(calls_per_second: float) -> tuple[int, float]:
    """(calls, seconds): the most calls any window of that many seconds may hold, for a quota.

    A window holds a whole number of calls, so Q = 7.5 allows 7 per second; a quota under one
    call per second becomes one call per 1/Q seconds (still at most Q in any one second).
    """
    if calls_per_second >= 1:
        return math.floor(calls_per_second), 1.0
    return 1, 1.0 / calls_per_second


class SlidingWindow:
    """At most `cap` calls in any `window` seconds; waiters are served first come, first served.

    A call counts from `acquire()` until `release()` (pending: it may arrive at any moment), then
    until one window after its release.

    The cap can change while callers wait: lowered (a replica joined), raised (one left), or
    fenced to zero until a moment (`valid_until`) when this replica's share is no longer known
    to be its own. A window's count is bounded by the largest cap in force during it.
    """

    def __init__(
        self,
        cap: int,
        window: float,
        *,
        valid_until: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self._cap = cap
        self._valid_until = valid_until
        self._clock = clock
        self._sent: deque[float] = deque()  # release times, in order
        self._pending = 0
        self._turn = asyncio.Lock()  # FIFO: the head waiter owns the next free slot
        self._changed = asyncio.Event()

    @property
    def cap(self) -> int:
        return self._cap if self._valid_until is None or self._clock() < self._valid_until else 0

    def set_cap(self, cap: int, valid_until: float | None = None) -> None:
        self._cap = cap
        self._valid_until = valid_until
        self._changed.set()

    def release(self) -> None:
        """The call's answer (or failure) is back: it has arrived, if it ever will."""
        self._pending -= 1
        self._sent.append(self._clock())
        self._changed.set()

    def lower(self, cap: int) -> None:
        """Lower the cap now, keeping the fence: nothing is known yet to extend it."""
        self._cap = min(self._cap, cap)

    async def acquire(self) -> None:
        async with self._turn:
            while True:
                now = self._clock()
                cutoff = now - self.window
                while self._sent and self._sent[0] <= cutoff:
                    self._sent.popleft()
                cap = self.cap
                excess = self._pending + len(self._sent) - cap  # >= 0: must wait
                if excess < 0:
                    self._pending += 1
                    return
                self._changed.clear()
                # Wait for the call that must leave the window, or for a release or a new cap.
                timeout = None
                if cap > 0 and excess < len(self._sent):
                    timeout = max(0.0, self._sent[excess] + self.window - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)


@dataclass(frozen=True)
class LimiterStats:
    """What the endpoint limiter has seen; for tests and diagnostics."""

    max_concurrency: int
    max_calls_per_second: float
    in_flight: int
    peak_in_flight: int
    started: int
    cap: int  # calls this replica may send in one window now (its share of the quota)


class QuotaBoard(Protocol):
    """Where replicas agree on their shares of the account's quota (bot.store.quota on a database)."""

    async def heartbeat(
        self, replica_id: str, quota: int, *, lease: float, window: float, lower: Callable[[int], None]
    ) -> int:
        """Renew this replica's lease; returns the cap it may use now. `lower` is called, before
        anything is written, when the cap must go down."""
        ...

    async def leave(self, replica_id: str, *, lease: float, window: float) -> None:
        """Give the share back once the calls already sent have left the window."""
        ...


class EndpointLimiter:
    """Caps concurrent calls (a semaphore) and calls in any window (a `SlidingWindow`).

    Alone, the window's cap is the whole quota. With a `QuotaBoard`, `start()` begins a heartbeat
    and the cap is this replica's share, which starts at zero and follows the board.
    """

    def __init__(
        self,
        max_concurrency: int,
        max_calls_per_second: float,
        *,
        board: QuotaBoard | None = None,
        replica_id: str = "",
        lease: float = 10.0,
        heartbeat_every: float | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.max_calls_per_second = max_calls_per_second
        self.quota, window = window_of(max_calls_per_second)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._window = SlidingWindow(0 if board is not None else self.quota, window)
        self._board = board
        self.replica_id = replica_id
        self.lease = lease
        self.heartbeat_every = heartbeat_every or lease / 20
        self._beat: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._peak = 0
        self._started = 0

    @property
    def cap(self) -> int:
        return self._window.cap

    async def __aenter__(self) -> EndpointLimiter:
        # The concurrency slot first: the window counts a call from the moment it may leave.
        # Taken the other way round, calls let through in one second could wait for a slot and
        # then leave together in the next, beyond the quota.
        waiting = time.perf_counter()
        await self._semaphore.acquire()
        try:
            await self._window.acquire()
        except BaseException:
            self._semaphore.release()
            raise
        metrics.LIMITER_WAIT.observe(time.perf_counter() - waiting)
        self._in_flight += 1
        self._started += 1
        self._peak = max(self._peak, self._in_flight)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._in_flight -= 1
        self._window.release()
        self._semaphore.release()

    def stats(self) -> LimiterStats:
        return LimiterStats(
            self.max_concurrency,
            self.max_calls_per_second,
            self._in_flight,
            self._peak,
            self._started,
            self.cap,
        )

    # ----------------------------------------------------------------- sharing

    async def start(self) -> None:
        """Take this replica's share (one heartbeat) and keep renewing it; no-op when alone."""
        if self._board is None or self._beat is not None:
            return
        await self._heartbeat()
        self._beat = asyncio.create_task(self._beat_forever(), name=f"quota-heartbeat-{self.replica_id}")

    async def stop_heartbeat(self) -> None:
        """Stop renewing without giving the share back (what a killed replica does; for tests)."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None

    async def aclose(self) -> None:
        """Stop sending and give the share back to the other replicas."""
        had_share = self._beat is not None
        await self.stop_heartbeat()
        if self._board is None or not had_share:
            return
        self._window.set_cap(0)
        try:
            await self._board.leave(self.replica_id, lease=self.lease, window=self._window.window)
        except Exception as e:  # the lease runs out by itself
            log.warning("quota share not given back replica=%s error=%s", self.replica_id, type(e).__name__)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_every)
            try:
                await self._heartbeat()
            except Exception as e:  # a DB hiccup: the fence stops our calls before the lease ends
                log.warning("quota heartbeat failed replica=%s error=%s", self.replica_id, type(e).__name__)

    async def _heartbeat(self) -> None:
        assert self._board is not None
        # Taken before the heartbeat is sent, so it is no later than the time the board records:
        # the others take our share at recorded time + lease, and by then every call we sent has
        # left the window.
        begun = time.monotonic()
        window = self._window.window
        cap = await self._board.heartbeat(
            self.replica_id,
            self.quota,
            lease=self.lease,
            window=window,
            lower=self._window.lower,
        )
        self._window.set_cap(cap, self._fence(begun))

    def _fence(self, begun: float) -> float:
        # One window for the calls sent last to leave it, one more for their answers to come back
        # (a call still out then may arrive late; rare, and the API answers Throttling at worst).
        return begun + self.lease - 2 * self._window.window
