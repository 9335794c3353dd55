"""Benchmark: what one scoring call costs inside a serving process, without HTTP.

    python -m loadtest.bench_scorer [--calls 100]

Loads the served champions (``leadrisk serve`` / ``leadrisk loadtest`` import them into the data
folder's BentoML store first) and the online store, then times the scorer the service calls:
``score_leads`` and ``score_customers`` for batches of 1, 8 and 32 random stored ids (Feast read,
transform, model, reasons, prediction log with fsync, metrics), and the ``ScoringModel`` stages
of a single row. Prints milliseconds per call.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cloudpickle

from core.kinds import LEAD, RISK, ModelKind
from core.settings import Settings, get_settings
from features import store as feature_store
from features import tables
from monitoring.prediction_log import PredictionLog
from service.packaging import imported_model_file, serving_tags
from service.schemas import LeadRequest
from service.scorer import TOP_REASONS, Scorer, ServedModel

BATCHES = (1, 8, 32)


def served_model(settings: Settings, kind: ModelKind) -> ServedModel:
    """A served champion, loaded from the data folder's BentoML store as the service loads it."""
    tag = serving_tags(settings)[kind.registered_name]
    path = imported_model_file(settings, tag)
    if not path.exists():
        raise SystemExit(f"{path} not found: run `leadrisk loadtest run --profile smoke` once")
    with open(path, "rb") as handle:
        model = cloudpickle.load(handle)
    model.limit_threads(settings.service.model_threads)
    return ServedModel(kind, tag.split(":")[1], model)


def warm_scorer(settings: Settings, log_dir: Path) -> tuple[Scorer, dict[str, list[int]]]:
    """The scorer the service runs (served champions, online store, prediction log in
    ``log_dir``, no profiling), warmed up, and the stored ids of each model's entities."""
    lead, risk = served_model(settings, LEAD), served_model(settings, RISK)
    log = PredictionLog(log_dir)
    features = feature_store.ServingFeatures(feature_store.open_store(settings), [LEAD, RISK])
    scorer = Scorer(features, lead, risk, log, profiles=None)
    scorer.warm_up()
    ids = {
        kind.key: tables.read_table(spec, settings.tables_dir)[spec.key].astype(int).tolist()
        for kind, spec in ((LEAD, tables.LEADS), (RISK, tables.CUSTOMERS))
    }
    return scorer, ids


def batch_calls(scorer: Scorer, ids: dict[str, list[int]]) -> dict[str, Callable[[int], list]]:
    """Per model, a call that scores ``n`` distinct random stored entities by id."""
    return {
        LEAD.key: lambda n: scorer.score_leads(
            [LeadRequest(lead_id=i) for i in random.sample(ids[LEAD.key], n)]
        ),
        RISK.key: lambda n: scorer.score_customers(random.sample(ids[RISK.key], n)),
    }


def _ms_per_call(call: Callable[[], object], calls: int) -> float:
    for _ in range(3):
        call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    settings = get_settings()
    scorer, ids = warm_scorer(settings, Path(tempfile.mkdtemp(prefix="bench-scorer-")))
    lead, risk = scorer.models[LEAD.key], scorer.models[RISK.key]
    print("scorer call (Feast read, model, reasons, prediction log, metrics), ms per call:")
    for name, score in batch_calls(scorer, ids).items():
        row = "  ".join(
            f"{n} rows {_ms_per_call(partial(score, n), max(10, args.calls // n)):7.2f}"
            for n in BATCHES
        )
        print(f"  {name:5s} {row}")
    print("single-row stages, ms:")
    for kind, served in ((LEAD, lead), (RISK, risk)):
        timed = _stage_timings(scorer, kind, served.model, ids[kind.key], args.calls)
        print(f"  {kind.key:5s} " + "  ".join(f"{k} {v:.2f}" for k, v in timed.items()))


def _stage_timings(scorer: Scorer, kind, model, ids: list[int], calls: int) -> dict[str, float]:
    rows = scorer.online(kind, [ids[0]]).columns
    prepared = model._prepared(rows)
    transformed = model._transform(prepared)
    stages = {
        "feast read": lambda: scorer.online(kind, [random.choice(ids)]),
        "prepare": lambda: model._prepared(rows),
        "transform": lambda: model._transform(prepared),
        "model+calibration": lambda: model._calibrated(transformed),
        "reasons": lambda: model._contributions(transformed),
        "assess (all model stages)": lambda: model.assess(rows, TOP_REASONS),
    }
    return {name: _ms_per_call(call, calls) for name, call in stages.items()}


if __name__ == "__main__":
    main()
