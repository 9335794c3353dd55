"""X Education leads (Leads.csv) -> canonical ``leads`` and ``lead_labels`` tables.

The file has no dates. Lead Number grows with time in the CRM, so leads are ordered by it and
given creation timestamps spread evenly over ``x_education_span_days`` from the anchor date:
deterministic, and the order of arrival is preserved for point-in-time joins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features import tables
from features.sources.csv_input import check_rows, read_csv_checked

UNANSWERED = "Select"

CATEGORICAL_COLUMNS = {
    "Lead Origin": "lead_origin",
    "Lead Source": "lead_source",
    "Country": "country",
    "Specialization": "specialization",
    "How did you hear about X Education": "how_did_you_hear",
    "What is your current occupation": "occupation",
    "What matters most to you in choosing a course": "what_matters_most",
    "City": "city",
    "Last Activity": "last_activity",
    "Last Notable Activity": "last_notable_activity",
    "Tags": "tags",
    "Lead Quality": "lead_quality",
    "Lead Profile": "lead_profile",
    "Asymmetrique Activity Index": "asymmetrique_activity_index",
    "Asymmetrique Profile Index": "asymmetrique_profile_index",
}
FLAG_COLUMNS = {
    "Do Not Email": "do_not_email",
    "Do Not Call": "do_not_call",
    "Search": "search",
    "Newspaper Article": "newspaper_article",
    "X Education Forums": "x_education_forums",
    "Newspaper": "newspaper",
    "Digital Advertisement": "digital_advertisement",
    "Through Recommendations": "through_recommendations",
    "A free copy of Mastering The Interview": "free_copy_of_interview",
}
NUMERIC_COLUMNS = {
    "TotalVisits": "total_visits",
    "Total Time Spent on Website": "total_time_on_website",
    "Page Views Per Visit": "page_views_per_visit",
    "Asymmetrique Activity Score": "asymmetrique_activity_score",
    "Asymmetrique Profile Score": "asymmetrique_profile_score",
}
ID_COLUMN, LABEL_COLUMN = "Lead Number", "Converted"
# Constant ("No") in the published file; they carry no information and are dropped.
CONSTANT_COLUMNS = [
    "Magazine",
    "Receive More Updates About Our Courses",
    "Update me on Supply Chain Content",
    "Get updates on DM Content",
    "I agree to pay the amount through cheque",
]


def load(path: Path, anchor: str, span_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (leads, lead_labels) as canonical frames."""
    raw = read_csv_checked(
        path,
        numeric=list(NUMERIC_COLUMNS),
        integer=[ID_COLUMN, LABEL_COLUMN],
        text=[*CATEGORICAL_COLUMNS, *FLAG_COLUMNS],
    )
    _check_unique(path, raw[ID_COLUMN], ID_COLUMN)
    _check_binary(path, raw[LABEL_COLUMN], LABEL_COLUMN)
    leads = pd.DataFrame({"lead_id": raw[ID_COLUMN]})
    leads["created_at"] = _creation_times(raw[ID_COLUMN], anchor, span_days)
    for source, target in CATEGORICAL_COLUMNS.items():
        leads[target] = _clean_category(raw[source])
    for source, target in FLAG_COLUMNS.items():
        leads[target] = _yes_no(path, raw[source], source)
    for source, target in NUMERIC_COLUMNS.items():
        leads[target] = raw[source]
    labels = leads[["lead_id", "created_at"]].assign(converted=raw[LABEL_COLUMN].to_numpy())
    return leads[tables.LEADS.columns], labels[tables.LEAD_LABELS.columns]


def _creation_times(lead_numbers: pd.Series, anchor: str, span_days: int) -> pd.Series:
    start = datetime.fromisoformat(anchor).replace(tzinfo=UTC)
    rank = lead_numbers.rank(method="first").to_numpy() - 1
    step = timedelta(days=span_days) / max(len(lead_numbers), 1)
    seconds = np.floor(rank * step.total_seconds()).astype("int64")
    return pd.Series(
        pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s"), index=lead_numbers.index
    )


def _clean_category(values: pd.Series) -> pd.Series:
    """'Select' means unanswered; case variants ('google'/'Google') collapse to one spelling."""
    cleaned = values.str.strip().replace({UNANSWERED: None})
    canonical = {}
    for value, _ in cleaned.value_counts().items():
        canonical.setdefault(value.casefold(), value)
    return cleaned.map(lambda v: canonical[v.casefold()] if isinstance(v, str) else None)


def _yes_no(path: Path, values: pd.Series, column: str) -> pd.Series:
    mapped = values.str.strip().str.casefold().map({"yes": 1, "no": 0})
    check_rows(path, mapped.isna(), values, column, "Yes or No")
    return mapped.astype("int64")


def _check_unique(path: Path, values: pd.Series, column: str) -> None:
    check_rows(path, values.duplicated(), values, column, "a unique id")


def _check_binary(path: Path, values: pd.Series, column: str) -> None:
    check_rows(path, ~values.isin([0, 1]), values, column, "0 or 1")
