"""Adaptive batching inside the serving process: concurrent requests share one scoring call.

Requests that arrive while a batch is being scored queue up and form the next batch (up to
``max_batch_size``), so the batch size follows the load: one row at a time when traffic is light
(no added latency), large batches under pressure (one Feast lookup and one model call for many
requests). ``max_wait_ms`` optionally holds a lone request a little to let a batch grow. A request
still queued after ``max_latency_ms`` is shed: it gets :class:`Overloaded` (HTTP 503) instead of
an answer that would arrive too late anyway.

Two lanes: single requests (``submit``) go first; the ids of a bulk call (``submit_bulk``, e.g.
``/batch_score``) fill what room is left, at most ``bulk_rows_per_batch`` per batch. A bulk call
is then scored over a few batches, and a single request arriving behind it waits for one small
batch, not for the whole call (docs/decisions/0007-batcher-lanes-for-bulk-calls.md).

Why not BentoML's own dispatcher: it lives in a second process behind an HTTP hop, and its cork
estimates the wait to add from the waits it observed, which feeds on itself and held requests
even on an idle worker (docs/decisions/0001-in-process-batcher.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, NamedTuple, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Overloaded(RuntimeError):
    """The request waited longer than the latency budget before a batch could take it."""


class _Pending(NamedTuple):
    item: object
    future: asyncio.Future
    enqueued: float


class Batcher(Generic[Item, Result]):
    """Feeds ``score`` (a blocking function of a list of items) with batches of queued items.

    One batch runs at a time, in a dedicated thread, so the event loop keeps accepting requests.
    Create it inside the serving process; ``close`` stops the thread.
    """

    def __init__(
        self,
        name: str,
        score: Callable[[list[Item]], Sequence[Result]],
        max_batch_size: int,
        max_latency_ms: float,
        max_wait_ms: float = 0.0,
        bulk_rows_per_batch: int | None = None,
    ) -> None:
        self.name = name
        self._score = score
        self._max_batch_size = max_batch_size
        self._max_latency = max_latency_ms / 1000
        self._max_wait = max_wait_ms / 1000
        self._late = f"{name}: waited over {max_latency_ms:.0f} ms"
        self._bulk_rows = min(bulk_rows_per_batch or max_batch_size, max_batch_size)
        self._queue: deque[_Pending] = deque()
        self._bulk: deque[_Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{name}")

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result; raises Overloaded when shed."""
        return await self._enqueue(self._queue, [item])[0]

    async def submit_bulk(self, items: Sequence[Item]) -> list[Result]:
        """Queue the items of one bulk call behind the single requests and wait for all of them;
        their results in order, or the first error (e.g. Overloaded) once every item is done."""
        results = await asyncio.gather(*self._enqueue(self._bulk, items), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    def _enqueue(self, lane: deque[_Pending], items: Sequence[Item]) -> list[asyncio.Future]:
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"batcher-{self.name}")
        now = time.monotonic()
        futures = [loop.create_future() for _ in items]
        for item, future in zip(items, futures, strict=True):
            lane.append(_Pending(item, future, now))
        self._wake.set()
        return futures

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not (self._queue or self._bulk):
                continue
            await self._linger()
            batch = self._take()
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(
                    self._executor, self._score, [p.item for p in batch]
                )
            except Exception as err:  # every request of the batch gets the error
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(err)
            else:
                for pending, result in zip(batch, results, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(result)
            if self._queue or self._bulk:
                self._wake.set()

    async def _linger(self) -> None:
        """With ``max_wait_ms``, give a small batch until its oldest request is that old."""
        if self._max_wait <= 0 or not self._queue or len(self._queue) >= self._max_batch_size:
            return
        remaining = self._queue[0].enqueued + self._max_wait - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    def _take(self) -> list[_Pending]:
        """The next batch: single requests first, then up to ``bulk_rows_per_batch`` bulk rows,
        after shedding requests that are already past the latency budget."""
        deadline = time.monotonic() - self._max_latency
        _shed(self._queue, deadline, self._late)
        _shed(self._bulk, deadline, self._late)
        batch = _pop_live(self._queue, self._max_batch_size)
        room = min(self._max_batch_size - len(batch), self._bulk_rows)
        return batch + _pop_live(self._bulk, room)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for pending in (*self._queue, *self._bulk):
            if not pending.future.done():
                pending.future.cancel()
        self._executor.shutdown(wait=True)


def _shed(lane: deque[_Pending], deadline: float, late: str) -> None:
    """Fail the requests at the front of ``lane`` that were queued before ``deadline``."""
    while lane and lane[0].enqueued < deadline:
        pending = lane.popleft()
        if not pending.future.done():
            pending.future.set_exception(Overloaded(late))


def _pop_live(lane: deque[_Pending], limit: int) -> list[_Pending]:
    """Up to ``limit`` pending requests from the front of ``lane``, skipping abandoned ones."""
    taken = []
    while lane and len(taken) < limit:
        pending = lane.popleft()
        if not pending.future.done():  # the client may have gone away
            taken.append(pending)
    return taken
