"""The run summary printed after training: comparison, held-out metrics, targets, lift, gate."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from core.kinds import MODEL_KINDS
from core.settings import Settings
from training.train import TrainReport

HEADLINE = ("roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy", "log_loss", "brier")


def print_summary(report: TrainReport, settings: Settings, console: Console | None = None) -> None:
    console = console or Console(width=140)
    comparison = Table(title=f"{report.model}: stratified {settings.training.cv_folds}-fold CV")
    comparison.add_column("candidate")
    for metric in HEADLINE:
        comparison.add_column(metric)
    for name, row in report.candidates.items():
        label = f"{name} *" if name == report.chosen else name
        comparison.add_row(label, *(row[m] for m in HEADLINE))
    console.print(comparison)

    metrics = Table(title=f"{report.model} v{report.version}: held-out and out-of-fold")
    metrics.add_column("metric")
    metrics.add_column("held-out")
    metrics.add_column("out-of-fold")
    metrics.add_column("target")
    targets = MODEL_KINDS[report.kind].targets(settings.training)
    for metric, value in report.test.items():
        target = targets.get(metric)
        verdict = "" if target is None else f">= {target} {'met' if value >= target else 'MISSED'}"
        metrics.add_row(metric, f"{value:.4f}", f"{report.oof[metric]:.4f}", verdict)
    console.print(metrics)
    console.print(report.lift.round(4).to_string(index=False))
    console.print("bands: " + ", ".join(f"{b.name} >= {b.min_score:.3f}" for b in report.bands))
    console.print(
        f"gate: {'promoted' if report.gate.promote else 'challenger'} ({report.gate.reason})"
    )
    console.print(
        f"MLflow run {report.run_id}, training set {report.training_set_hash}, "
        f"tracking {settings.mlflow_uri}"
    )
