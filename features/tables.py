"""Canonical tables: the typed parquet contract between data adapters and the feature store.

Every adapter (real files or the synthetic generator) writes these tables and nothing else; the
Feast sources in ``features/definitions.py`` read them. Labels live in their own tables so that a
label can never be read as a feature.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    """A canonical table: file name, typed columns, key and event-time column."""

    name: str
    schema: pa.Schema
    key: str
    timestamp: str

    @property
    def filename(self) -> str:
        return f"{self.name}.parquet"

    @property
    def columns(self) -> list[str]:
        return self.schema.names


def _schema(fields: dict[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype in fields.items()])


LEAD_CATEGORICAL = [
    "lead_origin",
    "lead_source",
    "country",
    "specialization",
    "how_did_you_hear",
    "occupation",
    "what_matters_most",
    "city",
]
LEAD_FLAGS = [
    "do_not_email",
    "do_not_call",
    "search",
    "newspaper_article",
    "x_education_forums",
    "newspaper",
    "digital_advertisement",
    "through_recommendations",
    "free_copy_of_interview",
]
LEAD_ENGAGEMENT_NUMERIC = ["total_visits", "total_time_on_website", "page_views_per_visit"]
LEAD_ENGAGEMENT_CATEGORICAL = ["last_activity", "last_notable_activity"]
LEAD_SALES_CATEGORICAL = [
    "tags",
    "lead_quality",
    "lead_profile",
    "asymmetrique_activity_index",
    "asymmetrique_profile_index",
]
LEAD_SALES_NUMERIC = ["asymmetrique_activity_score", "asymmetrique_profile_score"]

LEADS = TableSpec(
    name="leads",
    key="lead_id",
    timestamp="created_at",
    schema=_schema(
        {
            "lead_id": pa.int64(),
            "created_at": TS,
            **{c: pa.string() for c in LEAD_CATEGORICAL},
            **{c: pa.int64() for c in LEAD_FLAGS},
            **{c: pa.float64() for c in LEAD_ENGAGEMENT_NUMERIC},
            **{c: pa.string() for c in LEAD_ENGAGEMENT_CATEGORICAL},
            **{c: pa.string() for c in LEAD_SALES_CATEGORICAL},
            **{c: pa.float64() for c in LEAD_SALES_NUMERIC},
        }
    ),
)

LEAD_LABELS = TableSpec(
    name="lead_labels",
    key="lead_id",
    timestamp="created_at",
    schema=_schema({"lead_id": pa.int64(), "created_at": TS, "converted": pa.int64()}),
)

CUSTOMER_CATEGORICAL = ["country", "age_band", "kyc_level", "product", "acquisition_channel"]
CUSTOMER_NUMERIC = ["tenure_months", "init_balance"]

CUSTOMERS = TableSpec(
    name="customers",
    key="customer_id",
    timestamp="profile_at",
    schema=_schema(
        {
            "customer_id": pa.int64(),
            "profile_at": TS,
            **{c: pa.string() for c in CUSTOMER_CATEGORICAL},
            **{c: pa.float64() for c in CUSTOMER_NUMERIC},
        }
    ),
)

CUSTOMER_LABELS = TableSpec(
    name="customer_labels",
    key="customer_id",
    timestamp="label_at",
    schema=_schema(
        {
            "customer_id": pa.int64(),
            "label_at": TS,
            "suspended": pa.int64(),
            "cohort": pa.string(),
        }
    ),
)

TRANSACTIONS = TableSpec(
    name="transactions",
    key="transaction_id",
    timestamp="event_timestamp",
    schema=_schema(
        {
            "transaction_id": pa.int64(),
            "customer_id": pa.int64(),
            "counterparty_id": pa.int64(),
            "amount": pa.float64(),
            "direction": pa.string(),
            "type": pa.string(),
            "counterparty_country": pa.string(),
            "customer_country": pa.string(),
            "status": pa.string(),
            "event_timestamp": TS,
        }
    ),
)

LABELED, UNLABELED = "labeled", "unlabeled"
DIRECTIONS = ("in", "out")
FAILED_STATUS = "failed"

ALL_TABLES = (LEADS, LEAD_LABELS, CUSTOMERS, CUSTOMER_LABELS, TRANSACTIONS)
TABLES = {spec.name: spec for spec in ALL_TABLES}


class TableError(ValueError):
    """A table does not match its canonical contract."""


def to_arrow(frame: pd.DataFrame, spec: TableSpec) -> pa.Table:
    """Cast a frame to the canonical schema, naming the column that does not fit."""
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise TableError(f"{spec.name}: missing columns {missing}")
    arrays = []
    for field in spec.schema:
        try:
            arrays.append(pa.array(frame[field.name], type=field.type, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as err:
            raise TableError(
                f"{spec.name}: column {field.name!r} is not {field.type}: {err}"
            ) from err
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def write_table(frame: pd.DataFrame, spec: TableSpec, tables_dir: Path) -> Path:
    """Write a canonical table atomically: a temporary file, then a rename."""
    table = to_arrow(frame, spec)
    return write_arrow(table, spec, tables_dir)


def write_arrow(table: pa.Table, spec: TableSpec, tables_dir: Path) -> Path:
    tables_dir.mkdir(parents=True, exist_ok=True)
    target = tables_dir / spec.filename
    fd, tmp = tempfile.mkstemp(dir=tables_dir, prefix=f".{spec.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def read_table(spec: TableSpec, tables_dir: Path) -> pd.DataFrame:
    path = tables_dir / spec.filename
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `leadrisk data prepare` first")
    return pd.read_parquet(path)


SOURCES_FILE = "sources.json"


def record_sources(tables_dir: Path, names: list[str], source: str) -> None:
    """Note which source wrote the tables ``names`` (lineage for training runs)."""
    recorded = _recorded_sources(tables_dir) | dict.fromkeys(names, source)
    (tables_dir / SOURCES_FILE).write_text(json.dumps(recorded, indent=2, sort_keys=True))


def source_of(spec: TableSpec, tables_dir: Path) -> str:
    """The source that last wrote ``spec``'s table, "unknown" if none was recorded."""
    return _recorded_sources(tables_dir).get(spec.name, "unknown")


def _recorded_sources(tables_dir: Path) -> dict[str, str]:
    path = tables_dir / SOURCES_FILE
    return json.loads(path.read_text()) if path.exists() else {}
