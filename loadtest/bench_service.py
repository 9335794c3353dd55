"""Benchmark: single-entity scoring throughput and latency, adaptive batching on vs off, and
whylogs profiling on vs off.

    python -m loadtest.bench_service [--seconds 20] [--concurrency 32] [--repeat 3]

Same worker count both ways; a closed loop of ``concurrency`` clients each sends one request
after another. Prints req/s, p50/p95/p99 and the mean batch size the worker saw. Runs with and
without profiling alternate ``repeat`` times (a fresh server each, measured once all its
processes are idle, in ABBA order), and the profiling cost is taken from the medians: single runs
on a shared 2-core machine move by 10-20%.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import time
import urllib.request

import aiohttp
import numpy as np

from core.settings import get_settings
from features import tables
from service import server

# (label, adaptive batching, whylogs profiling): the cost of profiling every request at the same
# load (PROFILED against NOT_PROFILED), and batching on/off at the same worker count.
PROFILED = ("batching+profiling", True, True)
NOT_PROFILED = ("batching, no profiling", True, False)
UNBATCHED = ("unbatched+profiling", False, True)


async def _client(session, url, ids, deadline, latencies, errors) -> None:
    while time.monotonic() < deadline:
        body = {"customer_id": random.choice(ids)}
        started = time.perf_counter()
        async with session.post(f"{url}/score_customer", json=body) as response:
            await response.read()
            if response.status != 200:
                errors.append(response.status)
        latencies.append(time.perf_counter() - started)


async def _load(url: str, ids: list[int], seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        warmup = time.monotonic() + 3
        await asyncio.gather(*(_client(session, url, ids, warmup, [], []) for _ in range(4)))
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(_client(session, url, ids, deadline, latencies, errors) for _ in range(concurrency))
        )
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": len(errors),
    }


def mean_batch_size(url: str) -> float:
    """Mean of the worker's batch-size histogram, from /metrics."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    total = sum(float(v) for v in re.findall(r"leadrisk_batch_size_sum\{[^}]*\} ([0-9.e+]+)", text))
    count = sum(
        float(v) for v in re.findall(r"leadrisk_batch_size_count\{[^}]*\} ([0-9.e+]+)", text)
    )
    return total / count if count else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = get_settings()
    ids = tables.read_table(tables.CUSTOMERS, settings.tables_dir)["customer_id"].tolist()
    print(
        f"{'mode':<24}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'batch':>7}"
    )
    rps: dict[str, list[float]] = {PROFILED[0]: [], NOT_PROFILED[0]: []}
    # ABBA order: whatever the previous run leaves behind weighs on both modes alike
    pairs = [(PROFILED, NOT_PROFILED)[:: 1 if r % 2 == 0 else -1] for r in range(args.repeat)]
    for mode, batching, profiling in [*(m for pair in pairs for m in pair), UNBATCHED]:
        env = {
            "LEADRISK_SERVICE__BATCHING": str(batching).lower(),
            "LEADRISK_MONITORING__PROFILING": str(profiling).lower(),
        }
        with server.running(settings, env, settle=True) as service:
            result = asyncio.run(_load(service.url, ids, args.seconds, args.concurrency))
            batch = mean_batch_size(service.url)
        rps.setdefault(mode, []).append(result["rps"])
        print(
            f"{mode:<24}{result['rps']:>8.1f}{result['p50_ms']:>9.1f}{result['p95_ms']:>9.1f}"
            f"{result['p99_ms']:>9.1f}{result['errors']:>8}{batch:>7.1f}",
            flush=True,
        )
    on, off = statistics.median(rps[PROFILED[0]]), statistics.median(rps[NOT_PROFILED[0]])
    print(
        f"median req/s over {args.repeat} runs: profiling on {on:.1f}, off {off:.1f}; "
        f"profiling costs {(1 - on / off) * 100:.1f}% of throughput"
    )
    print(
        f"({args.concurrency} concurrent clients, {args.seconds:.0f}s each, "
        f"{settings.service.workers} scoring worker(s))"
    )


if __name__ == "__main__":
    main()
