"""Off-boarding rules shared by the batch job and the service.

A customer is flagged for off-boarding when the model puts them in the High segment *and* their
recent transactions show at least one named pattern. The score says "this looks like customers we
suspended"; the pattern gives compliance a concrete, checkable reason. Each pattern's cut-off is a
percentile of the training population, fixed at training time and saved with the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.columns import Columns, as_float

HIGH = "High"


@dataclass(frozen=True)
class Pattern:
    """A named transaction pattern: a feature above a percentile of the training population."""

    name: str
    feature: str
    percentile: float
    minimum: float = 0.0


PATTERNS = (
    Pattern("many counterparties (90d)", "distinct_counterparties_90d", 95),
    Pattern("high velocity (30d)", "tx_count_30d", 95),
    Pattern("large transfers (30d)", "amount_max_30d", 97),
    Pattern("night-time activity (30d)", "night_share_30d", 95, minimum=0.3),
    Pattern("cross-border activity (30d)", "cross_border_share_30d", 95, minimum=0.3),
    Pattern("failed payments (30d)", "failed_share_30d", 95, minimum=0.1),
)


def pattern_cuts(training_features: pd.DataFrame) -> dict[str, float]:
    """Cut-off of each pattern on the training population."""
    cuts = {}
    for pattern in PATTERNS:
        if pattern.feature in training_features.columns:
            values = training_features[pattern.feature].astype("float64")
            percentile = np.nanpercentile(values, pattern.percentile) if values.notna().any() else 0
            cuts[pattern.name] = max(float(percentile), pattern.minimum)
    return cuts


def matched_patterns(features: pd.DataFrame | Columns, cuts: dict[str, float]) -> list[list[str]]:
    """Per row, the names of the patterns it shows (a missing value shows none)."""
    if not cuts:
        return [[] for _ in range(len(features))]
    by_name = {p.name: p for p in PATTERNS}
    names = list(cuts)
    values = np.column_stack([as_float(features[by_name[name].feature]) for name in names])
    flags = np.nan_to_num(values, nan=0.0) > np.array([cuts[name] for name in names])
    return [[names[j] for j in np.flatnonzero(row)] for row in flags]


def offboarding_rule(segment: str, patterns: list[str], high_threshold: float) -> str | None:
    """The rule that puts a customer on the off-boarding list, or None."""
    if segment != HIGH or not patterns:
        return None
    return f"{HIGH} segment (P >= {high_threshold:.2f}) and " + " + ".join(patterns)
