"""The service's OpenAPI document, built from the models that validate its requests and shape its
responses, and from the statuses its handlers and middlewares answer.

Served at ``/docs.json`` (the docs page at ``/`` reads it) and published as ``docs/openapi.json``
by ``leadrisk openapi``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from core.kinds import MODEL_KINDS
from core.settings import Settings
from service.http import HEALTH_PATHS, METRICS_PATH, REQUEST_ID_HEADER, ROUTE_SCOPES
from service.schemas import (
    BatchRequest,
    BatchResponse,
    CustomerRequest,
    CustomerScore,
    ErrorBody,
    FeedbackAck,
    FeedbackOutcome,
    FeedbackRating,
    LeadById,
    LeadScore,
    ServiceStatus,
    bounded_new_lead,
)

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
ERROR_REF = {"$ref": REF.format(model="ErrorBody")}
JSON = "application/json"

# What each error status means, wherever it is declared
ERRORS = {
    400: "The body is not JSON, or not a readable multipart form (`field` names the part).",
    401: "No bearer token, or an unknown one (only when the deployment sets tokens).",
    403: "The token lacks this operation's scope (only when the deployment sets tokens).",
    404: "The entity is not in the online feature store; `field` names the id.",
    409: "This `feedback_id` was already recorded with other content.",
    413: "More rows than the service accepts in one call (`service.batch_upload_max_rows`).",
    422: "A field is missing, of the wrong type or out of range; `field` names the first, "
    "`detail` lists them all.",
    500: "An unexpected failure; the server log has it under the request id.",
    503: "Overloaded, or the online feature store is unreachable: retry with backoff.",
}
SCORING_ERRORS = (400, 404, 422, 500, 503)


@dataclass(frozen=True)
class Operation:
    """One documented operation: its path, method, bodies and the statuses it can answer."""

    path: str
    method: str
    summary: str
    response: type[BaseModel] | str  # a model, or a media type for non-JSON answers
    errors: tuple[int, ...] = ()
    # a model, models of which the body is exactly one, or a multipart form's schema
    request: type[BaseModel] | tuple[type[BaseModel], ...] | dict | None = None
    examples: dict[str, Any] = field(default_factory=dict)
    response_schema: dict | None = None  # for non-JSON answers


def operations(settings: Settings) -> list[Operation]:
    """Every operation the service answers, for ``settings`` (they fix the raw-lead caps)."""
    upload = {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "CSV or parquet with a lead_id/customer_id column, or (leads) "
                "raw lead columns.",
            },
            "model": {"type": "string", "enum": sorted(MODEL_KINDS), "default": "lead"},
        },
    }
    text = {"type": "string"}
    return [
        Operation(
            "/score_lead",
            "post",
            "Score a stored lead by id, or a new lead from its raw fields.",
            LeadScore,
            SCORING_ERRORS,
            (LeadById, bounded_new_lead(settings.service.raw_lead_max)),
            {
                "stored lead": {"lead_id": 660737},
                "new lead": {
                    "lead": {
                        "lead_origin": "Landing Page Submission",
                        "lead_source": "Google",
                        "total_visits": 4,
                        "total_time_on_website": 1500,
                        "page_views_per_visit": 3,
                        "last_activity": "SMS Sent",
                    }
                },
            },
        ),
        Operation(
            "/score_customer",
            "post",
            "P(suspended), segment, off-boarding flag and reasons for one customer.",
            CustomerScore,
            SCORING_ERRORS,
            CustomerRequest,
            {"customer": {"customer_id": 42}},
        ),
        Operation(
            "/batch_score",
            "post",
            "Score many stored entities; unknown ids come back as failed rows.",
            BatchResponse,
            (400, 413, 422, 500, 503),
            BatchRequest,
            {"customers": {"model": "risk", "ids": [1, 2, 3]}},
        ),
        Operation(
            "/batch_score_file",
            "post",
            "Score a CSV or parquet upload; the scores are also written next to the reports.",
            BatchResponse,
            (400, 413, 422, 500, 503),
            upload,
            {"stored leads": {"file": "lead_id\n660737\n660728\n", "model": "lead"}},
        ),
        Operation(
            "/feedback",
            "post",
            "Record an outcome (converted / suspended) or a sales rating; idempotent by "
            "feedback_id.",
            FeedbackAck,
            (400, 404, 409, 422, 500, 503),
            (FeedbackOutcome, FeedbackRating),
            {
                "converted": {
                    "feedback_id": "crm-7731",
                    "model": "lead",
                    "entity_id": 660737,
                    "label": 1,
                }
            },
        ),
        Operation(
            "/models",
            "get",
            "The models being served and whether the online feature store answers.",
            ServiceStatus,
        ),
        Operation(
            "/admin/reload",
            "post",
            "Read the release table now and serve what it says (this serving process; the "
            "others within service.registry_poll_s).",
            ServiceStatus,
        ),
        Operation(
            "/dashboard",
            "get",
            "The live dashboard: volumes, scores, drift and KPIs (HTML).",
            "text/html",
            response_schema=text,
        ),
        Operation(
            METRICS_PATH,
            "get",
            "Prometheus metrics of this serving process and the service.",
            "text/plain",
            response_schema=text,
        ),
        Operation(
            "/livez", "get", "Liveness: the process answers.", "text/plain", response_schema=text
        ),
        Operation("/healthz", "get", "Alias of /livez.", "text/plain", response_schema=text),
        Operation(
            "/readyz",
            "get",
            "Readiness: models loaded and the feature store answering (503 until then).",
            "text/plain",
            (503,),
            response_schema=text,
        ),
    ]


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of the service that ``settings`` configure."""
    ops = operations(settings)
    auth = bool(settings.service.auth_token or settings.service.auth_tokens)
    models = [(ErrorBody, "serialization")]
    for op in ops:
        requests = op.request if isinstance(op.request, tuple) else (op.request,)
        models += [(model, "validation") for model in requests if isinstance(model, type)]
        if isinstance(op.response, type):
            models.append((op.response, "serialization"))
    _, schemas = models_json_schema(models, ref_template=REF)
    paths: dict[str, dict] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation(op, auth, settings)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "leadrisk",
            "version": "1",
            "description": "Lead scoring and customer risk. Every response carries an "
            f"`{REQUEST_ID_HEADER}` header (a client may send its own); error bodies echo it "
            "as `request_id`. A score's own `request_id` is its entry in the prediction log.",
        },
        "paths": paths,
        "components": {"schemas": schemas["$defs"]},
    }
    if auth:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": _scopes_text()}
        }
    return document


def document_bytes(settings: Settings) -> bytes:
    """``openapi_document`` as the JSON text served and published (stable key order)."""
    return (json.dumps(openapi_document(settings), indent=2, sort_keys=True) + "\n").encode()


def _operation(op: Operation, auth: bool, settings: Settings) -> dict[str, Any]:
    errors = set(op.errors)
    secured = (
        auth
        and op.path not in HEALTH_PATHS
        and not (op.path == METRICS_PATH and settings.service.metrics_open)
    )
    if secured:
        errors |= {401, 403}
    if isinstance(op.response, type):
        ok = {JSON: {"schema": _ref(op.response)}}
    else:
        ok = {op.response: {"schema": op.response_schema}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": ok}}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERRORS[status],
            "content": {JSON: {"schema": ERROR_REF}},
        }
    spec: dict[str, Any] = {
        "operationId": op.path.strip("/").replace("/", "_") or "index",
        "summary": op.summary,
        "responses": responses,
    }
    if secured:
        spec["security"] = [{"bearer": []}]
        spec["description"] = f"Needs a token with the `{ROUTE_SCOPES[op.path]}` scope."
    if op.request is not None:
        if isinstance(op.request, type):
            media_type, schema = JSON, _ref(op.request)
        elif isinstance(op.request, tuple):
            media_type, schema = JSON, {"oneOf": [_ref(model) for model in op.request]}
        else:
            media_type, schema = "multipart/form-data", op.request
        media: dict[str, Any] = {"schema": schema}
        if op.examples:
            media["examples"] = {name: {"value": value} for name, value in op.examples.items()}
        spec["requestBody"] = {"required": True, "content": {media_type: media}}
    return spec


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _scopes_text() -> str:
    by_scope: dict[str, list[str]] = {}
    for path, scope in ROUTE_SCOPES.items():
        by_scope.setdefault(scope, []).append(path)
    listed = "; ".join(f"`{scope}`: {', '.join(paths)}" for scope, paths in by_scope.items())
    return f"Bearer tokens carry scopes. {listed}. Health paths need no token."
