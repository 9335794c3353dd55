"""Service metrics beside BentoML's own: scores, imputed features, feature-store latency."""

from __future__ import annotations

import bentoml

SCORE = bentoml.metrics.Histogram(
    name="leadrisk_score",
    documentation="Scores served, per model and version",
    labelnames=["model", "version"],
    buckets=[i / 10 for i in range(11)],
)
IMPUTED = bentoml.metrics.Counter(
    name="leadrisk_imputed_features",
    documentation="Features missing in the online store and filled with the training imputation",
    labelnames=["model", "feature"],
)
FEATURE_STORE_LATENCY = bentoml.metrics.Histogram(
    name="leadrisk_feature_store_latency_seconds",
    documentation="Latency of one get_online_features call (one per batch)",
    labelnames=["feature_service"],
    buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
)
BATCH_SIZE = bentoml.metrics.Histogram(
    name="leadrisk_batch_size",
    documentation="Requests served by one feature lookup and one model call",
    labelnames=["model"],
    buckets=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
)
FEATURE_STORE_ERRORS = bentoml.metrics.Counter(
    name="leadrisk_feature_store_errors",
    documentation="Failed online feature reads",
    labelnames=["feature_service"],
)
