"""Alert rules: compare monitoring facts with the thresholds in settings and notify.

Each firing alert is one JSON log line on the ``leadrisk.alerts`` logger and, when
``monitoring.webhook_url`` is set, one JSON POST to it. A failing webhook is logged, never raised:
alerting must not break the job that computed the facts.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from core.settings import Settings
from monitoring.service_metrics import PROBE_ENDPOINTS, endpoint_counts, histogram_quantile

logger = logging.getLogger("leadrisk.alerts")

WEBHOOK_TIMEOUT_S = 5
RULES = {  # fact -> MonitoringSettings field; an alert fires when the fact is above it
    "drifted_share": "drifted_share_alert",
    "psi": "psi_alert",
    "missing_feature_rate": "missing_rate_alert",
    "p99_latency_ms": "p99_latency_ms_alert",
    "error_rate": "error_rate_alert",
    "freshness_hours": "freshness_hours_alert",
    "kpi_drop": "kpi_drop_alert",
}


@dataclass(frozen=True)
class Alert:
    rule: str
    value: float
    threshold: float
    subject: str | None
    model: str | None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def message(self) -> str:
        about = f" ({self.subject})" if self.subject else ""
        model = f"{self.model}: " if self.model else ""
        return f"{model}{self.rule}{about} is {self.value:.4g}, above {self.threshold:.4g}"

    def payload(self) -> dict[str, Any]:
        return {"event": "leadrisk.alert", **asdict(self), "message": self.message}


def evaluate(settings: Settings, facts: Mapping[str, Any], notify: bool = True) -> list[Alert]:
    """Alerts for facts above their thresholds; absent or None facts are skipped.

    ``freshness_hours`` may be a number or ``{feature view: hours}``; ``model`` names the subject.
    """
    model = facts.get("model")
    alerts = []
    for fact, setting in RULES.items():
        threshold = float(getattr(settings.monitoring, setting))
        value = facts.get(fact)
        values = value.items() if isinstance(value, Mapping) else [(None, value)]
        alerts += [
            Alert(fact, float(v), threshold, subject, model)
            for subject, v in values
            if v is not None and float(v) > threshold
        ]
    if notify:
        for alert in alerts:
            send(alert, webhook_url=settings.monitoring.webhook_url)
    return alerts


def send(alert: Alert, webhook_url: str | None) -> None:
    """Log ``alert`` and post it to the webhook, when one is set."""
    payload = alert.payload()
    logger.warning(json.dumps(payload))
    if not webhook_url:
        return
    try:
        requests.post(webhook_url, json=payload, timeout=WEBHOOK_TIMEOUT_S).raise_for_status()
    except requests.RequestException as err:
        logger.error(
            json.dumps(
                {"event": "leadrisk.alert.webhook_failed", "rule": alert.rule, "error": str(err)}
            )
        )


def metrics_from_prometheus(text: str, endpoints: Collection[str] | None = None) -> dict[str, Any]:
    """Requests, 5xx errors, error rate and p99 latency from BentoML's /metrics exposition.

    Counters are cumulative since the server started; ``endpoints`` limits the paths counted,
    by default every path but the probes and /metrics.
    """
    counted = [
        counts
        for endpoint, counts in endpoint_counts(text).items()
        if (endpoint in endpoints if endpoints is not None else endpoint not in PROBE_ENDPOINTS)
    ]
    requests_total = sum(c.requests for c in counted)
    errors = sum(c.errors for c in counted)
    buckets: dict[float, float] = defaultdict(float)
    for counts in counted:
        for bound, value in counts.buckets.items():
            buckets[bound] += value
    p99 = histogram_quantile(0.99, buckets)
    return {
        "requests": int(requests_total),
        "errors": int(errors),
        "error_rate": errors / requests_total if requests_total else 0.0,
        "p99_latency_ms": None if p99 is None else p99 * 1000.0,
    }
