"""The in-process batcher: concurrent requests share a call, the batch size follows the load,
late requests are shed, and a failing batch fails only its own requests."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.batching import Batcher, Overloaded


class Recorder:
    """A blocking 'model' that records the batches it was given and takes ``seconds`` each."""

    def __init__(self, seconds: float = 0.0, fail_on: int | None = None) -> None:
        self.seconds = seconds
        self.fail_on = fail_on
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        return [item * 10 for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


async def scoring_started(model: Recorder, batches: int = 1) -> None:
    """Wait until the model has been handed ``batches`` batches (not a fixed sleep: a busy
    machine may start the scoring thread late)."""
    while len(model.batches) < batches:
        await asyncio.sleep(0.001)


def test_a_lone_request_is_scored_at_once_and_alone():
    model = Recorder()
    batcher = Batcher("t", model, max_batch_size=8, max_latency_ms=1000)

    async def scenario():
        started = time.perf_counter()
        result = await batcher.submit(4)
        return result, time.perf_counter() - started

    result, elapsed = run(scenario())
    batcher.close()
    assert result == 40 and model.batches == [[4]]
    assert elapsed < 0.1
    assert model.threads and all(name.startswith("batch-t") for name in model.threads)


def test_requests_arriving_during_a_batch_form_the_next_one():
    model = Recorder(seconds=0.05)
    batcher = Batcher("t", model, max_batch_size=4, max_latency_ms=5000)

    async def scenario():
        first = asyncio.create_task(batcher.submit(0))
        await scoring_started(model)  # the first batch ([0]) is running
        rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 10)]
        return await asyncio.gather(first, *rest)

    results = run(scenario())
    batcher.close()
    assert results == [i * 10 for i in range(10)]  # every caller gets its own answer
    assert model.batches[0] == [0]
    assert [len(b) for b in model.batches[1:]] == [4, 4, 1]  # capped at max_batch_size
    assert sorted(i for b in model.batches for i in b) == list(range(10))


def test_max_wait_lets_a_batch_grow():
    model = Recorder()
    batcher = Batcher("t", model, max_batch_size=8, max_latency_ms=5000, max_wait_ms=300)

    async def scenario():
        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(batcher.submit(i)))
            await asyncio.sleep(0.005)
        return await asyncio.gather(*tasks)

    assert run(scenario()) == [0, 10, 20]
    batcher.close()
    assert model.batches == [[0, 1, 2]]


def test_requests_queued_past_the_latency_budget_are_shed():
    model = Recorder(seconds=0.2)
    batcher = Batcher("t", model, max_batch_size=1, max_latency_ms=50)

    async def scenario():
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    first, *late = run(scenario())
    batcher.close()
    assert first == 0
    assert all(isinstance(result, Overloaded) for result in late)
    assert model.batches == [[0]]


def test_a_failing_batch_fails_its_requests_and_the_next_batch_still_runs():
    model = Recorder(seconds=0.02, fail_on=1)
    batcher = Batcher("t", model, max_batch_size=2, max_latency_ms=5000)

    async def scenario():
        first = asyncio.create_task(batcher.submit(0))
        await scoring_started(model)
        failing = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0.005)
        after = asyncio.create_task(batcher.submit(3))
        return await asyncio.gather(first, *failing, after, return_exceptions=True)

    ok, bad_1, bad_2, later = run(scenario())
    batcher.close()
    assert ok == 0 and later == 30
    for result in (bad_1, bad_2):
        assert isinstance(result, ValueError)
    with pytest.raises(ValueError, match="cannot score 1"):
        raise bad_1


def test_single_requests_go_ahead_of_a_bulk_call_which_is_scored_in_small_batches():
    model = Recorder(seconds=0.02)
    batcher = Batcher("t", model, max_batch_size=8, max_latency_ms=5000, bulk_rows_per_batch=3)

    async def scenario():
        first = asyncio.create_task(batcher.submit(0))
        await scoring_started(model)  # [0] is running
        bulk = asyncio.create_task(batcher.submit_bulk(list(range(100, 107))))
        await asyncio.sleep(0)
        single = asyncio.create_task(batcher.submit(1))  # arrives after the bulk call
        return await asyncio.gather(first, bulk, single)

    first, bulk, single = run(scenario())
    batcher.close()
    assert (first, single) == (0, 10)
    assert bulk == [i * 10 for i in range(100, 107)]  # every item answered, in order
    assert model.batches == [[0], [1, 100, 101, 102], [103, 104, 105], [106]]


def test_a_bulk_call_fails_with_its_first_error_once_all_its_items_are_done():
    model = Recorder(fail_on=102)
    batcher = Batcher("t", model, max_batch_size=8, max_latency_ms=5000, bulk_rows_per_batch=2)

    async def scenario():
        return await batcher.submit_bulk([100, 101, 102, 103, 104])

    with pytest.raises(ValueError, match="cannot score 102"):
        run(scenario())
    batcher.close()
    assert model.batches == [[100, 101], [102, 103], [104]]  # the batch after it still ran
