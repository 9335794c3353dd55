"""Benchmark: materialization rows/s and get_online_features latency, SQLite vs Redis.

    python -m loadtest.bench_features [--customers 100000] [--reads 200]

Generates synthetic customers into a temporary data folder, applies the repository to the
embedded profile (SQLite online store) and to the production profile (Redis online store,
PostgreSQL registry), materializes both, then times online reads of ``customer_risk_v1`` for
batches of 1, 10 and 100 entities.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from core.settings import Settings
from features import store as feature_store
from features import tables
from features.definitions import CUSTOMER_RISK_SERVICE
from features.prepare import prepare

BATCHES = (1, 10, 100)


def _settings(data_dir: Path, customers: int, profile: str, project: str) -> Settings:
    settings = Settings(data_dir=data_dir, profile=profile)
    settings.synthetic.customers = customers
    settings.synthetic.leads = 1_000
    settings.synthetic.transactions_per_customer = 20
    settings.feature_store.project = project
    return settings


def _materialize(settings: Settings) -> tuple[int, float]:
    feature_store.apply(settings)
    summaries = feature_store.materialize(settings, progress=lambda _: None)
    entities = sum(s.entities for s in summaries)
    return entities, sum(s.seconds for s in summaries)


def _online_latency(settings: Settings, ids: np.ndarray, reads: int) -> dict[int, tuple]:
    reader = feature_store.OnlineReader(feature_store.open_store(settings), CUSTOMER_RISK_SERVICE)
    rng = np.random.default_rng(0)
    results = {}
    for batch in BATCHES:
        rows = [[{"customer_id": int(i)} for i in rng.choice(ids, batch)] for _ in range(reads)]
        reader.read(rows[0])  # warm caches
        timings = []
        for entity_rows in rows:
            started = time.perf_counter()
            reader.read(entity_rows)
            timings.append((time.perf_counter() - started) * 1000)
        results[batch] = (np.percentile(timings, 50), np.percentile(timings, 99))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    project = f"bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="leadrisk-bench-") as tmp:
        embedded = _settings(Path(tmp), args.customers, "embedded", project)
        started = time.perf_counter()
        prepare("synthetic", embedded, progress=lambda _: None)
        seconds = time.perf_counter() - started
        print(f"prepared {args.customers:,} synthetic customers in {seconds:.1f}s", flush=True)
        ids = tables.read_table(tables.CUSTOMERS, embedded.tables_dir)["customer_id"].to_numpy()
        production = _settings(Path(tmp), args.customers, "production", project)
        print(
            f"{'store':<8}{'entities':>10}{'seconds':>9}{'rows/s':>10}   "
            + "   ".join(f"batch {b}: p50/p99 ms" for b in BATCHES)
        )
        for name, settings in (("sqlite", embedded), ("redis", production)):
            entities, seconds = _materialize(settings)
            latency = _online_latency(settings, ids, args.reads)
            cells = "   ".join(f"{p50:8.2f} / {p99:6.2f}    " for p50, p99 in latency.values())
            print(f"{name:<8}{entities:>10,}{seconds:>9.1f}{entities / seconds:>10,.0f}   {cells}")
        print("rows = entity rows written to the online store, summed over the customer views")


if __name__ == "__main__":
    main()
