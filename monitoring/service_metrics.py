"""The service's request metrics, read once from BentoML's Prometheus exposition (``/metrics``)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

REQUEST_DURATION = "bentoml_service_request_duration_seconds"
REQUEST_TOTAL = "bentoml_service_request_total"
PROBE_ENDPOINTS = frozenset({"/metrics", "/healthz", "/livez", "/readyz"})


@dataclass
class EndpointCounts:
    """Cumulative counts of one endpoint since the server started."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx answers
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))


def endpoint_counts(text: str) -> dict[str, EndpointCounts]:
    """Requests, 5xx answers and the latency histogram of every endpoint (probes included)."""
    counts: dict[str, EndpointCounts] = defaultdict(EndpointCounts)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            endpoint = sample.labels.get("endpoint")
            if endpoint is None:
                continue
            if sample.name == f"{REQUEST_DURATION}_bucket":
                counts[endpoint].buckets[float(sample.labels["le"])] += sample.value
            elif sample.name == REQUEST_TOTAL:
                counts[endpoint].requests += sample.value
                if sample.labels.get("http_response_code", "").startswith("5"):
                    counts[endpoint].errors += sample.value
    return dict(counts)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Quantile from cumulative bucket counts, interpolated inside a bucket like Prometheus."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            break
        lower, below = bound, count
    if math.isinf(bound):
        return lower
    return lower + (bound - lower) * (rank - below) / (count - below)
