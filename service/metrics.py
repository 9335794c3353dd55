"""Service metrics beside BentoML's own: scores, imputed features, feature-store latency.

Plain ``prometheus_client`` metrics: ``bentoml serve`` starts every serving process with
``PROMETHEUS_MULTIPROC_DIR`` set, so their values land in the shared multiprocess files that
BentoML's ``/metrics`` collects from all processes."""

from __future__ import annotations

import prometheus_client

SCORE = prometheus_client.Histogram(
    name="leadrisk_score",
    documentation="Scores served, per model and version",
    labelnames=["model", "version"],
    buckets=[i / 10 for i in range(11)],
)
IMPUTED = prometheus_client.Counter(
    name="leadrisk_imputed_features",
    documentation="Features missing in the online store and filled with the training imputation",
    labelnames=["model", "feature"],
)
FEATURE_STORE_LATENCY = prometheus_client.Histogram(
    name="leadrisk_feature_store_latency_seconds",
    documentation="Latency of one get_online_features call (one per batch)",
    labelnames=["feature_service"],
    buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
)
BATCH_SIZE = prometheus_client.Histogram(
    name="leadrisk_batch_size",
    documentation="Requests served by one feature lookup and one model call",
    labelnames=["model"],
    buckets=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
)
VARIANT_ROWS = prometheus_client.Counter(
    name="leadrisk_variant_rows",
    documentation="Rows answered per model and release variant (champion, challenger)",
    labelnames=["model", "variant"],
)
VARIANT_ERRORS = prometheus_client.Counter(
    name="leadrisk_variant_errors",
    documentation="Rows a release variant failed to score (the champion answered them)",
    labelnames=["model", "variant"],
)
VARIANT_LATENCY = prometheus_client.Histogram(
    name="leadrisk_variant_model_seconds",
    documentation="Time of one model call (a batch's rows of one variant), per release variant",
    labelnames=["model", "variant"],
    buckets=[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
)
SHADOW_DROPPED = prometheus_client.Counter(
    name="leadrisk_shadow_dropped_rows",
    documentation="Rows the shadow challenger did not score (queue full or a failure)",
    labelnames=["model"],
)
FEATURE_STORE_ERRORS = prometheus_client.Counter(
    name="leadrisk_feature_store_errors",
    documentation="Failed online feature reads",
    labelnames=["feature_service"],
)
