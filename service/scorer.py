"""Scoring without a server: one Feast lookup and one model call for a whole batch of requests.

The BentoML service only routes requests here; everything that decides a score is in this module
so it can be tested without HTTP.
"""

from __future__ import annotations

import logging
import queue
import threading
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
from monitoring.releases import CHALLENGER, CHAMPION, SHADOW, Release
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
log = logging.getLogger("leadrisk.scorer")


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


@dataclass(frozen=True)
class Serving:
    """What answers one model's requests: its release and the loaded versions. A batch takes the
    current one when it starts and finishes on it, whatever a reload swaps in meanwhile."""

    release: Release
    champion: ServedModel
    challenger: ServedModel | None = None

    def answering(self, entity_ids: Sequence[int | None]) -> list[tuple[str, ServedModel]]:
        """The variant and model that answers each entity."""
        if self.challenger is None or self.release.mode != "ab":
            return [(CHAMPION, self.champion)] * len(entity_ids)
        return [
            (CHALLENGER, self.challenger)
            if self.release.variant(e) == CHALLENGER
            else (CHAMPION, self.champion)
            for e in entity_ids
        ]


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
        lead: ServedModel | Serving,
        risk: ServedModel | Serving,
        log: PredictionLog,
        profiles: ProfileSink | None = None,
        shadow_queue_rows: int = 10_000,
    ) -> None:
        self.features = features
        self.serving = {LEAD.key: _serving(lead), RISK.key: _serving(risk)}
        self.log = log
        self.profiles = profiles
        self.shadow = ShadowScorer(log, shadow_queue_rows)
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
            self.serving[kind.key].champion.model.assess(
                self.online(kind, [0]).columns, TOP_REASONS
            )

    def ping(self) -> None:
        """Cheap read used by readiness checks; raises FeatureStoreUnavailable."""
        self.online(RISK, [0])

    @property
    def models(self) -> dict[str, ServedModel]:
        """Each model's champion."""
        return {key: serving.champion for key, serving in self.serving.items()}

    def serve(self, model: str, serving: Serving) -> None:
        """Answer ``model``'s next batches with ``serving`` (one assignment: atomic)."""
        self.serving[model] = serving

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
        scored = self._score(self.serving[LEAD.key], rows, positions, entity_ids)
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
        serving = self.serving[RISK.key]
        scored = self._score(serving, rows, positions, [customer_ids[i] for i in positions])
        patterns = {}  # per answering model: its own pattern cuts and High band
        for result in scored.values():
            model = result.served.model
            if id(model) not in patterns:
                cuts = model.metadata.get("pattern_cuts", {})
                patterns[id(model)] = (
                    risk_rules.matched_patterns(rows, cuts),
                    model.bands[-1].min_score,
                )
        outcomes = []
        for position, customer_id in enumerate(customer_ids):
            if not known[position]:
                error = ScoringError(
                    status=404, error=f"unknown customer_id {customer_id}", field="customer_id"
                )
                outcomes.append(CustomerOutcome(error=error))
                continue
            result = scored[position]
            matched, high = patterns[id(result.served.model)]
            rule = risk_rules.offboarding_rule(result.band, matched[result.row], high)
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
        self, serving: Serving, rows: Columns, positions: list[int], entity_ids: list
    ) -> dict[int, Scored]:
        """Score the rows, each with the variant that answers its entity (one model call per
        variant); log and profile them; hand them to the shadow when one runs. Returns
        position -> result, whose ``row`` indexes ``rows``."""
        if len(rows) == 0:
            return {}
        answering = serving.answering(entity_ids)
        results: dict[int, Scored] = {}
        for variant in (CHAMPION, CHALLENGER):
            chosen = [i for i, (v, _) in enumerate(answering) if v == variant]
            if not chosen:
                continue
            served = answering[chosen[0]][1]
            part = rows if len(chosen) == len(rows) else rows.take(chosen)
            served, variant, assessed = self._assess(serving, served, variant, part)
            request_ids = [uuid.uuid4().hex for _ in chosen]
            self._record(served, variant, assessed, request_ids, [entity_ids[i] for i in chosen])
            for j, i in enumerate(chosen):
                results[positions[i]] = Scored(
                    row=i,
                    score=float(assessed.scores[j]),
                    band=assessed.bands[j],
                    reasons=assessed.reasons[j],
                    imputed=assessed.imputed[j],
                    request_id=request_ids[j],
                    served=served,
                    variant=variant,
                )
        if serving.release.shadowing and serving.challenger is not None:
            ordered = [results[positions[i]].request_id for i in range(len(rows))]
            self.shadow.submit(serving.challenger, rows, ordered, entity_ids)
        return results

    def _assess(
        self, serving: Serving, served: ServedModel, variant: str, rows: Columns
    ) -> tuple[ServedModel, str, Assessment]:
        """One model call, timed per variant. A challenger that fails is counted and its rows
        answered by the champion: a test never costs a client an error."""
        name = served.kind.registered_name
        started = time.perf_counter()
        try:
            assessed = served.model.assess(rows, TOP_REASONS)
        except Exception:
            if variant == CHAMPION:
                raise
            log.exception("the challenger of %s failed; the champion answers", name)
            metrics.VARIANT_ERRORS.labels(model=name, variant=variant).inc(len(rows))
            return self._assess(serving, serving.champion, CHAMPION, rows)
        metrics.VARIANT_LATENCY.labels(model=name, variant=variant).observe(
            time.perf_counter() - started
        )
        return served, variant, assessed

    def _record(
        self,
        served: ServedModel,
        variant: str,
        assessed: Assessment,
        request_ids: list[str],
        entity_ids: list,
    ) -> None:
        """Durable prediction log (before answering), metrics, and the monitoring profile."""
        name = served.kind.registered_name
        self.log.append(log_entries(served, variant, assessed, request_ids, entity_ids))
        metrics.BATCH_SIZE.labels(model=name).observe(len(request_ids))
        metrics.VARIANT_ROWS.labels(model=name, variant=variant).inc(len(request_ids))
        histogram = metrics.SCORE.labels(model=name, version=served.version)
        for score in assessed.scores:
            histogram.observe(float(score))
        for feature, count in Counter(f for row in assessed.imputed for f in row).items():
            metrics.IMPUTED.labels(model=name, feature=feature).inc(count)
        if self.profiles is not None:
            self.profiles.submit(
                name,
                served.version,
                ServedRows.of(assessed.prepared, assessed.scores, assessed.bands),
            )


def log_entries(
    served: ServedModel,
    variant: str,
    assessed: Assessment,
    request_ids: list[str],
    entity_ids: list,
) -> list[PredictionEntry]:
    """The prediction-log entries of one model call."""
    hashes = feature_hashes(assessed.prepared)
    now = datetime.now(UTC).isoformat()
    return [
        PredictionEntry(
            request_id=request_ids[i],
            model=served.kind.registered_name,
            model_version=served.version,
            entity_id=entity_ids[i],
            features_hash=hashes[i],
            imputed_features=assessed.imputed[i],
            score=float(assessed.scores[i]),
            band=assessed.bands[i],
            scored_at=now,
            variant=variant,
            reasons=[reason.feature for reason in assessed.reasons[i]],
        )
        for i in range(len(request_ids))
    ]


class ShadowScorer:
    """Scores the rows the champion answered with the challenger, in a thread of its own after
    the answers are out, and logs them as ``shadow`` under the same request ids. Rows beyond
    ``max_rows`` waiting are dropped (and counted): a shadow never slows the champion down."""

    COALESCE = 256  # queued jobs (champion batches) scored together at most

    def __init__(self, log: PredictionLog, max_rows: int) -> None:
        self.log = log
        self.max_rows = max_rows
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(
        self, served: ServedModel, rows: Columns, request_ids: list[str], entity_ids: list
    ) -> None:
        with self._lock:
            if self._waiting + len(rows) > self.max_rows:
                metrics.SHADOW_DROPPED.labels(model=served.kind.registered_name).inc(len(rows))
                return
            self._waiting += len(rows)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
                self._thread.start()
        self._jobs.put((served, rows, request_ids, entity_ids))

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every submitted row is scored and logged (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._waiting and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        """Score what has queued, all rows of one challenger in one model call: the fixed cost
        of a call is paid once for every batch the champion answered meanwhile."""
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < self.COALESCE:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            by_model: dict[int, list] = {}
            for job in jobs:
                by_model.setdefault(id(job[0]), []).append(job)
            for group in by_model.values():
                self._score(group)

    def _score(self, jobs: list) -> None:
        served = jobs[0][0]
        rows = Columns.concat([job[1] for job in jobs]) if len(jobs) > 1 else jobs[0][1]
        request_ids = [r for job in jobs for r in job[2]]
        entity_ids = [e for job in jobs for e in job[3]]
        try:
            assessed = served.model.assess(rows, TOP_REASONS)
            self.log.append(log_entries(served, SHADOW, assessed, request_ids, entity_ids))
        except Exception:  # a failing challenger must not take the champion down
            log.exception("shadow scoring failed")
            metrics.SHADOW_DROPPED.labels(model=served.kind.registered_name).inc(len(rows))
        finally:
            with self._lock:
                self._waiting -= len(rows)


@dataclass(frozen=True)
class Scored:
    row: int
    score: float
    band: str
    reasons: list[Reason]
    imputed: list[str]
    request_id: str
    served: ServedModel
    variant: str = CHAMPION

    def common(self) -> dict[str, Any]:
        """Fields every score response shares."""
        return {
            "request_id": self.request_id,
            "reasons": _reasons(self.reasons),
            "model": self.served.kind.registered_name,
            "model_version": self.served.version,
            "variant": self.variant,
            "imputed_features": self.imputed,
        }


def _serving(model: ServedModel | Serving) -> Serving:
    """A model served alone is its own champion, with no release running."""
    if isinstance(model, Serving):
        return model
    return Serving(Release(model.kind.registered_name, model.version), model)
