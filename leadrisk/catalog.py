"""The two models leadrisk ships: names, FeatureServices, entity keys and labels in one place."""

from __future__ import annotations

from dataclasses import dataclass

from features import tables
from features.definitions import CUSTOMER_RISK_SERVICE, LEAD_SCORING_SERVICE


@dataclass(frozen=True)
class ModelKind:
    key: str
    registered_name: str
    feature_service: str
    entity_key: str
    label: str
    labels_table: tables.TableSpec
    label_time: str


LEAD = ModelKind(
    key="lead",
    registered_name="lead_scoring",
    feature_service=LEAD_SCORING_SERVICE,
    entity_key="lead_id",
    label="converted",
    labels_table=tables.LEAD_LABELS,
    label_time="created_at",
)
RISK = ModelKind(
    key="risk",
    registered_name="customer_risk",
    feature_service=CUSTOMER_RISK_SERVICE,
    entity_key="customer_id",
    label="suspended",
    labels_table=tables.CUSTOMER_LABELS,
    label_time="label_at",
)
MODEL_KINDS = {kind.key: kind for kind in (LEAD, RISK)}
