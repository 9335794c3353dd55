"""Adaptive batching inside the serving process: concurrent requests share one scoring call.

Requests that arrive while a batch is being scored queue up and form the next batch (up to
``max_batch_size``), so the batch size follows the load: one row at a time when traffic is light
(no added latency), large batches under pressure (one Feast lookup and one model call for many
requests). ``max_wait_ms`` optionally holds a lone request a little to let a batch grow. A request
still queued after ``max_latency_ms`` is shed: it gets :class:`Overloaded` (HTTP 503) instead of
an answer that would arrive too late anyway.

Why not BentoML's own dispatcher: it lives in a second process behind an HTTP hop, and its cork
estimates the wait to add from the waits it observed, which feeds on itself; measured at 50 req/s
with the worker 31% busy, it held requests for 140 ms at the median (docs/benchmarks.md).
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
    ) -> None:
        self.name = name
        self._score = score
        self._max_batch_size = max_batch_size
        self._max_latency = max_latency_ms / 1000
        self._max_wait = max_wait_ms / 1000
        self._queue: deque[_Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{name}")

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result; raises Overloaded when shed."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"batcher-{self.name}")
        future = loop.create_future()
        self._queue.append(_Pending(item, future, time.monotonic()))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
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
            if self._queue:
                self._wake.set()

    async def _linger(self) -> None:
        """With ``max_wait_ms``, give a small batch until its oldest request is that old."""
        if self._max_wait <= 0 or len(self._queue) >= self._max_batch_size:
            return
        remaining = self._queue[0].enqueued + self._max_wait - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    def _take(self) -> list[_Pending]:
        """The next batch, after shedding requests that are already past the latency budget."""
        deadline = time.monotonic() - self._max_latency
        while self._queue and self._queue[0].enqueued < deadline:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(
                    Overloaded(f"{self.name}: waited over {self._max_latency * 1000:.0f} ms")
                )
        batch = []
        while self._queue and len(batch) < self._max_batch_size:
            pending = self._queue.popleft()
            if not pending.future.done():  # the client may have gone away
                batch.append(pending)
        return batch

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for pending in self._queue:
            if not pending.future.done():
                pending.future.cancel()
        self._executor.shutdown(wait=True)
