"""Monitoring of the running system: drift reports, alert checks and the diagnosis.

Each function gathers its evidence from where it lives: whylogs window profiles (profile store),
the training reference (MLflow champion run), the prediction log, the feedback store, Feast's
materialization record and the service's ``/metrics`` and ``/models``.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from core import reference as reference_data
from core.kinds import MODEL_KINDS, ModelKind
from core.settings import Settings
from features import store as feature_store
from monitoring import alerts, drift, feedback, release_guardrails
from monitoring import reference as reference_profile
from monitoring.prediction_log import read_entries
from monitoring.profiler import read_profiles
from monitoring.reference import Reference
from training import registry

MIN_LABELS_FOR_KPIS = 30


class NoTrafficError(RuntimeError):
    """No profiled requests in the asked window: nothing to compare yet."""


def champion(settings: Settings, kind: ModelKind) -> tuple[str, str, dict]:
    """The champion's version, its MLflow run and its held-out metrics."""
    client = registry.connect(settings)
    version = registry.alias_version(client, kind.registered_name, registry.CHAMPION)
    if version is None:
        raise registry.RegistryError(f"{kind.registered_name} has no champion yet")
    return version.version, version.run_id, client.get_run(version.run_id).data.metrics


def training_reference(settings: Settings, run_id: str) -> Reference:
    """The training reference of an MLflow run, profiled once and kept in the reports folder."""
    kept = settings.reports_dir / "references" / run_id
    reference = reference_profile.load_cached(kept)
    if reference is None:
        with tempfile.TemporaryDirectory() as tmp:
            client = registry.connect(settings)
            local = client.download_artifacts(run_id, reference_data.ARTIFACT, tmp)
            reference = reference_profile.load_reference(local)
        reference_profile.keep(reference, kept)
    return reference


def drift_for(
    settings: Settings,
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[drift.DriftReport, Path, Path]:
    """Merge the window profiles of the serving champion and compare them with its reference."""
    kind = MODEL_KINDS[model]
    version, run_id, _ = champion(settings, kind)
    current = read_profiles(settings, kind.registered_name, since, until, version=version)
    if current is None:
        raise NoTrafficError(
            f"no profiled {kind.registered_name} v{version} requests between "
            f"{since or 'the start'} and {until or 'now'}"
        )
    reference = training_reference(settings, run_id)
    report = drift.drift_report(
        settings, kind.registered_name, reference.view, reference.summary, current
    )
    out = settings.reports_dir / "drift" / kind.registered_name
    html, data = report.write(out)
    return report, html, data


def service_metrics(url: str | None) -> dict[str, Any]:
    """p99 latency and error rate from the service's Prometheus endpoint ({} if unreachable)."""
    text = _metrics_text(url)
    return alerts.metrics_from_prometheus(text) if text is not None else {}


def _metrics_text(url: str | None) -> str | None:
    """The service's ``/metrics`` exposition, or None without a URL or an answer."""
    if not url:
        return None
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def freshness_hours(settings: Settings, now: datetime | None = None) -> dict[str, float | None]:
    """Hours since each online view was last materialized (None: never)."""
    now = now or datetime.now(UTC)
    return {
        view: None if end is None else (now - end.astimezone(UTC)).total_seconds() / 3600
        for view, end in feature_store.last_materialized(settings).items()
    }


def live_kpis(settings: Settings, model: str, threshold: float | None = None) -> dict[str, Any]:
    kind = MODEL_KINDS[model]
    store = feedback.FeedbackStore(settings.feedback_db)
    if threshold is None:
        threshold = 0.5
    return store.kpis(kind.registered_name, threshold=threshold)


def imputation_rates(settings: Settings, model: str, last: int = 50_000) -> dict[str, float]:
    """Share of recent predictions where each feature was missing and imputed."""
    name = MODEL_KINDS[model].registered_name
    entries = [e for e in read_entries(settings.prediction_log_dir) if e["model"] == name][-last:]
    if not entries:
        return {}
    counts: dict[str, int] = {}
    for entry in entries:
        for feature in entry["imputed_features"]:
            counts[feature] = counts.get(feature, 0) + 1
    return {feature: n / len(entries) for feature, n in sorted(counts.items())}


def check(
    settings: Settings, url: str | None = None, window: timedelta = timedelta(hours=24)
) -> tuple[dict[str, Any], list[alerts.Alert]]:
    """Evaluate every alert rule on the facts at hand; firing alerts are logged and posted."""
    since = datetime.now(UTC) - window
    facts: dict[str, Any] = {
        "drifted_share": {},
        "psi": {},
        "missing_feature_rate": {},
        "kpi_drop": {},
    }
    for model, kind in MODEL_KINDS.items():
        try:
            report, _, _ = drift_for(settings, model, since=since)
        except NoTrafficError:
            continue
        for name, value in drift.alert_facts(report).items():
            facts.setdefault(name, {})[kind.registered_name] = value
        facts["kpi_drop"][kind.registered_name] = _kpi_drop(settings, model)
    metrics_text = _metrics_text(url)
    if metrics_text is not None:
        facts.update(alerts.metrics_from_prometheus(metrics_text))
    facts["freshness_hours"] = freshness_hours(settings)
    fired = alerts.evaluate(settings, facts)
    facts["release_guardrails"] = release_guardrails.enforce(settings, metrics_text)
    fired += [
        alerts.Alert(f"release_{b['rule']}", b["value"], b["limit"], b["detail"] or None, model)
        for model, found in facts["release_guardrails"].items()
        for b in found
    ]
    return facts, fired


def _kpi_drop(settings: Settings, model: str) -> float | None:
    """Held-out ROC-AUC at training minus live ROC-AUC on labeled feedback."""
    kpis = live_kpis(settings, model)
    if kpis.get("labelled", 0) < MIN_LABELS_FOR_KPIS or kpis.get("roc_auc") is None:
        return None
    _, _, metrics = champion(settings, MODEL_KINDS[model])
    return metrics["test_roc_auc"] - kpis["roc_auc"]


@dataclass
class Diagnosis:
    model: str
    verdict: str
    evidence: dict[str, list[str]] = field(default_factory=dict)

    def render(self) -> str:
        lines = [f"{self.model}: {self.verdict}"]
        for area in ("integration", "data", "model"):
            for item in self.evidence.get(area, []) or ["ok"]:
                lines.append(f"  [{area}] {item}")
        return "\n".join(lines)


def diagnose(settings: Settings, model: str, url: str | None = None) -> Diagnosis:
    """Is it the integration, the data or the model? Checks in that order; first problem wins."""
    kind = MODEL_KINDS[model]
    cfg = settings.monitoring
    evidence: dict[str, list[str]] = {"integration": [], "data": [], "model": []}
    version, _, metrics = champion(settings, kind)

    for feature, rate in imputation_rates(settings, model).items():
        if rate > cfg.missing_rate_alert:
            evidence["integration"].append(
                f"{feature} missing and imputed in {rate:.0%} of recent requests"
            )
    for view, hours in freshness_hours(settings).items():
        if hours is None or hours > cfg.freshness_hours_alert:
            age = "never" if hours is None else f"{hours:.0f} h ago"
            evidence["integration"].append(f"feature view {view} last materialized {age}")
    serving = _serving_version(url, kind)
    if serving is not None and serving != version:
        evidence["integration"].append(
            f"service runs v{serving} but the registry champion is v{version}"
        )

    try:
        report, html, _ = drift_for(settings, model, since=datetime.now(UTC) - timedelta(days=1))
        for feature in report.features:
            if feature.new_types:
                evidence["integration"].append(
                    f"{feature.feature} now arrives as {', '.join(feature.new_types)} (schema)"
                )
        drifted = drift.drifted_features(report)
        if drifted:
            evidence["data"].append(f"drifted features: {', '.join(drifted)} (report {html})")
        if report.prediction.psi is not None and report.prediction.psi > cfg.psi_alert:
            evidence["data"].append(f"score distribution PSI {report.prediction.psi:.2f}")
    except NoTrafficError as err:
        evidence["data"].append(f"no recent traffic to compare: {err}")

    kpis = live_kpis(settings, model)
    if kpis.get("labelled", 0) >= MIN_LABELS_FOR_KPIS and kpis.get("roc_auc") is not None:
        trained = metrics.get("test_roc_auc", np.nan)
        if trained - kpis["roc_auc"] > cfg.kpi_drop_alert:
            evidence["model"].append(
                f"live ROC-AUC {kpis['roc_auc']:.3f} vs {trained:.3f} at training "
                f"({kpis['labelled']} labeled feedback)"
            )
    else:
        evidence["model"].append(
            f"only {kpis.get('labelled', 0)} labeled feedback: performance not yet measurable"
        )
    return Diagnosis(kind.registered_name, _verdict(evidence), evidence)


def _verdict(evidence: dict[str, list[str]]) -> str:
    hard_model = [e for e in evidence["model"] if "live ROC-AUC" in e]
    if evidence["integration"]:
        return "the scores may no longer help: INTEGRATION problem (fix the pipeline first)"
    if any(e.startswith(("drifted", "score distribution")) for e in evidence["data"]):
        return "the scores may no longer help: DATA has drifted (retrain or investigate sources)"
    if hard_model:
        return "the scores no longer help: MODEL performance dropped (retrain)"
    return "healthy: no integration, data or model problem found"


def _serving_version(url: str | None, kind: ModelKind) -> str | None:
    if not url:
        return None
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
            status = json.loads(response.read())
    except OSError:
        return None
    for info in status.get("models", []):
        if info["model"] == kind.registered_name:
            return str(info["version"])
    return None
