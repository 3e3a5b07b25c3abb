"""Group commit of a sweep's check records."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from bot.watch.model import CheckRecord, WatchRepo

log = logging.getLogger("flinkdiag.watch")


class GroupRecorder:
    """Group commit for one sweep: the records of many checks go to the store in one transaction.

    A transaction per check cost 1.2-1.8 ms of CPU (SQLite and PostgreSQL, bench/sweep.py), more
    than the check's API calls, so a sweep of thousands of targets was bound by its own writes.
    A record waits at most `linger` seconds for others to join it, and not at all once every
    check still running is waiting to record (nothing more would join) or the batch is full. A
    check still returns only after its own record is stored; while one batch is written the next
    one gathers.
    """

    def __init__(self, repo: WatchRepo, *, linger: float, max_batch: int) -> None:
        self._repo = repo
        self._linger = linger
        self._max_batch = max_batch
        self._running = 0
        self._pending: list[tuple[CheckRecord, asyncio.Future[bool]]] = []
        self._ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Wrap each check: the recorder knows how many more records may still come."""
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._nudge()

    async def record(self, record: CheckRecord) -> bool:
        """Store `record` with the next batch; False when the lease was lost (see record_checks)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((record, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        self._nudge()
        return await done

    async def aclose(self) -> None:
        """Wait for the writes in progress (a cancelled sweep's records are still stored)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    def _full(self) -> bool:
        return len(self._pending) >= min(self._max_batch, self._running)

    def _nudge(self) -> None:
        if self._pending and self._full():
            self._ready.set()

    async def _write_all(self) -> None:
        batch: list[tuple[CheckRecord, asyncio.Future[bool]]] = []
        try:
            while self._pending:
                if not self._full():
                    self._ready.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._ready.wait(), self._linger)
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write(batch)
                batch = []
        except BaseException:
            # Cancelled (the loop is closing): no check may wait for a write that will not come.
            for _, done in batch + self._pending:
                done.cancel()
            self._pending.clear()
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[CheckRecord, asyncio.Future[bool]]]) -> None:
        try:
            landed = await self._repo.record_checks([r for r, _ in batch])
        except Exception as e:
            if len(batch) > 1:
                # One record the store refuses must not fail the others: write them one by one.
                for item in batch:
                    await self._write([item])
                return
            if not batch[0][1].done():
                batch[0][1].set_exception(e)
            return
        for record, done in batch:
            if not done.done():  # its check may have been cancelled; the record is stored anyway
                done.set_result(record.target_id in landed)
