"""The BentoML services: the public HTTP API and the batching scoring worker.

``LeadRisk`` answers single-entity requests and forwards each to ``ScoringWorker``, whose
batchable methods let BentoML's adaptive-batching dispatcher merge concurrent requests, so one
Feast lookup and one model call serve a whole batch. Business logic lives in ``service/scorer.py``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated

from leadrisk.settings import get_settings
from service.packaging import MODEL_FILE, serving_tags, use_bentoml_home

SETTINGS = get_settings()
use_bentoml_home(SETTINGS)

import anyio  # noqa: E402
import bentoml  # noqa: E402
import cloudpickle  # noqa: E402
from bentoml.validators import ContentType  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from features import store as feature_store  # noqa: E402
from leadrisk.catalog import LEAD, MODEL_KINDS, RISK  # noqa: E402
from monitoring.feedback import ConflictError, FeedbackStore  # noqa: E402
from service import admin  # noqa: E402
from service.http import AuthMiddleware, ValidationStatusMiddleware  # noqa: E402
from service.prediction_log import PredictionLog  # noqa: E402
from service.schemas import (  # noqa: E402
    BatchRequest,
    BatchResponse,
    CustomerOutcome,
    CustomerRequest,
    CustomerScore,
    FeedbackAck,
    FeedbackRequest,
    LeadOutcome,
    LeadRequest,
    LeadScore,
    RawLead,
)
from service.scorer import FeatureStoreUnavailable, Scorer, ServedModel  # noqa: E402

log = logging.getLogger("leadrisk.service")
TAGS = serving_tags(SETTINGS)
SERVICE = SETTINGS.service
READY_CACHE_S = 2.0
# Per-request access logs are off: each line crosses a pipe to the `bentoml serve` supervisor,
# which cost ~40% of a core at 200 req/s. Every prediction is in leadrisk's prediction log.
QUIET = {"access": {"enabled": False}}


def _load(bento_model: bentoml.Model):
    with open(bento_model.path_of(MODEL_FILE), "rb") as handle:
        return cloudpickle.load(handle)


@bentoml.service(
    name="scoring_worker",
    workers=SERVICE.workers,
    traffic={"timeout": SERVICE.timeout_s},
    logging=QUIET,
)
class ScoringWorker:
    """Holds the models and the feature-store connection; scores whole batches."""

    lead_model = bentoml.models.BentoModel(TAGS[LEAD.registered_name])
    risk_model = bentoml.models.BentoModel(TAGS[RISK.registered_name])

    def __init__(self) -> None:
        self.served = {
            LEAD.key: ServedModel(
                LEAD, self.lead_model.info.labels["mlflow_version"], _load(self.lead_model)
            ),
            RISK.key: ServedModel(
                RISK, self.risk_model.info.labels["mlflow_version"], _load(self.risk_model)
            ),
        }
        self.profiles = admin.profile_writer(SETTINGS)
        self.scorer = Scorer(
            feature_store.open_store(SETTINGS),
            self.served[LEAD.key],
            self.served[RISK.key],
            PredictionLog(SETTINGS.prediction_log_dir),
            self.profiles,
        )

    @bentoml.api(
        batchable=True, max_batch_size=SERVICE.max_batch_size, max_latency_ms=SERVICE.max_latency_ms
    )
    def score_leads(self, requests: list[LeadRequest]) -> list[LeadOutcome]:
        return self.scorer.score_leads(requests)

    @bentoml.api(
        batchable=True, max_batch_size=SERVICE.max_batch_size, max_latency_ms=SERVICE.max_latency_ms
    )
    def score_customers(self, customer_ids: list[int]) -> list[CustomerOutcome]:
        return self.scorer.score_customers(customer_ids)

    @bentoml.api
    def score_leads_unbatched(self, requests: list[LeadRequest]) -> list[LeadOutcome]:
        """Same work without the dispatcher: the baseline for the batching benchmark."""
        return self.scorer.score_leads(requests)

    @bentoml.api
    def score_customers_unbatched(self, customer_ids: list[int]) -> list[CustomerOutcome]:
        return self.scorer.score_customers(customer_ids)

    @bentoml.api
    def batch_ids(self, model: str, ids: list[int]) -> BatchResponse:
        return admin.batch_by_ids(self.scorer, model, ids)

    @bentoml.api
    def batch_file(self, model: str, path: Path) -> BatchResponse:
        return admin.batch_from_file(self.scorer, model, path, SETTINGS)

    @bentoml.api
    def status(self) -> dict:
        """Models being served and whether the feature store answers."""
        try:
            self.scorer.ping()
            store_ok, store_error = True, None
        except FeatureStoreUnavailable as err:
            store_ok, store_error = False, str(err)
        return {
            "models": admin.model_info(self.served, TAGS),
            "feature_store": {"ok": store_ok, "error": store_error},
        }

    @bentoml.on_shutdown
    def close(self) -> None:
        if self.profiles is not None:
            self.profiles.close()
        self.scorer.log.close()


@bentoml.service(
    name="leadrisk",
    workers=1,
    traffic={"timeout": SERVICE.timeout_s},
    logging=QUIET,
)
class LeadRisk:
    """Lead scoring and customer risk over HTTP."""

    worker = bentoml.depends(ScoringWorker)

    def __init__(self) -> None:
        self._ready_at = 0.0
        self._ready = False
        self.feedback_store = FeedbackStore(SETTINGS.feedback_db)
        _keep_sessions_open(self.worker)

    async def __is_ready__(self) -> bool:
        """Ready once the models are loaded and the feature store answers (cached briefly)."""
        if time.monotonic() - self._ready_at > READY_CACHE_S:
            try:
                status = await self.worker.to_async.status()
                self._ready = bool(status["feature_store"]["ok"])
            except Exception:  # the worker is still starting or has died
                self._ready = False
            self._ready_at = time.monotonic()
        return self._ready

    @bentoml.api(route="/score_lead", input_spec=LeadRequest)
    async def score_lead(
        self, lead_id: int | None = None, lead: RawLead | None = None
    ) -> LeadScore:
        """Score a stored lead by id, or a new lead from its raw fields."""
        request = LeadRequest(lead_id=lead_id, lead=lead)
        call = (
            self.worker.to_async.score_leads
            if SERVICE.batching
            else (self.worker.to_async.score_leads_unbatched)
        )
        return await _answer(call([request]))

    @bentoml.api(route="/score_customer", input_spec=CustomerRequest)
    async def score_customer(self, customer_id: int) -> CustomerScore:
        """P(suspended), segment and off-boarding flag for one customer."""
        call = (
            self.worker.to_async.score_customers
            if SERVICE.batching
            else (self.worker.to_async.score_customers_unbatched)
        )
        return await _answer(call([customer_id]))

    @bentoml.api(route="/feedback", input_spec=FeedbackRequest)
    async def feedback(
        self,
        feedback_id: str,
        model: str,
        entity_id: int,
        label: int | None = None,
        rating: int | None = None,
    ) -> FeedbackAck:
        """Record an outcome (converted / suspended) or a sales rating; idempotent by id.

        The entity is scored now so that the feedback carries the score and band it is judged
        against (the KPIs by band and the live ROC-AUC use them).
        """
        if model == LEAD.key:
            outcome = (await self.worker.to_async.score_leads([LeadRequest(lead_id=entity_id)]))[0]
            score = outcome.score and (outcome.score.probability, outcome.score.band)
        else:
            outcome = (await self.worker.to_async.score_customers([entity_id]))[0]
            score = outcome.score and (outcome.score.p_suspended, outcome.score.segment)
        if outcome.error is not None:
            return _error(outcome.error.status, outcome.error.error, "entity_id")
        version = outcome.score.model_version
        try:
            status = await anyio.to_thread.run_sync(
                lambda: self.feedback_store.record(
                    feedback_id,
                    MODEL_KINDS[model].registered_name,
                    entity_id,
                    label,
                    rating,
                    score[0],
                    score[1],
                    version,
                    datetime.now(UTC),
                )
            )
        except ConflictError as err:
            return _error(409, str(err), "feedback_id")
        return FeedbackAck(
            feedback_id=feedback_id,
            status=status,
            score=score[0],
            band=score[1],
            model_version=version,
        )

    @bentoml.api(route="/batch_score", input_spec=BatchRequest)
    async def batch_score(self, model: str, ids: list[int]) -> BatchResponse:
        """Many ids at once (CRM exports); failed rows come back with their error."""
        if len(ids) > SERVICE.batch_upload_max_rows:
            return _error(413, f"at most {SERVICE.batch_upload_max_rows} ids", "ids")
        return await _guard(self.worker.to_async.batch_ids(model=model, ids=ids))

    @bentoml.api(route="/batch_score_file")
    async def batch_score_file(
        self,
        file: Annotated[Path, ContentType("application/octet-stream")],
        model: str = "lead",
    ) -> BatchResponse:
        """A CSV or parquet upload with a lead_id/customer_id column (or raw lead columns)."""
        if model not in ("lead", "risk"):
            return _error(422, "model must be 'lead' or 'risk'", "model")
        return await _guard(self.worker.to_async.batch_file(model=model, path=file))


def _keep_sessions_open(proxy: object) -> None:
    """Work around BentoML 1.4.39: its dependency client replaces its HTTP session every 100
    requests and closes the old one under in-flight calls, which then fail with "Server
    disconnected". Keeping one session avoids that; tests/test_service.py guards it."""
    manager = getattr(getattr(proxy, "_async", None), "_session_manager", None)
    if manager is not None:
        manager.max_requests = float("inf")
        manager.max_age = float("inf")


async def _guard(call):
    try:
        return await call
    except Exception as err:
        return _unavailable(err)


async def _answer(call):
    """Turn the worker's outcome into a response: the score, or the error with its status."""
    try:
        outcomes = await call
    except Exception as err:
        return _unavailable(err)
    outcome = outcomes[0]
    if outcome.error is not None:
        return _error(outcome.error.status, outcome.error.error, outcome.error.field)
    return outcome.score


def _unavailable(err: Exception) -> JSONResponse:
    message = str(err)
    if "overloaded" in message:
        return _error(503, "scoring worker overloaded; retry shortly", None)
    if getattr(err, "error_code", None) == HTTPStatus.SERVICE_UNAVAILABLE:
        log.warning("scoring unavailable: %s", message)
        return _error(503, "feature store unreachable; retry shortly", None)
    log.exception("scoring failed")
    return _error(500, "internal error; see the server log", None)


def _error(status: int, message: str, field: str | None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _pin_media_types(*services: bentoml.Service) -> None:
    """BentoML 1.4 rebuilds each output type's JSON schema on every response just to pick its
    MIME type (40% of the worker's CPU under load); compute it once per API instead."""
    for svc in services:
        for method in svc.apis.values():
            method.output_spec.media_type = method.output_spec.mime_type()


_pin_media_types(ScoringWorker, LeadRisk)
LeadRisk.add_asgi_middleware(ValidationStatusMiddleware)
LeadRisk.add_asgi_middleware(AuthMiddleware, token=SERVICE.auth_token)
LeadRisk.mount_asgi_app(admin.admin_app(SETTINGS), path="/")
