"""Benchmark: the CPU whylogs profiling adds to each scored batch, against the CPU of scoring it.

    python -m loadtest.bench_profiling [--batches 1000]

Scores real batches of 1, 8 and 32 stored leads and customers with the served champions (as
``bench_scorer``; run ``leadrisk loadtest run --profile smoke`` once first), then times each
stage of profiling them in CPU seconds (``process_time``, so other load on the machine does not
count): in the serving process, building the batch's :class:`ServedRows` and pickling it onto the
queue; in the profile writer, unpickling it, queueing it and its share of profiling and merging
at the flush. Prints ms per batch and the total as a share of the scoring call's own CPU, then
the fixed cost of one whylogs call, paid once per model and flush interval by each writer.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pandas as pd

from core.kinds import LEAD, RISK
from core.scoring import ScoringModel
from core.settings import Settings, get_settings
from loadtest.bench_scorer import BATCHES, batch_calls, warm_scorer
from monitoring.profiler import ProfileWriter
from monitoring.served_rows import ServedRows
from monitoring.whylogs_compat import why


def _cpu_ms(call: Callable[[], object], repeat: int = 1) -> float:
    started = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - started) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    args = parser.parse_args()
    settings = get_settings()
    scratch = Path(tempfile.mkdtemp(prefix="bench-profiling-"))
    scorer, ids = warm_scorer(settings, scratch)
    score = batch_calls(scorer, ids)
    # profiles go to the scratch folder; flushes are timed here, not left to the writer's thread
    monitoring = settings.monitoring.model_copy(
        update={"flush_interval_s": 3600.0, "profile_store": str(scratch / "profiles")}
    )
    writer_settings = settings.model_copy(update={"monitoring": monitoring})
    print("CPU ms per scored batch: serving process (rows + pickle), writer (unpickle + queue +")
    print("profile at flush), and profiling's share of the scoring call's own CPU")
    print(f"{'model':<6}{'rows':>5}{'serving':>9}{'writer':>8}{'scoring':>9}{'share':>8}")
    interval = settings.monitoring.flush_interval_s
    fixed_ms = {}
    for kind in (LEAD, RISK):
        for n in BATCHES:
            scoring = _cpu_ms(partial(score[kind.key], n), max(10, 200 // n))
            sample = [scorer.online(kind, random.sample(ids[kind.key], n)).frame for _ in range(20)]
            serving, writer, fixed_ms[kind.key] = _profiling_ms(
                kind.key, scorer.models[kind.key].model, sample, args.batches, writer_settings
            )
            print(
                f"{kind.key:<6}{n:>5}{serving:>9.3f}{writer:>8.3f}{scoring:>9.2f}"
                f"{(serving + writer) / scoring:>8.1%}"
            )
    for key, fixed in fixed_ms.items():
        print(
            f"{key}: one whylogs call costs {fixed:.0f} ms whatever its size, paid by each "
            f"writer once per monitoring.flush_interval_s ({interval:.0f} s): "
            f"{fixed / interval / 1000:.4f} cores"
        )


def _profiling_ms(
    name: str, model: ScoringModel, frames: list[pd.DataFrame], batches: int, settings: Settings
) -> tuple[float, float, float]:
    """CPU ms per batch in the serving process and in the writer (beyond the fixed cost of the
    flush's whylogs call), and that fixed cost, for ``batches`` batches cycling over ``frames``."""
    assessed = [model.assess(frame, 3) for frame in frames]
    chosen = [assessed[i % len(assessed)] for i in range(batches)]
    started = time.process_time()
    rows = [ServedRows.of(a.prepared, a.scores, a.bands) for a in chosen]
    blobs = [ForkingPickler.dumps(r) for r in rows]
    serving = time.process_time() - started
    fixed = _cpu_ms(lambda: why.log(pandas=ServedRows.frame(rows[:1]).head(1)).view(), 3)
    writer = ProfileWriter(settings)
    started = time.process_time()
    for blob in blobs:
        writer.submit(name, "bench", ForkingPickler.loads(blob))
    writer.flush()
    writer_s = time.process_time() - started
    writer.close()
    return serving * 1000 / batches, (writer_s * 1000 - fixed) / batches, fixed


if __name__ == "__main__":
    main()
