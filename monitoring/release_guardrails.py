"""Guardrails of an A/B test: the challenger, against the champion on the same test's traffic,
must stay within limits on errors, latency, score distribution and conversion by band.
``enforce`` (run by ``leadrisk monitor check``) stops a test that breaks one, and alerts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from core.kinds import MODEL_KINDS
from core.reference import bin_shares
from core.settings import Settings
from monitoring import alerts
from monitoring.drift import psi
from monitoring.feedback import FeedbackStore
from monitoring.prediction_log import read_entries
from monitoring.release_verdict import SCORE_EDGES
from monitoring.releases import CHALLENGER, CHAMPION, Release, ReleaseStore, tag_version
from monitoring.service_metrics import histogram_quantile


@dataclass(frozen=True)
class Breach:
    rule: str
    value: float
    limit: float
    detail: str = ""

    def text(self) -> str:
        about = f" ({self.detail})" if self.detail else ""
        return f"{self.rule}{about} {self.value:.4g} beyond {self.limit:.4g}"


def breaches(
    settings: Settings,
    release: Release,
    entries: pd.DataFrame,
    feedback: pd.DataFrame,
    metrics_text: str | None = None,
) -> list[Breach]:
    """What the challenger of ``release`` breaks: ``entries`` are the prediction log and
    ``feedback`` the feedback since the test started; ``metrics_text`` is the service's
    ``/metrics`` (errors and latency are judged only with it)."""
    cfg = settings.monitoring
    found: list[Breach] = []
    champion_version, challenger_version = (
        tag_version(release.champion),
        tag_version(release.challenger or ""),
    )
    if not entries.empty:
        variant = entries["variant"].fillna(CHAMPION)
        champion = entries.loc[variant == CHAMPION, "score"]
        challenger = entries.loc[variant == CHALLENGER, "score"]
        if min(len(champion), len(challenger)) >= cfg.guardrail_min_rows:
            value = psi(bin_shares(champion, SCORE_EDGES), bin_shares(challenger, SCORE_EDGES))
            if value > cfg.guardrail_psi:
                found.append(Breach("score_psi", value, cfg.guardrail_psi))
    labelled = feedback.dropna(subset=["label", "band"]) if not feedback.empty else feedback
    if not labelled.empty:
        labelled = labelled.assign(version=labelled["model_version"].astype(str))
        for band, rows in labelled.groupby("band"):
            rates = {}
            for name, version in ((CHAMPION, champion_version), (CHALLENGER, challenger_version)):
                group = rows.loc[rows["version"] == version, "label"]
                if len(group) >= cfg.guardrail_min_labels:
                    rates[name] = float(group.mean())
            if (
                len(rates) == 2
                and rates[CHAMPION] - rates[CHALLENGER] > cfg.guardrail_conversion_drop
            ):
                drop = rates[CHAMPION] - rates[CHALLENGER]
                found.append(
                    Breach("conversion_drop", drop, cfg.guardrail_conversion_drop, f"band {band}")
                )
    if metrics_text:
        found += _serving_breaches(settings, release.model, metrics_text)
    return found


def _serving_breaches(settings: Settings, model: str, text: str) -> list[Breach]:
    """The challenger's error rate and model-call p99 from the service's metrics."""
    cfg = settings.monitoring
    rows: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") != model or "variant" not in sample.labels:
                continue
            variant = sample.labels["variant"]
            if sample.name == "leadrisk_variant_rows_total":
                rows[variant] += sample.value
            elif sample.name == "leadrisk_variant_errors_total":
                errors[variant] += sample.value
            elif sample.name == "leadrisk_variant_model_seconds_bucket":
                buckets[variant][float(sample.labels["le"])] += sample.value
    found = []
    attempted = rows[CHALLENGER] + errors[CHALLENGER]
    if attempted and errors[CHALLENGER] / attempted > cfg.guardrail_error_rate:
        rate = errors[CHALLENGER] / attempted
        found.append(Breach("error_rate", rate, cfg.guardrail_error_rate))
    p99 = {v: histogram_quantile(0.99, buckets[v]) for v in (CHAMPION, CHALLENGER)}
    if (
        p99[CHAMPION]
        and p99[CHALLENGER]
        and p99[CHALLENGER] / p99[CHAMPION] > cfg.guardrail_p99_ratio
    ):
        ratio = p99[CHALLENGER] / p99[CHAMPION]
        found.append(Breach("p99_ratio", ratio, cfg.guardrail_p99_ratio))
    return found


def enforce(settings: Settings, metrics_text: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Judge every running A/B test; stop each that breaks a guardrail (all its traffic back to
    the champion), record why in the release's events, and alert. Returns the breaches."""
    store = ReleaseStore(settings.release_store_url)
    judged: dict[str, list[dict[str, Any]]] = {}
    for kind in MODEL_KINDS.values():
        release = store.get(kind.registered_name)
        if release is None or release.mode != "ab" or release.started_at is None:
            continue
        since = release.started_at
        entries = pd.DataFrame(
            e
            for e in read_entries(settings.prediction_log_dir)
            if e["model"] == release.model and e["scored_at"] >= since
        )
        if not entries.empty and "variant" not in entries:
            entries["variant"] = CHAMPION
        feedback = FeedbackStore(settings.feedback_db).frame(
            release.model, datetime.fromisoformat(since)
        )
        found = breaches(settings, release, entries, feedback, metrics_text)
        judged[release.model] = [asdict(b) for b in found]
        if not found:
            continue
        store.stop(release.model, "guardrail: " + "; ".join(b.text() for b in found), "guardrail")
        for breach in found:
            alerts.send(
                alerts.Alert(
                    f"release_{breach.rule}",
                    breach.value,
                    breach.limit,
                    breach.detail or f"challenger {tag_version(release.challenger or '')}",
                    release.model,
                ),
                webhook_url=settings.monitoring.webhook_url,
            )
    return judged
