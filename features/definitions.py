"""The feature catalog: entities, sources, views and services, read top to bottom as a contract.

``lead_scoring_v1`` and ``customer_risk_v1`` are the single source of each model's feature list:
training asks Feast for exactly these, and serving reads the same services online. The sales
assessment columns (Tags, Lead Quality, Lead Profile, Asymmetrique*) are stored in their own view
and are never part of a scoring service: sales fill them in after contacting the lead, and Tags and
Lead Quality encode the outcome itself (see docs/features.md).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

from core.kinds import LEAD, RISK
from core.settings import Settings
from features import aggregates, tables

LEAD_SCORING_SERVICE = LEAD.feature_service
CUSTOMER_RISK_SERVICE = RISK.feature_service
NO_TTL = timedelta(0)  # snapshots are exact up to the last data day; nothing expires
FEAST_TYPES = {"int": Int64, "float": Float64, "str": String}

LEAD_DERIVED = {"time_per_visit": Float64, "total_page_views": Float64, "has_visited": Int64}


def _fields(names: list[str], dtype) -> list[Field]:
    return [Field(name=name, dtype=dtype) for name in names]


def _file_source(name: str, path: Path, timestamp: str) -> FileSource:
    return FileSource(name=name, path=str(path), timestamp_field=timestamp)


def definitions(settings: Settings) -> dict[str, object]:
    """Every Feast object of the repository, keyed by name, with paths from settings."""
    tables_dir = settings.tables_dir
    lead = Entity(name="lead", join_keys=["lead_id"], value_type=ValueType.INT64)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)

    leads_source = _file_source("leads_source", tables_dir / tables.LEADS.filename, "created_at")
    customers_source = _file_source(
        "customers_source", tables_dir / tables.CUSTOMERS.filename, "profile_at"
    )
    snapshots_source = _file_source(
        "customer_transaction_snapshots_source",
        tables_dir / aggregates.SNAPSHOTS_FILE,
        aggregates.SNAPSHOT_TIMESTAMP,
    )

    lead_profile = FeatureView(
        name="lead_profile",
        entities=[lead],
        ttl=NO_TTL,
        source=leads_source,
        schema=[
            *_fields(tables.LEAD_CATEGORICAL, String),
            *_fields(tables.LEAD_FLAGS, Int64),
        ],
        description="What the lead told us on the form, and how they reached us.",
    )
    lead_engagement = FeatureView(
        name="lead_engagement",
        entities=[lead],
        ttl=NO_TTL,
        source=leads_source,
        schema=[
            *_fields(tables.LEAD_ENGAGEMENT_NUMERIC, Float64),
            *_fields(tables.LEAD_ENGAGEMENT_CATEGORICAL, String),
        ],
        description="Website and campaign engagement tracked by the marketing platform.",
    )
    lead_sales_assessment = FeatureView(
        name="lead_sales_assessment",
        entities=[lead],
        ttl=NO_TTL,
        source=leads_source,
        online=False,
        schema=[
            *_fields(tables.LEAD_SALES_CATEGORICAL, String),
            *_fields(tables.LEAD_SALES_NUMERIC, Float64),
        ],
        description="Filled in by sales after contact; encodes the outcome. Never scored on.",
    )

    # Feast's decorator re-homes the function it wraps, so each call wraps a fresh one. Python
    # mode: columns in and out are lists, which spares the online read a DataFrame round trip
    # (pandas mode made a single-lead read several times slower).
    @on_demand_feature_view(
        sources=[lead_engagement],
        schema=[Field(name=name, dtype=dtype) for name, dtype in LEAD_DERIVED.items()],
        mode="python",
        description="Ratios computed at request time, also for leads not yet in the store.",
    )
    def lead_engagement_derived(inputs: dict[str, list]) -> dict[str, list]:
        # Self-contained: Feast re-executes this source, and the service applies the registered
        # copy to raw payloads of leads not yet in the store. Missing values (None or NaN) stay
        # missing (NaN), except that no visits means none derived from them.
        nan = float("nan")

        def number(value):
            return nan if value is None else float(value)

        time_per_visit, total_page_views, has_visited = [], [], []
        for visits, seconds, per_visit in zip(
            inputs["total_visits"],
            inputs["total_time_on_website"],
            inputs["page_views_per_visit"],
            strict=True,
        ):
            visits, seconds, per_visit = number(visits), number(seconds), number(per_visit)
            visited = visits > 0  # False for NaN
            time_per_visit.append(seconds / visits if visited else 0.0)
            total_page_views.append(visits * per_visit)
            has_visited.append(int(visited))
        return {
            "time_per_visit": time_per_visit,
            "total_page_views": total_page_views,
            "has_visited": has_visited,
        }

    customer_profile = FeatureView(
        name="customer_profile",
        entities=[customer],
        ttl=NO_TTL,
        source=customers_source,
        schema=[
            *_fields(tables.CUSTOMER_CATEGORICAL, String),
            *_fields(tables.CUSTOMER_NUMERIC, Float64),
        ],
        description="KYC and onboarding attributes of the customer.",
    )
    customer_transactions = FeatureView(
        name="customer_transactions",
        entities=[customer],
        ttl=NO_TTL,
        source=snapshots_source,
        schema=[
            Field(name=name, dtype=FEAST_TYPES[kind])
            for name, kind in aggregates.feature_names(settings.feature_store.windows_days).items()
        ],
        description="Daily snapshots of windowed transaction aggregates (features/aggregates.py).",
    )

    lead_scoring = FeatureService(
        name=LEAD_SCORING_SERVICE,
        features=[lead_profile, lead_engagement, lead_engagement_derived],
        description="Features of the lead conversion model.",
    )
    customer_risk = FeatureService(
        name=CUSTOMER_RISK_SERVICE,
        features=[customer_profile, customer_transactions],
        description="Features of the customer suspension-risk model.",
    )
    objects = [
        lead,
        customer,
        lead_profile,
        lead_engagement,
        lead_sales_assessment,
        lead_engagement_derived,
        customer_profile,
        customer_transactions,
        lead_scoring,
        customer_risk,
    ]
    return {obj.name: obj for obj in objects}
