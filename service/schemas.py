"""Typed request and response bodies of the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from bentoml.validators import ContentType
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from features.tables import LEAD_ENGAGEMENT_NUMERIC

Variant = Literal["champion", "challenger"]  # who answered: see docs/releases.md
MAX_ENTITY_ID = 2**63 - 1  # entity keys are Feast INT64 values
# Request bodies are validated strictly, as their JSON schema says: "5" is not an integer, true
# is not 1. Responses always carry every field (null where there is no value).
REQUEST = ConfigDict(extra="forbid", strict=True)
RESPONSE = ConfigDict(json_schema_serialization_defaults_required=True)


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: any number with no fractional part (3.0 too), never a bool."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


EntityId = Annotated[int, Field(ge=0, le=MAX_ENTITY_ID), BeforeValidator(_json_integer)]
Flag = Annotated[int, Field(ge=0, le=1), BeforeValidator(_json_integer)]  # true is refused
Rating = Annotated[int, Field(ge=1, le=5), BeforeValidator(_json_integer)]


def _whole(value: float) -> float:
    if not value.is_integer():
        raise ValueError("must be a whole number")
    return value


def number_field(maximum: float | None = None, count: bool = False) -> Any:
    """The type of a non-negative raw-lead number up to ``maximum``; a ``count`` is whole (3 or
    3.0, not 0.5 nor 1e-300, which would make a ratio of it infinite)."""
    if count:
        return Annotated[float, Field(ge=0, le=maximum, multiple_of=1), AfterValidator(_whole)]
    return Annotated[float, Field(ge=0, le=maximum)]


COUNTS = frozenset({"total_visits"})


class RawLead(BaseModel):
    """A lead not yet in the feature store, as the web form and tracking platform describe it.
    Every field is optional: a missing one is imputed and listed in ``imputed_features``."""

    model_config = REQUEST

    lead_origin: str | None = None
    lead_source: str | None = None
    country: str | None = None
    specialization: str | None = None
    how_did_you_hear: str | None = None
    occupation: str | None = None
    what_matters_most: str | None = None
    city: str | None = None
    do_not_email: Flag = 0
    do_not_call: Flag = 0
    search: Flag = 0
    newspaper_article: Flag = 0
    x_education_forums: Flag = 0
    newspaper: Flag = 0
    digital_advertisement: Flag = 0
    through_recommendations: Flag = 0
    free_copy_of_interview: Flag = 0
    total_visits: number_field(count=True) | None = None
    total_time_on_website: number_field() | None = None
    page_views_per_visit: number_field() | None = None
    last_activity: str | None = None
    last_notable_activity: str | None = None


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("null is not a value here; leave the field out")
    return value


# A field a request may leave out but not send as null (no null in its JSON schema either);
# in Python it is None when left out
def omittable() -> Any:
    return Field(default=None, json_schema_extra=lambda schema: schema.pop("default", None))


class LeadById(BaseModel):
    """A lead stored in the feature store."""

    model_config = REQUEST

    lead_id: EntityId


class NewLead(BaseModel):
    """A lead not yet stored, scored from its raw fields."""

    model_config = REQUEST

    lead: RawLead


class LeadRequest(BaseModel):
    """What ``/score_lead`` accepts: a ``LeadById`` or a ``NewLead``, i.e. exactly one of
    ``lead_id`` and ``lead`` (the OpenAPI document gives it as that oneOf)."""

    model_config = REQUEST

    lead_id: EntityId = omittable()
    lead: RawLead = omittable()

    _not_null = field_validator("lead_id", "lead", mode="before")(_not_null)

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
    numeric = set(LEAD_ENGAGEMENT_NUMERIC)
    unknown = sorted({name for name, _ in caps} - numeric)
    if unknown:
        raise ValueError(
            f"service.raw_lead_max names {unknown}; the numeric lead fields are {sorted(numeric)}"
        )
    fields: dict = {
        name: (number_field(maximum, count=name in COUNTS) | None, None) for name, maximum in caps
    }
    return create_model("RawLead", __base__=RawLead, __doc__=RawLead.__doc__, **fields)


def bounded_new_lead(raw_lead_max: Mapping[str, float]) -> type[NewLead]:
    """``NewLead`` whose raw lead is ``bounded_raw_lead(raw_lead_max)``."""
    raw = bounded_raw_lead(raw_lead_max)
    return create_model("NewLead", __base__=NewLead, __doc__=NewLead.__doc__, lead=(raw, ...))


@lru_cache
def _bounded_lead_request(raw: type[RawLead]) -> type[LeadRequest]:
    return create_model(
        "LeadRequest",
        __base__=LeadRequest,
        __doc__=LeadRequest.__doc__,
        lead=(raw, omittable()),
    )


class CustomerRequest(BaseModel):
    """Score a customer stored in the feature store."""

    model_config = REQUEST

    customer_id: EntityId


class ReasonOut(BaseModel):
    model_config = RESPONSE

    feature: str
    value: str | float | int | None
    contribution: float  # of the feature and of the correlated features grouped with it
    grouped_with: list[str] = []
    text: str


class LeadScore(BaseModel):
    model_config = RESPONSE

    request_id: str
    lead_id: int | None
    probability: float
    band: str
    reasons: list[ReasonOut]
    model: str
    model_version: str
    variant: Variant = "champion"
    imputed_features: list[str]


class CustomerScore(BaseModel):
    model_config = RESPONSE

    request_id: str
    customer_id: int
    p_suspended: float
    segment: str
    offboard: bool
    offboard_rule: str | None
    reasons: list[ReasonOut]
    model: str
    model_version: str
    variant: Variant = "champion"
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
    """Score many stored entities of one model at once."""

    model_config = REQUEST

    model: Literal["lead", "risk"]
    ids: list[EntityId] = Field(min_length=1)


class BatchRow(BaseModel):
    model_config = RESPONSE

    entity_id: int | None
    row: int
    result: LeadScore | CustomerScore | None = None
    error: str | None = None


class BatchResponse(BaseModel):
    model_config = RESPONSE

    model: str
    scored: int
    failed: int
    rows: list[BatchRow]
    written_to: str | None = None


class BatchFileRequest(BaseModel):
    """A CSV or parquet upload (multipart ``file``) and the model to score it with."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    file: Annotated[Path, ContentType("application/octet-stream")]
    model: Literal["lead", "risk"] = "lead"


class FeedbackAbout(BaseModel):
    """What every feedback names: its id (retries are safe) and the scored entity."""

    model_config = ConfigDict(**REQUEST, protected_namespaces=())

    feedback_id: str = Field(min_length=1, max_length=200)
    model: Literal["lead", "risk"]
    entity_id: EntityId


class FeedbackRequest(FeedbackAbout):
    """An outcome or a sales rating for a scored entity: a label, a rating or both (the OpenAPI
    document gives it as the oneOf ``FeedbackOutcome``, ``FeedbackRating``)."""

    label: Flag = omittable()
    rating: Rating = omittable()

    _not_null = field_validator("label", "rating", mode="before")(_not_null)

    @model_validator(mode="after")
    def label_or_rating(self) -> FeedbackRequest:
        if self.label is None and self.rating is None:
            raise ValueError("give a label (0/1), a rating (1-5) or both")
        return self


class FeedbackOutcome(FeedbackAbout):
    """The outcome sales saw (converted / suspended), with a rating or not."""

    label: Flag
    rating: Rating = omittable()


class FeedbackRating(FeedbackAbout):
    """A sales rating of a scored entity, with no outcome yet."""

    rating: Rating


class FeedbackAck(BaseModel):
    model_config = ConfigDict(**RESPONSE, protected_namespaces=())

    feedback_id: str
    status: Literal["recorded", "duplicate"]
    score: float | None
    band: str | None
    model_version: str | None


class ModelInfo(BaseModel):
    model_config = ConfigDict(**RESPONSE, protected_namespaces=())

    model: str
    version: str  # the champion's
    bento_model: str
    feature_service: str
    threshold: float
    bands: dict[str, float]
    challenger_version: str | None
    release_mode: Literal["off", "shadow", "ab"]
    ab_share: float
    release_revision: int


class FeatureStoreStatus(BaseModel):
    model_config = RESPONSE

    ok: bool
    error: str | None


class ServiceStatus(BaseModel):
    """The models being served and whether the online feature store answers."""

    model_config = RESPONSE

    models: list[ModelInfo]
    feature_store: FeatureStoreStatus


class ValidationIssue(BaseModel):
    """One problem pydantic found in a request body."""

    model_config = ConfigDict(**RESPONSE, extra="allow")

    type: str
    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: str = Field(description="What went wrong, for a person to read.")
    field: str | None = Field(
        description="The request field, header or body part to blame; null when none is."
    )
    request_id: str = Field(description="Also in the X-Request-ID header; quote it to support.")
    detail: list[ValidationIssue] | None = Field(
        default=None, description="Every invalid field, on a 422."
    )
