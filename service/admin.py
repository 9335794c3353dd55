"""Batch scoring, model information and the small Starlette app mounted beside the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pandas as pd
from bentoml.exceptions import ServiceUnavailable
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from core.kinds import LEAD, MODEL_KINDS
from core.settings import Settings
from service.schemas import (
    BatchResponse,
    BatchRow,
    LeadRequest,
    ModelInfo,
    RawLead,
    bounded_raw_lead,
)
from service.scorer import Scorer, Serving

BATCH_CHUNK = 5_000
RELOAD_PATH = "/admin/reload"
PARQUET_MAGIC = b"PAR1"


class TooManyRows(ValueError):
    """An upload longer than ``service.batch_upload_max_rows``."""


def profile_writer(settings: Settings):
    """The whylogs writer (its own process), or None when profiling is off."""
    if not settings.monitoring.profiling:
        return None
    from monitoring.profiler import ProfileProcess

    return ProfileProcess(settings)


def model_info(serving: dict[str, Serving]) -> list[dict[str, Any]]:
    """What each model serves now: its champion, challenger and release."""
    return [
        ModelInfo(
            model=s.champion.kind.registered_name,
            version=s.champion.version,
            bento_model=s.release.champion,
            feature_service=s.champion.kind.feature_service,
            threshold=s.champion.model.threshold,
            bands={b.name: b.min_score for b in s.champion.model.bands},
            challenger_version=s.challenger.version if s.challenger else None,
            release_mode=s.release.mode,
            ab_share=s.release.share,
            release_revision=s.release.revision,
        ).model_dump()
        for s in serving.values()
    ]


def batch_by_ids(scorer: Scorer, model: str, ids: list[int]) -> BatchResponse:
    """Score ids in chunks; unknown ids come back as failed rows, the rest are scored.

    A feature-store outage fails the whole call (503), not each row."""
    rows: list[BatchRow] = []
    for start in range(0, len(ids), BATCH_CHUNK):
        chunk = ids[start : start + BATCH_CHUNK]
        outcomes = scorer.batch_scorer(model)(scorer.requests_for(model, chunk))
        rows += batch_rows(chunk, outcomes, start)
    return _response(model, rows)


def batch_by_outcomes(model: str, ids: list[int], outcomes: list) -> BatchResponse:
    """The response for ids already scored (e.g. through the service's batchers)."""
    return _response(model, batch_rows(ids, outcomes, 0))


def batch_rows(ids: list[int], outcomes: list, start: int) -> list[BatchRow]:
    """One row per id; an outage of the feature store for every id fails the call (503)."""
    if outcomes and all(o.error is not None and o.error.status == 503 for o in outcomes):
        raise ServiceUnavailable(outcomes[0].error.error)
    return [
        BatchRow(
            entity_id=entity_id,
            row=start + offset,
            result=outcome.score,
            error=outcome.error.error if outcome.error else None,
        )
        for offset, (entity_id, outcome) in enumerate(zip(ids, outcomes, strict=True))
    ]


def batch_from_file(scorer: Scorer, model: str, path: Path, settings: Settings) -> BatchResponse:
    """Score an uploaded CSV or parquet file and also write the scores next to the reports."""
    frame = _read_upload(path)
    limit = settings.service.batch_upload_max_rows
    if len(frame) > limit:
        raise TooManyRows(f"upload has {len(frame):,} rows; the limit is {limit:,}")
    key = MODEL_KINDS[model].entity_key
    if frame.empty:
        raise ValueError("upload has no rows")
    if key in frame.columns:
        ids = pd.to_numeric(frame[key], errors="coerce")
        bad = [
            BatchRow(entity_id=None, row=i, error=f"{key} is not an integer")
            for i in ids.index[ids.isna()]
        ]
        good = ids.dropna().astype("int64")
        response = batch_by_ids(scorer, model, good.tolist())
        for row, index in zip(response.rows, good.index, strict=True):
            row.row = int(index)
        response = _response(model, sorted([*response.rows, *bad], key=lambda r: r.row))
    elif MODEL_KINDS[model].scores_raw_payloads:
        unknown = sorted(map(str, set(frame.columns) - set(RawLead.model_fields)))
        if unknown:
            raise ValueError(
                f"upload needs a {key!r} column or raw lead columns only; unknown: {unknown[:5]}"
            )
        response = _score_raw_leads(scorer, frame, settings)
    else:
        raise ValueError(f"upload needs a {key!r} column")
    out = settings.reports_dir / "batch_scores" / f"{model}_{path.stem}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([_flat(row) for row in response.rows]).to_parquet(out, index=False)
    response.written_to = str(out)
    return response


def _score_raw_leads(scorer: Scorer, frame: pd.DataFrame, settings: Settings) -> BatchResponse:
    raw_lead = bounded_raw_lead(settings.service.raw_lead_max)
    rows, requests, positions = [], [], []
    for i, record in enumerate(frame.astype(object).where(frame.notna(), None).to_dict("records")):
        try:
            requests.append(LeadRequest(lead=raw_lead.model_validate(record, strict=False)))
            positions.append(i)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            rows.append(BatchRow(entity_id=None, row=i, error=f"{field}: {first['msg']}"))
    for start in range(0, len(requests), BATCH_CHUNK):
        outcomes = scorer.score_leads(requests[start : start + BATCH_CHUNK])
        for position, outcome in zip(positions[start : start + BATCH_CHUNK], outcomes, strict=True):
            rows.append(
                BatchRow(
                    entity_id=None,
                    row=position,
                    result=outcome.score,
                    error=outcome.error.error if outcome.error else None,
                )
            )
    return _response(LEAD.key, sorted(rows, key=lambda r: r.row))


def _read_upload(path: Path) -> pd.DataFrame:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    try:
        return pd.read_parquet(path) if magic == PARQUET_MAGIC else pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"upload is neither a readable CSV nor parquet file: {err}") from err


def _response(model: str, rows: list[BatchRow]) -> BatchResponse:
    failed = sum(1 for row in rows if row.error is not None)
    return BatchResponse(
        model=MODEL_KINDS[model].registered_name,
        scored=len(rows) - failed,
        failed=failed,
        rows=rows,
    )


def _flat(row: BatchRow) -> dict[str, Any]:
    flat: dict[str, Any] = {"row": row.row, "entity_id": row.entity_id, "error": row.error}
    if row.result is not None:
        result = row.result.model_dump()
        result["reasons"] = "; ".join(r["text"] for r in result["reasons"])
        result["imputed_features"] = ",".join(result["imputed_features"])
        flat.update(result)
    return flat


async def _models(request: Request) -> JSONResponse:
    import bentoml

    service = bentoml.get_current_service()
    return JSONResponse(await anyio.to_thread.run_sync(service.status))


async def _reload(request: Request) -> JSONResponse:
    """Read the release table now (this serving process; the others within their poll)."""
    import bentoml

    service = bentoml.get_current_service()
    await anyio.to_thread.run_sync(service.follow_releases)
    return JSONResponse(await anyio.to_thread.run_sync(service.status))


def admin_app(settings: Settings) -> Starlette:
    """GET endpoints that BentoML's POST-only API methods do not cover."""

    async def dashboard(request: Request) -> HTMLResponse:
        from bentoml._internal.container import BentoMLContainer

        from monitoring.dashboard import render_dashboard

        metrics_client = BentoMLContainer.metrics_client.get()
        metrics_text = (await anyio.to_thread.run_sync(metrics_client.generate_latest)).decode()
        page = await anyio.to_thread.run_sync(render_dashboard, settings, metrics_text)
        return HTMLResponse(page)

    return Starlette(
        routes=[
            Route("/models", _models, methods=["GET"]),
            Route(RELOAD_PATH, _reload, methods=["POST"]),
            Route("/dashboard", dashboard, methods=["GET"]),
        ]
    )
