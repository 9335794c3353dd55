"""Scoring without a server: one Feast lookup and one model call for a whole batch of requests.

The BentoML service only routes requests here; everything that decides a score is in this module
so it can be tested without HTTP.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from core import risk_rules
from core.columns import Columns
from core.kinds import LEAD, RISK, ModelKind
from core.scoring import Assessment, Reason, ScoringModel
from features.store import OnlineRows
from monitoring.prediction_log import PredictionEntry, PredictionLog, feature_hashes
from monitoring.served_rows import ServedRows
from service import metrics
from service.schemas import (
    CustomerOutcome,
    CustomerScore,
    LeadOutcome,
    LeadRequest,
    LeadScore,
    ReasonOut,
    ScoringError,
)

TOP_REASONS = 3


class FeatureStoreUnavailable(RuntimeError):
    """The online store could not be read; the request may be retried once it is back."""


class OnlineFeatures(Protocol):
    """The online features of each model kind (``features.store.ServingFeatures`` reads Feast)."""

    def columns(self, kind: ModelKind) -> list[str]: ...

    def read(self, kind: ModelKind, ids: Sequence[int]) -> OnlineRows: ...

    def from_payloads(self, kind: ModelKind, payloads: list[dict[str, Any]]) -> Columns: ...


class ProfileSink(Protocol):
    def submit(self, model: str, version: str, rows: ServedRows) -> bool: ...


@dataclass(frozen=True)
class ServedModel:
    kind: ModelKind
    version: str
    model: ScoringModel


def _reasons(reasons: list[Reason]) -> list[ReasonOut]:
    return [
        ReasonOut(
            feature=r.feature,
            value=_json_value(r.value),
            contribution=r.contribution,
            grouped_with=list(r.grouped_with),
            text=r.text,
        )
        for r in reasons
    ]


def _unavailable(err: FeatureStoreUnavailable) -> ScoringError:
    return ScoringError(status=503, error=f"{err}; retry shortly")


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


class Scorer:
    """Scores batches of lead and customer requests against the online feature store."""

    def __init__(
        self,
        features: OnlineFeatures,
        lead: ServedModel,
        risk: ServedModel,
        log: PredictionLog,
        profiles: ProfileSink | None = None,
    ) -> None:
        self.features = features
        self.models = {LEAD.key: lead, RISK.key: risk}
        self.log = log
        self.profiles = profiles
        self._batch_scorers: dict[str, Callable[[list], list]] = {
            LEAD.key: self.score_leads,
            RISK.key: self.score_customers,
        }
        self._requests: dict[str, Callable[[list[int]], list]] = {
            LEAD.key: lambda ids: [LeadRequest(lead_id=i) for i in ids],
            RISK.key: list,
        }

    def online(self, kind: ModelKind, ids: Sequence[int]) -> OnlineRows:
        """Online features of ``ids`` (one Feast call); raises FeatureStoreUnavailable."""
        started = time.perf_counter()
        try:
            rows = self.features.read(kind, ids)
        except Exception as err:  # any backend error (sqlite, redis, network) means unavailable
            metrics.FEATURE_STORE_ERRORS.labels(feature_service=kind.feature_service).inc()
            raise FeatureStoreUnavailable(f"online feature store unreachable: {err}") from err
        metrics.FEATURE_STORE_LATENCY.labels(feature_service=kind.feature_service).observe(
            time.perf_counter() - started
        )
        return rows

    def warm_up(self) -> None:
        """Run each model's whole path once (store read, transform, explanation) unrecorded, so
        the first real requests do not pay for lazy imports and caches."""
        for kind in (LEAD, RISK):
            self.models[kind.key].model.assess(self.online(kind, [0]).columns, TOP_REASONS)

    def ping(self) -> None:
        """Cheap read used by readiness checks; raises FeatureStoreUnavailable."""
        self.online(RISK, [0])

    def lead_rows_from_payloads(self, payloads: list[dict[str, Any]]) -> Columns:
        """Feature rows for leads not yet in the store, derived by the registered on-demand view."""
        return self.features.from_payloads(LEAD, payloads)

    def batch_scorer(self, model: str) -> Callable[[list], list]:
        """The batch scoring function of ``model`` ("lead" or "risk"): ``score_leads`` takes
        LeadRequests, ``score_customers`` customer ids (``requests_for``)."""
        return self._batch_scorers[model]

    def requests_for(self, model: str, ids: list[int]) -> list:
        """What ``batch_scorer(model)`` (or its batcher) takes for stored entities ``ids``."""
        return self._requests[model](ids)

    def score_leads(self, requests: list[LeadRequest]) -> list[LeadOutcome]:
        """Score a batch of lead requests; a store outage answers every request with a 503."""
        try:
            return self._score_leads(requests)
        except FeatureStoreUnavailable as err:
            return [LeadOutcome(error=_unavailable(err)) for _ in requests]

    def score_customers(self, customer_ids: list[int]) -> list[CustomerOutcome]:
        """Score a batch of customers; a store outage answers every request with a 503."""
        try:
            return self._score_customers(customer_ids)
        except FeatureStoreUnavailable as err:
            return [CustomerOutcome(error=_unavailable(err)) for _ in customer_ids]

    def _score_leads(self, requests: list[LeadRequest]) -> list[LeadOutcome]:
        by_id = [i for i, r in enumerate(requests) if r.lead_id is not None]
        by_payload = [i for i, r in enumerate(requests) if r.lead is not None]
        parts: list[Columns] = []
        positions, errors = [], {}
        if by_id:
            stored = self.online(LEAD, [requests[i].lead_id for i in by_id])
            known = stored.found
            for i, ok in zip(by_id, known, strict=True):
                if not ok:
                    lead_id = requests[i].lead_id
                    errors[i] = ScoringError(
                        status=404, error=f"unknown lead_id {lead_id}", field="lead_id"
                    )
            parts.append(stored.columns.select(self.features.columns(LEAD)).take(known))
            positions += [i for i, ok in zip(by_id, known, strict=True) if ok]
        if by_payload:
            parts.append(
                self.lead_rows_from_payloads([requests[i].lead.model_dump() for i in by_payload])
            )
            positions += by_payload
        rows = Columns.concat(parts) if parts else Columns({})
        entity_ids = [requests[i].lead_id for i in positions]
        scored = self._score(LEAD, rows, positions, entity_ids)
        outcomes = []
        for position in range(len(requests)):
            if position in errors:
                outcomes.append(LeadOutcome(error=errors[position]))
                continue
            result = scored[position]
            outcomes.append(
                LeadOutcome(
                    score=LeadScore(
                        lead_id=requests[position].lead_id,
                        probability=result.score,
                        band=result.band,
                        **result.common(),
                    )
                )
            )
        return outcomes

    def _score_customers(self, customer_ids: list[int]) -> list[CustomerOutcome]:
        if not customer_ids:
            return []
        stored = self.online(RISK, customer_ids)
        known, rows = stored.found, stored.columns.take(stored.found)
        positions = np.flatnonzero(known).tolist()
        scored = self._score(RISK, rows, positions, [customer_ids[i] for i in positions])
        model = self.models[RISK.key].model
        patterns = risk_rules.matched_patterns(rows, model.metadata.get("pattern_cuts", {}))
        high = model.bands[-1].min_score
        outcomes = []
        for position, customer_id in enumerate(customer_ids):
            if not known[position]:
                error = ScoringError(
                    status=404, error=f"unknown customer_id {customer_id}", field="customer_id"
                )
                outcomes.append(CustomerOutcome(error=error))
                continue
            result = scored[position]
            rule = risk_rules.offboarding_rule(result.band, patterns[result.row], high)
            outcomes.append(
                CustomerOutcome(
                    score=CustomerScore(
                        customer_id=customer_id,
                        p_suspended=result.score,
                        segment=result.band,
                        offboard=rule is not None,
                        offboard_rule=rule,
                        **result.common(),
                    )
                )
            )
        return outcomes

    def _score(
        self, kind: ModelKind, rows: Columns, positions: list[int], entity_ids: list
    ) -> dict[int, Scored]:
        """Score all rows in one model call; log and profile them; returns position -> result."""
        if len(rows) == 0:
            return {}
        served = self.models[kind.key]
        assessed = served.model.assess(rows, TOP_REASONS)
        scores, bands, reasons, imputed = (
            assessed.scores,
            assessed.bands,
            assessed.reasons,
            assessed.imputed,
        )
        request_ids = [uuid.uuid4().hex for _ in positions]
        self._record(served, assessed, request_ids, entity_ids)
        return {
            position: Scored(
                row=i,
                score=float(scores[i]),
                band=bands[i],
                reasons=reasons[i],
                imputed=imputed[i],
                request_id=request_ids[i],
                served=served,
            )
            for i, position in enumerate(positions)
        }

    def _record(
        self, served: ServedModel, assessed: Assessment, request_ids: list[str], entity_ids: list
    ) -> None:
        """Durable prediction log (before answering), metrics, and the monitoring profile."""
        name = served.kind.registered_name
        prepared, scores, bands, imputed = (
            assessed.prepared,
            assessed.scores,
            assessed.bands,
            assessed.imputed,
        )
        hashes = feature_hashes(prepared)
        now = datetime.now(UTC).isoformat()
        self.log.append(
            [
                PredictionEntry(
                    request_id=request_ids[i],
                    model=name,
                    model_version=served.version,
                    entity_id=entity_ids[i],
                    features_hash=hashes[i],
                    imputed_features=imputed[i],
                    score=float(scores[i]),
                    band=bands[i],
                    scored_at=now,
                )
                for i in range(len(request_ids))
            ]
        )
        metrics.BATCH_SIZE.labels(model=name).observe(len(request_ids))
        histogram = metrics.SCORE.labels(model=name, version=served.version)
        for score in scores:
            histogram.observe(float(score))
        for feature, count in Counter(f for row in imputed for f in row).items():
            metrics.IMPUTED.labels(model=name, feature=feature).inc(count)
        if self.profiles is not None:
            self.profiles.submit(name, served.version, ServedRows.of(prepared, scores, bands))


@dataclass(frozen=True)
class Scored:
    row: int
    score: float
    band: str
    reasons: list[Reason]
    imputed: list[str]
    request_id: str
    served: ServedModel

    def common(self) -> dict[str, Any]:
        """Fields every score response shares."""
        return {
            "request_id": self.request_id,
            "reasons": _reasons(self.reasons),
            "model": self.served.kind.registered_name,
            "model_version": self.served.version,
            "imputed_features": self.imputed,
        }
