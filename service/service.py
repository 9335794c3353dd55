"""The BentoML service: the public HTTP API, with adaptive batching in every serving process.

``LeadRisk`` answers single-entity requests; its batchers (``service/batching.py``) merge
concurrent ones so that one Feast lookup and one model call serve a whole batch. Business logic
lives in ``service/scorer.py``.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import warnings
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path

import anyio
import bentoml
import cloudpickle
from bentoml._internal import server as bentoml_server
from starlette.responses import JSONResponse

from core.kinds import LEAD, MODEL_KINDS, RISK, ModelKind
from core.settings import get_settings
from features import store as feature_store
from monitoring.feedback import ConflictError, Feedback, FeedbackStore
from monitoring.prediction_log import PredictionLog
from monitoring.releases import ReleaseStore
from service import admin, openapi
from service.batching import Batcher, Overloaded
from service.http import (
    HEALTH_PATHS,
    METRICS_PATH,
    AuthMiddleware,
    ConnectionRecycleMiddleware,
    DocumentMiddleware,
    ErrorBodyMiddleware,
    MultipartGuardMiddleware,
    bound_request_metric_labels,
    static_paths,
    token_grants,
)
from service.packaging import MODEL_FILE, serving_tags
from service.schemas import (
    BatchFileRequest,
    BatchRequest,
    BatchResponse,
    CustomerRequest,
    CustomerScore,
    FeedbackAck,
    FeedbackRequest,
    LeadRequest,
    LeadScore,
    RawLead,
    bounded_lead_request,
)
from service.scorer import FeatureStoreUnavailable, Scorer, ServedModel, Serving

# BentoML declares a service's workers and traffic at class definition, so the settings are read
# here, once; everything else is built per serving process in ``LeadRisk.__init__``.
SETTINGS = get_settings()
log = logging.getLogger("leadrisk.service")
# BentoML 1.4 reads ``model_fields`` off each request model, which pydantic 2.11+ deprecates; the
# warning is re-emitted whenever another library touches the warning filters, i.e. all the time.
warnings.filterwarnings("ignore", message="Accessing the 'model_fields' attribute on the instance")
# Likewise its IO models still call ``BaseModel.__get_pydantic_core_schema__`` (deprecated in 2.11).
warnings.filterwarnings("ignore", message="The `__get_pydantic_core_schema__` method")
TAGS = serving_tags(SETTINGS)
SERVICE = SETTINGS.service
LEAD_REQUEST = bounded_lead_request(SERVICE.raw_lead_max)
READY_CACHE_S = 2.0
OPENAPI_PATH = "/docs.json"  # where BentoML's docs page at / reads the spec
# Per-request access logs are off: each line crosses a pipe to the `bentoml serve` supervisor, a
# large share of a core under load (docs/decisions/0008-no-access-logs-no-tracing-by-default.md).
# Every prediction is in leadrisk's prediction log.
QUIET = {"access": {"enabled": False}}
# With tracing unset, every path is excluded from BentoML's OpenTelemetry middleware, which then
# passes requests straight through instead of opening a span that nothing exports.
UNTRACED = {"excluded_urls": [".*"]}


def _served(kind: ModelKind, bento_model: bentoml.Model) -> ServedModel:
    """A model of the BentoML store, ready to score."""
    with open(bento_model.path_of(MODEL_FILE), "rb") as handle:
        model = cloudpickle.load(handle)
    model.limit_threads(SERVICE.model_threads)
    return ServedModel(kind, bento_model.info.labels["mlflow_version"], model)


@bentoml.service(
    name="leadrisk",
    workers=SERVICE.workers,
    traffic={"timeout": SERVICE.timeout_s},
    logging=QUIET,
    tracing=SERVICE.tracing or UNTRACED,
)
class LeadRisk:
    """Lead scoring and customer risk over HTTP.

    Each serving process holds both models, the feature-store connection and one batcher per
    model: concurrent single-entity requests are scored together (service/batching.py).
    """

    lead_model = bentoml.models.BentoModel(TAGS[LEAD.registered_name])
    risk_model = bentoml.models.BentoModel(TAGS[RISK.registered_name])

    def __init__(self) -> None:
        self.loaded = {  # BentoML tag -> model, for every version this process has served
            TAGS[LEAD.registered_name]: _served(LEAD, self.lead_model),
            TAGS[RISK.registered_name]: _served(RISK, self.risk_model),
        }
        sys.setswitchinterval(SERVICE.gil_switch_interval_ms / 1000)
        self.profiles = admin.profile_writer(SETTINGS)
        self.scorer = Scorer(
            feature_store.ServingFeatures(
                feature_store.open_store(SETTINGS), list(MODEL_KINDS.values())
            ),
            self.loaded[TAGS[LEAD.registered_name]],
            self.loaded[TAGS[RISK.registered_name]],
            PredictionLog(
                SETTINGS.prediction_log_dir, SERVICE.prediction_log_sync_interval_ms / 1000
            ),
            self.profiles,
            SERVICE.shadow_queue_rows,
        )
        self.releases = ReleaseStore(SETTINGS.release_store_url)
        self.revision = 0
        self._release_lock = threading.Lock()
        self._stopping = threading.Event()
        self.follow_releases()
        threading.Thread(target=self._poll_releases, name="releases", daemon=True).start()
        self.feedback_store = FeedbackStore(SETTINGS.feedback_db)
        self.batchers = {
            key: _batcher(key, self.scorer.batch_scorer(key)) for key in (LEAD.key, RISK.key)
        }
        try:
            self.scorer.warm_up()
        except FeatureStoreUnavailable:
            log.warning("feature store unreachable at start-up; /readyz stays 503 until it answers")
        self._ready_at = 0.0
        self._ready = False
        _freeze_startup_heap()

    async def __is_ready__(self) -> bool:
        """Ready once the models are loaded and the feature store answers (cached briefly)."""
        if time.monotonic() - self._ready_at > READY_CACHE_S:
            try:
                await anyio.to_thread.run_sync(self.scorer.ping)
                self._ready = True
            except FeatureStoreUnavailable:
                self._ready = False
            self._ready_at = time.monotonic()
        return self._ready

    def follow_releases(self) -> None:
        """Serve what the release table says, when it changed since the last look: load any
        version not loaded yet from the BentoML store, then swap each model's serving at once
        (batches already running finish on the versions they started with)."""
        with self._release_lock:
            revision = self.releases.revision()
            if revision == self.revision:
                return
            releases = self.releases.all()
            for kind in MODEL_KINDS.values():
                release = releases.get(kind.registered_name)
                if release is None:
                    continue
                try:
                    champion = self._version(kind, release.champion)
                    challenger = release.challenger and self._version(kind, release.challenger)
                except bentoml.exceptions.NotFound as err:
                    log.error("release %s names a model not in this store: %s", release, err)
                    continue
                self.scorer.serve(kind.key, Serving(release, champion, challenger or None))
                log.info("serving %s: %s", kind.registered_name, release)
            self.revision = revision

    def _version(self, kind: ModelKind, tag: str) -> ServedModel:
        if tag not in self.loaded:
            self.loaded[tag] = _served(kind, bentoml.models.get(tag))
        return self.loaded[tag]

    def _poll_releases(self) -> None:
        while not self._stopping.wait(SERVICE.registry_poll_s):
            try:
                self.follow_releases()
            except Exception:  # the table is unreachable: keep serving, try again
                log.exception("could not read the release table")

    def status(self) -> dict:
        """Models being served and whether the feature store answers (blocking)."""
        try:
            self.scorer.ping()
            store_ok, store_error = True, None
        except FeatureStoreUnavailable as err:
            store_ok, store_error = False, str(err)
        return {
            "models": admin.model_info(self.scorer.serving),
            "feature_store": {"ok": store_ok, "error": store_error},
        }

    async def _score(self, model: str, item: LeadRequest | int):
        """One entity's outcome, through the batcher (or alone when batching is off)."""
        if SERVICE.batching:
            return await self.batchers[model].submit(item)
        return (await anyio.to_thread.run_sync(self.scorer.batch_scorer(model), [item]))[0]

    @bentoml.api(route="/score_lead", input_spec=LEAD_REQUEST)
    async def score_lead(
        self, lead_id: int | None = None, lead: RawLead | None = None
    ) -> LeadScore:
        """Score a stored lead by id, or a new lead from its raw fields."""
        request = LeadRequest.model_construct(lead_id=lead_id, lead=lead)  # BentoML validated it
        return await _answer(self._score(LEAD.key, request))

    @bentoml.api(route="/score_customer", input_spec=CustomerRequest)
    async def score_customer(self, customer_id: int) -> CustomerScore:
        """P(suspended), segment and off-boarding flag for one customer."""
        return await _answer(self._score(RISK.key, customer_id))

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
        try:
            outcome = await self._score(model, self.scorer.requests_for(model, [entity_id])[0])
        except Exception as err:
            return _unavailable(err)
        if outcome.error is not None:
            return _error(outcome.error.status, outcome.error.error, "entity_id")
        kind = MODEL_KINDS[model]
        score = (
            getattr(outcome.score, kind.score_field),
            getattr(outcome.score, kind.category_field),
        )
        version = outcome.score.model_version
        try:
            status = await anyio.to_thread.run_sync(
                self.feedback_store.record,
                Feedback(
                    feedback_id=feedback_id,
                    model=kind.registered_name,
                    entity_id=entity_id,
                    label=label,
                    rating=rating,
                    score=score[0],
                    band=score[1],
                    model_version=version,
                    at=datetime.now(UTC),
                ),
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
        """Many ids at once (CRM exports); failed rows come back with their error.

        Up to ``max_batch_size`` ids join the model's batcher behind the single requests (one
        scoring thread per model, no extra contention); larger calls are scored in chunks."""
        if len(ids) > SERVICE.batch_upload_max_rows:
            return _error(413, f"at most {SERVICE.batch_upload_max_rows} ids", "ids")
        if SERVICE.batching and len(ids) <= SERVICE.max_batch_size:
            items = self.scorer.requests_for(model, ids)
            try:
                outcomes = await self.batchers[model].submit_bulk(items)
                return admin.batch_by_outcomes(model, ids, outcomes)
            except Exception as err:
                return _unavailable(err)
        return await _guard(anyio.to_thread.run_sync(admin.batch_by_ids, self.scorer, model, ids))

    @bentoml.api(route="/batch_score_file", input_spec=BatchFileRequest)
    async def batch_score_file(self, file: Path, model: str = LEAD.key) -> BatchResponse:
        """A CSV or parquet upload with a lead_id/customer_id column (or raw lead columns)."""
        try:
            return await _guard(
                anyio.to_thread.run_sync(admin.batch_from_file, self.scorer, model, file, SETTINGS)
            )
        except admin.TooManyRows as err:
            return _error(413, str(err), "file")
        except ValueError as err:  # unreadable upload, no id column
            return _error(422, str(err), "file")

    @bentoml.on_shutdown
    def close(self) -> None:
        self._stopping.set()
        self.scorer.shadow.drain(timeout=10)
        for batcher in self.batchers.values():
            batcher.close()
        if self.profiles is not None:
            self.profiles.close()
        self.scorer.log.close()


def _freeze_startup_heap() -> None:
    """Keep the objects loaded at start-up (libraries, models, Feast registry) out of every later
    garbage collection. Python's full collections walk the whole heap with the GIL held: in each
    serving process they stopped everything periodically under load, which was the p99 tail
    (docs/decisions/0002-freeze-startup-heap.md). Frozen, a collection only walks what was
    allocated since."""
    gc.collect()
    gc.freeze()


def _batcher(name: str, score) -> Batcher:
    return Batcher(
        name,
        score,
        max_batch_size=SERVICE.max_batch_size,
        max_latency_ms=SERVICE.max_latency_ms,
        max_wait_ms=SERVICE.max_wait_ms,
        bulk_rows_per_batch=SERVICE.bulk_rows_per_batch,
    )


async def _guard(call):
    """Await ``call``; a bad input (ValueError) propagates, any other failure becomes 5xx."""
    try:
        return await call
    except ValueError:
        raise
    except Exception as err:
        return _unavailable(err)


async def _answer(call):
    """Turn a scoring outcome into a response: the score, or the error with its status."""
    try:
        outcome = await call
    except Exception as err:
        return _unavailable(err)
    if outcome.error is not None:
        return _error(outcome.error.status, outcome.error.error, outcome.error.field)
    return outcome.score


def _unavailable(err: Exception) -> JSONResponse:
    message = str(err)
    if isinstance(err, Overloaded):
        return _error(503, "overloaded; retry shortly", None)
    if getattr(err, "error_code", None) == HTTPStatus.SERVICE_UNAVAILABLE:
        log.warning("scoring unavailable: %s", message)
        return _error(503, "feature store unreachable; retry shortly", None)
    log.exception("scoring failed")
    return _error(500, "internal error; see the server log", None)


def _error(status: int, message: str, field: str | None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _pin_media_types(*services: bentoml.Service) -> None:
    """BentoML 1.4 rebuilds each output type's JSON schema on every response just to pick its
    MIME type, a large share of the worker's CPU under load; compute it once per API instead."""
    for svc in services:
        for method in svc.apis.values():
            method.output_spec.media_type = method.output_spec.mime_type()


_pin_media_types(LeadRisk)
LeadRisk.add_asgi_middleware(ErrorBodyMiddleware)  # outermost: sees every answer
LeadRisk.add_asgi_middleware(
    ConnectionRecycleMiddleware,
    max_requests=SERVICE.max_requests_per_connection if SERVICE.workers > 1 else 0,
)
LeadRisk.add_asgi_middleware(
    AuthMiddleware, grants=token_grants(SERVICE), metrics_open=SERVICE.metrics_open
)
LeadRisk.add_asgi_middleware(
    DocumentMiddleware, path=OPENAPI_PATH, document=openapi.document_bytes(SETTINGS)
)
LeadRisk.add_asgi_middleware(MultipartGuardMiddleware)  # inside auth: no parsing before it
ADMIN = admin.admin_app(SETTINGS)
LeadRisk.mount_asgi_app(ADMIN, path="/")
bound_request_metric_labels(
    {
        *(method.route for method in LeadRisk.apis.values()),
        *(route.path for route in ADMIN.routes),
        *HEALTH_PATHS,
        METRICS_PATH,
        "/",
        OPENAPI_PATH,
        *static_paths("/static_content", Path(bentoml_server.__file__).parent / "static_content"),
    }
)
