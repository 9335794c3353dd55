"""Customer-risk outputs: the segment profile report and the off-boarding list.

The selection rule lives in ``leadrisk/risk_rules.py`` so that the service flags exactly the
customers this batch job lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core import risk_rules
from core.kinds import RISK
from core.progress import Report
from core.scoring import ScoringModel
from core.settings import Settings
from features import store as feature_store
from features import tables
from training import dataset, registry


def champion(settings: Settings) -> tuple[str, ScoringModel]:
    client = registry.connect(settings)
    version = registry.alias_version(client, RISK.registered_name, registry.CHAMPION)
    if version is None:
        raise registry.RegistryError("customer_risk has no champion: run `leadrisk train risk`")
    return version.version, registry.load_version(RISK.registered_name, version.version)


def _cohort_features(settings: Settings, cohort: str) -> pd.DataFrame:
    store = feature_store.open_store(settings)
    entities = dataset.entity_frame(RISK, settings, cohort=cohort)
    features = feature_store.historical_features(
        store, RISK.feature_service, entities[[RISK.entity_key, "event_timestamp"]]
    )
    return features.sort_values(RISK.entity_key).reset_index(drop=True)


def offboarding_list(settings: Settings, out: Path | None = None, progress: Report = print) -> Path:
    """Score the unlabeled cohort; write the customers to off-board with their rule and the
    features that raised their risk most."""
    version, model = champion(settings)
    cohort = _cohort_features(settings, tables.UNLABELED)
    progress(f"scoring {len(cohort):,} unlabeled customers with customer_risk v{version}")
    scores = model.predict_proba(cohort)
    segments = model.band(scores)
    patterns = risk_rules.matched_patterns(cohort, model.metadata["pattern_cuts"])
    high = model.bands[-1].min_score
    rules = [
        risk_rules.offboarding_rule(s, p, high) for s, p in zip(segments, patterns, strict=True)
    ]
    selected = np.array([rule is not None for rule in rules])
    picked = cohort[selected]
    reasons = (
        model.raising_reasons(picked, settings.training.offboard_top_reasons) if len(picked) else []
    )
    rows = pd.DataFrame(
        {
            "customer_id": picked[RISK.entity_key].to_numpy(),
            "p_suspended": scores[selected],
            "segment": np.array(segments)[selected],
            "rule": [rule for rule in rules if rule is not None],
            "top_reasons": ["; ".join(r.text for r in row) for row in reasons],
            "model_version": version,
        }
    ).sort_values("p_suspended", ascending=False)
    out = out or settings.reports_dir / "offboarding.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        rows.to_parquet(out, index=False)
    else:
        rows.to_csv(out, index=False)
    progress(
        f"{len(rows):,} of {len(cohort):,} customers to off-board "
        f"({segments.count(risk_rules.HIGH):,} in the High segment): {out}"
    )
    return out


def segment_profile(settings: Settings, top_features: int = 6) -> pd.DataFrame:
    """Per segment on the labeled population: size, suspension rate, typical feature values."""
    _, model = champion(settings)
    labeled = _cohort_features(settings, tables.LABELED)
    labels = dataset.entity_frame(RISK, settings).set_index(RISK.entity_key)[RISK.label]
    segments = pd.Series(model.band(model.predict_proba(labeled)), index=labeled.index)
    important = (
        pd.Series(np.abs(model.contributions(labeled)).mean(axis=0), index=model.features)
        .sort_values(ascending=False)
        .index[:top_features]
    )
    numeric_important = [f for f in important if f in model.numeric]
    frame = labeled.assign(
        segment=segments, suspended=labels.reindex(labeled[RISK.entity_key]).to_numpy()
    )
    profile = frame.groupby("segment").agg(
        customers=("segment", "size"), suspension_rate=("suspended", "mean")
    )
    medians = frame.groupby("segment")[numeric_important].median().add_prefix("median_")
    order = [b.name for b in model.bands]
    return profile.join(medians).reindex([s for s in order if s in profile.index])
