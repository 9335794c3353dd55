"""Typed request and response bodies of the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

MAX_ENTITY_ID = 2**63 - 1  # entity keys are Feast INT64 values


class RawLead(BaseModel):
    """A lead not yet in the feature store, as the web form and tracking platform describe it."""

    model_config = ConfigDict(extra="forbid")

    lead_origin: str | None = None
    lead_source: str | None = None
    country: str | None = None
    specialization: str | None = None
    how_did_you_hear: str | None = None
    occupation: str | None = None
    what_matters_most: str | None = None
    city: str | None = None
    do_not_email: Literal[0, 1] = 0
    do_not_call: Literal[0, 1] = 0
    search: Literal[0, 1] = 0
    newspaper_article: Literal[0, 1] = 0
    x_education_forums: Literal[0, 1] = 0
    newspaper: Literal[0, 1] = 0
    digital_advertisement: Literal[0, 1] = 0
    through_recommendations: Literal[0, 1] = 0
    free_copy_of_interview: Literal[0, 1] = 0
    total_visits: float | None = Field(default=None, ge=0)
    total_time_on_website: float | None = Field(default=None, ge=0)
    page_views_per_visit: float | None = Field(default=None, ge=0)
    last_activity: str | None = None
    last_notable_activity: str | None = None


class LeadRequest(BaseModel):
    """Score a stored lead by ``lead_id``, or a new one from its raw ``lead`` payload."""

    model_config = ConfigDict(extra="forbid")

    lead_id: int | None = Field(default=None, ge=0, le=MAX_ENTITY_ID)
    lead: RawLead | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> LeadRequest:
        if (self.lead_id is None) == (self.lead is None):
            raise ValueError("give exactly one of lead_id or lead")
        return self


def bounded_raw_lead(raw_lead_max: Mapping[str, float]) -> type[RawLead]:
    """``RawLead`` with each numeric field capped at ``raw_lead_max`` (the setting
    ``service.raw_lead_max``); the caps are part of the OpenAPI schema."""
    return _bounded_raw_lead(tuple(sorted(raw_lead_max.items())))


def bounded_lead_request(raw_lead_max: Mapping[str, float]) -> type[LeadRequest]:
    """``LeadRequest`` whose raw lead is ``bounded_raw_lead(raw_lead_max)``."""
    return _bounded_lead_request(bounded_raw_lead(raw_lead_max))


@lru_cache
def _bounded_raw_lead(caps: tuple[tuple[str, float], ...]) -> type[RawLead]:
    numeric = {name for name, f in RawLead.model_fields.items() if f.annotation == float | None}
    unknown = sorted({name for name, _ in caps} - numeric)
    if unknown:
        raise ValueError(
            f"service.raw_lead_max names {unknown}; the numeric lead fields are {sorted(numeric)}"
        )
    fields: dict = {
        name: (float | None, Field(default=None, ge=0, le=maximum)) for name, maximum in caps
    }
    return create_model("RawLead", __base__=RawLead, __doc__=RawLead.__doc__, **fields)


@lru_cache
def _bounded_lead_request(raw: type[RawLead]) -> type[LeadRequest]:
    return create_model(
        "LeadRequest", __base__=LeadRequest, __doc__=LeadRequest.__doc__, lead=(raw | None, None)
    )


class CustomerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: int = Field(ge=0, le=MAX_ENTITY_ID)


class ReasonOut(BaseModel):
    feature: str
    value: str | float | int | None
    contribution: float  # of the feature and of the correlated features grouped with it
    grouped_with: list[str] = []
    text: str


class LeadScore(BaseModel):
    request_id: str
    lead_id: int | None
    probability: float
    band: str
    reasons: list[ReasonOut]
    model: str
    model_version: str
    imputed_features: list[str]


class CustomerScore(BaseModel):
    request_id: str
    customer_id: int
    p_suspended: float
    segment: str
    offboard: bool
    offboard_rule: str | None
    reasons: list[ReasonOut]
    model: str
    model_version: str
    imputed_features: list[str]


class ScoringError(BaseModel):
    """A request the worker could not score; ``status`` is the HTTP status to answer with."""

    status: int
    error: str
    field: str | None = None


class LeadOutcome(BaseModel):
    """What the scoring worker returns per request: a score or an error."""

    score: LeadScore | None = None
    error: ScoringError | None = None


class CustomerOutcome(BaseModel):
    score: CustomerScore | None = None
    error: ScoringError | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Literal["lead", "risk"]
    ids: list[Annotated[int, Field(ge=0, le=MAX_ENTITY_ID)]] = Field(min_length=1)


class BatchRow(BaseModel):
    entity_id: int | None
    row: int
    result: LeadScore | CustomerScore | None = None
    error: str | None = None


class BatchResponse(BaseModel):
    model: str
    scored: int
    failed: int
    rows: list[BatchRow]
    written_to: str | None = None


class FeedbackRequest(BaseModel):
    """An outcome or a sales rating for a scored entity; ``feedback_id`` makes retries safe."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    feedback_id: str = Field(min_length=1, max_length=200)
    model: Literal["lead", "risk"]
    entity_id: int = Field(ge=0, le=MAX_ENTITY_ID)
    label: Literal[0, 1] | None = None
    rating: int | None = Field(default=None, ge=1, le=5)

    @model_validator(mode="after")
    def label_or_rating(self) -> FeedbackRequest:
        if self.label is None and self.rating is None:
            raise ValueError("give a label (0/1), a rating (1-5) or both")
        return self


class FeedbackAck(BaseModel):
    feedback_id: str
    status: Literal["recorded", "duplicate"]
    score: float | None
    band: str | None
    model_version: str | None


class ModelInfo(BaseModel):
    model: str
    version: str
    bento_model: str
    feature_service: str
    threshold: float
    bands: dict[str, float]
