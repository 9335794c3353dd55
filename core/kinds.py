"""The two models leadrisk ships. Everything that differs between them is data or a method here.

Each kind names its registered model, its Feast FeatureService, its entity and label tables, the
metric its promotion gate compares, how its decision threshold and bands are chosen, and the
response fields of its score. Callers ask the kind instead of testing which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import precision_recall_curve

from core.scoring import Band
from core.settings import TrainingSettings

LEAD_BANDS = (("A", 0.8), ("B", 0.6), ("C", 0.3))  # band -> score quantile on out-of-fold scores
RISK_SEGMENTS = ("Low", "Medium", "High")


def threshold_max_f1(y: np.ndarray, score: np.ndarray) -> float:
    """Business rule 'balanced': the threshold that maximizes F1 (precision and recall alike)."""
    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def threshold_for_recall(y: np.ndarray, score: np.ndarray, min_recall: float) -> float:
    """Business rule 'coverage': the highest threshold that still catches ``min_recall``."""
    precision, recall, thresholds = precision_recall_curve(y, score)
    ok = np.where(recall[:-1] >= min_recall)[0]
    return float(thresholds[ok[-1]]) if len(ok) else float(thresholds[0])


@dataclass(frozen=True)
class ModelKind:
    """What one model is trained on, registered as and answers with."""

    key: str  # the CLI's and the API's name for it
    registered_name: str  # MLflow registered model and BentoML model name
    feature_service: str  # the Feast FeatureService both training and serving read
    entity_key: str
    entity_table: str  # canonical table of the entities (features/tables.py)
    label: str
    labels_table: str  # canonical table of the labels (features/tables.py)
    label_time: str
    score_field: str  # response field holding the calibrated probability
    category_field: str  # response field holding the band or segment
    has_patterns: bool  # whether transaction-pattern cuts are learned (off-boarding rules)
    scores_raw_payloads: bool  # whether entities not in the store can be scored from raw fields

    def gate_metric(self, cfg: TrainingSettings) -> str:
        raise NotImplementedError

    def targets(self, cfg: TrainingSettings) -> dict[str, float]:
        raise NotImplementedError

    def decision_rules(
        self, oof: np.ndarray, y: np.ndarray, cfg: TrainingSettings
    ) -> tuple[float, list[Band]]:
        """Threshold and bands, chosen on out-of-fold scores of the training split only."""
        raise NotImplementedError

    def threshold_rule(self, cfg: TrainingSettings) -> str:
        """The decision rule in words, for the model metadata and the MLflow run."""
        raise NotImplementedError


class LeadKind(ModelKind):
    """Lead conversion: a threshold by the configured business rule, A-D bands by quantile."""

    def gate_metric(self, cfg: TrainingSettings) -> str:
        return cfg.gate_metric_lead

    def targets(self, cfg: TrainingSettings) -> dict[str, float]:
        return cfg.lead_targets

    def decision_rules(
        self, oof: np.ndarray, y: np.ndarray, cfg: TrainingSettings
    ) -> tuple[float, list[Band]]:
        if cfg.lead_threshold_rule == "recall_at_least":
            threshold = threshold_for_recall(y, oof, cfg.lead_min_recall)
        else:
            threshold = threshold_max_f1(y, oof)
        bands = [Band("D", 0.0)] + [
            Band(name, float(np.quantile(oof, q))) for name, q in reversed(LEAD_BANDS)
        ]
        return threshold, sorted(bands, key=lambda b: b.min_score)

    def threshold_rule(self, cfg: TrainingSettings) -> str:
        if cfg.lead_threshold_rule == "recall_at_least":
            return f"highest threshold with out-of-fold recall >= {cfg.lead_min_recall}"
        return "maximize out-of-fold F1 (equal weight to wasted calls and missed conversions)"


class RiskKind(ModelKind):
    """Customer risk: fixed Low/Medium/High cuts on the calibrated probability; High decides."""

    def gate_metric(self, cfg: TrainingSettings) -> str:
        return cfg.gate_metric_risk

    def targets(self, cfg: TrainingSettings) -> dict[str, float]:
        return cfg.risk_targets

    def decision_rules(
        self, oof: np.ndarray, y: np.ndarray, cfg: TrainingSettings
    ) -> tuple[float, list[Band]]:
        cuts = [0.0, *cfg.risk_segment_thresholds]
        bands = [Band(name, cut) for name, cut in zip(RISK_SEGMENTS, cuts, strict=True)]
        return bands[-1].min_score, bands

    def threshold_rule(self, cfg: TrainingSettings) -> str:
        high = cfg.risk_segment_thresholds[1]
        return f"High segment: calibrated P(suspended) >= {high}"


LEAD = LeadKind(
    key="lead",
    registered_name="lead_scoring",
    feature_service="lead_scoring_v1",
    entity_key="lead_id",
    entity_table="leads",
    label="converted",
    labels_table="lead_labels",
    label_time="created_at",
    score_field="probability",
    category_field="band",
    has_patterns=False,
    scores_raw_payloads=True,
)
RISK = RiskKind(
    key="risk",
    registered_name="customer_risk",
    feature_service="customer_risk_v1",
    entity_key="customer_id",
    entity_table="customers",
    label="suspended",
    labels_table="customer_labels",
    label_time="label_at",
    score_field="p_suspended",
    category_field="segment",
    has_patterns=True,
    scores_raw_payloads=False,
)
MODEL_KINDS: dict[str, ModelKind] = {kind.key: kind for kind in (LEAD, RISK)}
