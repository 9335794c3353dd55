"""Baseline for the load tests: the design most teams start from.

A Flask app under gunicorn; each request does its own Feast ``get_online_features`` call (same
FeatureServices as leadrisk) and its own model call on the same champion ScoringModel, and answers
with the same fields. Feedback goes to the same SQLite feedback store. No batching across
requests, no prediction log, no profiling.

    gunicorn 'loadtest.baseline_flask:create_app()' --worker-class gthread --preload ...

(``loadtest.targets.start_baseline`` builds that command.)
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from typing import Any

import numpy as np
from feast import FeatureStore
from flask import Flask, Response, jsonify, request

from core import risk_rules
from core.kinds import LEAD, MODEL_KINDS, RISK, ModelKind
from core.scoring import ScoringModel
from core.settings import Settings, get_settings
from features import store as feature_store
from monitoring.feedback import ConflictError, Feedback, FeedbackStore
from service.packaging import MODEL_FILE, serving_tags, use_bentoml_home

TOP_REASONS = 3


class Champion:
    """One served model with the reader of its FeatureService."""

    def __init__(self, kind: ModelKind, model: ScoringModel, version: str, store: FeatureStore):
        self.kind = kind
        self.model = model
        self.version = version
        self.reader = feature_store.OnlineReader(store, kind.feature_service)


def load_champion(settings: Settings, kind: ModelKind, store: FeatureStore) -> Champion:
    """The champion imported into the BentoML store, the very bytes leadrisk serves."""
    use_bentoml_home(settings)
    import bentoml
    import cloudpickle

    tag = serving_tags(settings)[kind.registered_name]
    bento_model = bentoml.models.get(tag)
    with open(bento_model.path_of(MODEL_FILE), "rb") as handle:
        model = cloudpickle.load(handle)
    return Champion(kind, model, bento_model.info.labels["mlflow_version"], store)


def score(champion: Champion, ids: list[int]) -> list[dict[str, Any]]:
    """One Feast call and one model call for ``ids``; unknown ids come back as errors."""
    key = champion.kind.entity_key
    online = champion.reader.read([{key: i} for i in ids])
    found = online.frame[online.found].reset_index(drop=True)
    rows: list[dict[str, Any]] = [{"error": f"unknown {key} {i}", "field": key} for i in ids]
    if found.empty:
        return rows
    assessed = champion.model.assess(found, TOP_REASONS)
    cuts = champion.model.metadata.get("pattern_cuts", {})
    patterns = risk_rules.matched_patterns(found, cuts)
    high = champion.model.bands[-1].min_score
    for row, position in enumerate(np.flatnonzero(online.found)):
        body: dict[str, Any] = {
            key: ids[position],
            "reasons": [_reason(r) for r in assessed.reasons[row]],
            "model": champion.kind.registered_name,
            "model_version": champion.version,
            "imputed_features": assessed.imputed[row],
        }
        probability, band = float(assessed.scores[row]), assessed.bands[row]
        kind = champion.kind
        body.update({kind.score_field: probability, kind.category_field: band})
        if kind.has_patterns:
            rule = risk_rules.offboarding_rule(band, patterns[row], high)
            body.update(offboard=rule is not None, offboard_rule=rule)
        rows[position] = body
    return rows


def _reason(reason) -> dict[str, Any]:
    value = reason.value
    if isinstance(value, float) and np.isnan(value):
        value = None
    return {
        "feature": reason.feature,
        "value": value,
        "contribution": reason.contribution,
        "text": reason.text,
    }


def _error(status: int, message: str, field: str | None) -> tuple[Response, int]:
    return jsonify({"error": message, "field": field}), status


def _entity_id(body: Any, key: str) -> int | None:
    value = body.get(key) if isinstance(body, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def create_app(settings: Settings | None = None) -> Flask:
    """The Flask app; models load here (once, before gunicorn forks with ``--preload``).

    The online store is first read inside the worker (by a request), so no SQLite connection is
    shared across the fork. The loaded heap is frozen before the fork, as leadrisk freezes its
    own after warm-up: full garbage collections then skip it instead of pausing a worker for
    hundreds of milliseconds (docs/decisions/0002-freeze-startup-heap.md).
    """
    settings = settings or get_settings()
    store = feature_store.open_store(settings)
    champions = {key: load_champion(settings, kind, store) for key, kind in MODEL_KINDS.items()}
    feedback_store = FeedbackStore(settings.feedback_db)
    app = Flask("leadrisk_baseline")

    def score_one(champion: Champion):
        key = champion.kind.entity_key
        entity_id = _entity_id(request.get_json(silent=True), key)
        if entity_id is None:
            return _error(422, f"{key} must be a non-negative integer", key)
        (row,) = score(champion, [entity_id])
        if "error" in row:
            return _error(404, row["error"], row["field"])
        return jsonify(row)

    @app.post("/score_lead")
    def score_lead():
        return score_one(champions[LEAD.key])

    @app.post("/score_customer")
    def score_customer():
        return score_one(champions[RISK.key])

    @app.post("/batch_score")
    def batch_score():
        body = request.get_json(silent=True) or {}
        champion = champions.get(body.get("model"))
        ids = body.get("ids")
        if champion is None:
            return _error(422, "model must be 'lead' or 'risk'", "model")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            return _error(422, "ids must be a non-empty list of integers", "ids")
        rows = score(champion, ids)
        failed = sum("error" in row for row in rows)
        return jsonify(
            {
                "model": champion.kind.registered_name,
                "scored": len(rows) - failed,
                "failed": failed,
                "rows": rows,
            }
        )

    @app.post("/feedback")
    def feedback():
        body = request.get_json(silent=True) or {}
        champion = champions.get(body.get("model"))
        entity_id = _entity_id(body, "entity_id")
        feedback_id, label = body.get("feedback_id"), body.get("label")
        if champion is None:
            return _error(422, "model must be 'lead' or 'risk'", "model")
        if entity_id is None:
            return _error(422, "entity_id must be a non-negative integer", "entity_id")
        if not isinstance(feedback_id, str) or not feedback_id:
            return _error(422, "feedback_id must be a non-empty string", "feedback_id")
        if label not in (0, 1):
            return _error(422, "label must be 0 or 1", "label")
        (row,) = score(champion, [entity_id])
        if "error" in row:
            return _error(404, row["error"], "entity_id")
        probability = row.get("probability", row.get("p_suspended"))
        band = row.get("band", row.get("segment"))
        try:
            status = feedback_store.record(
                Feedback(
                    feedback_id=feedback_id,
                    model=champion.kind.registered_name,
                    entity_id=entity_id,
                    label=label,
                    rating=None,
                    score=probability,
                    band=band,
                    model_version=champion.version,
                    at=datetime.now(UTC),
                )
            )
        except ConflictError as err:
            return _error(409, str(err), "feedback_id")
        return jsonify(
            {
                "feedback_id": feedback_id,
                "status": status,
                "score": probability,
                "band": band,
                "model_version": champion.version,
            }
        )

    @app.get("/readyz")
    def readyz():
        champions[RISK.key].reader.read([{"customer_id": 0}])
        return jsonify({"ready": True})

    gc.collect()
    gc.freeze()
    return app
