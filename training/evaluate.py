"""Metrics, decision thresholds, lift tables, calibration, and the plots logged to MLflow."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

CV_SCORING = {
    "roc_auc": "roc_auc",
    "pr_auc": "average_precision",
    "f1": "f1",
    "precision": "precision",
    "recall": "recall",
    "accuracy": "accuracy",
    "log_loss": "neg_log_loss",
    "brier": "neg_brier_score",
}


def metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, decision (at ``threshold``) and probability-quality metrics."""
    decision = (score >= threshold).astype(int)
    top = max(1, int(round(0.05 * len(score))))
    top_idx = np.argsort(-score)[:top]
    return {
        "roc_auc": roc_auc_score(y, score),
        "pr_auc": average_precision_score(y, score),
        "precision": precision_score(y, decision, zero_division=0),
        "recall": recall_score(y, decision, zero_division=0),
        "f1": f1_score(y, decision, zero_division=0),
        "accuracy": accuracy_score(y, decision),
        "log_loss": log_loss(y, np.clip(score, 1e-12, 1 - 1e-12)),
        "brier": brier_score_loss(y, score),
        "recall_at_top_5pct": float(y[top_idx].sum() / max(y.sum(), 1)),
        "threshold": threshold,
    }


def lift_table(y: np.ndarray, score: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Score deciles from best to worst: size, positives, rate, lift and cumulative capture."""
    frame = pd.DataFrame({"y": y, "score": score}).sort_values("score", ascending=False)
    frame["decile"] = np.arange(len(frame)) * bins // len(frame) + 1
    table = frame.groupby("decile").agg(
        rows=("y", "size"),
        positives=("y", "sum"),
        min_score=("score", "min"),
        max_score=("score", "max"),
    )
    base = y.mean()
    table["rate"] = table["positives"] / table["rows"]
    table["lift"] = table["rate"] / base
    table["cumulative_capture"] = table["positives"].cumsum() / max(y.sum(), 1)
    return table.reset_index()


def calibration_table(y: np.ndarray, score: np.ndarray, bins: int = 10) -> pd.DataFrame:
    observed, predicted = calibration_curve(y, score, n_bins=bins, strategy="quantile")
    return pd.DataFrame({"predicted": predicted, "observed": observed})


def save_plots(
    y: np.ndarray, score: np.ndarray, importance: pd.DataFrame, out_dir: Path, title: str
) -> list[Path]:
    """ROC, PR, calibration and importance plots as PNG files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fpr, tpr, _ = roc_curve(y, score)
    paths.append(
        _plot(
            out_dir / "roc.png",
            f"{title}: ROC (AUC {roc_auc_score(y, score):.3f})",
            fpr,
            tpr,
            "false positive rate",
            "true positive rate",
            diagonal=True,
        )
    )
    precision, recall, _ = precision_recall_curve(y, score)
    paths.append(
        _plot(
            out_dir / "pr.png",
            f"{title}: PR (AP {average_precision_score(y, score):.3f})",
            recall,
            precision,
            "recall",
            "precision",
        )
    )
    calib = calibration_table(y, score)
    paths.append(
        _plot(
            out_dir / "calibration.png",
            f"{title}: calibration",
            calib["predicted"],
            calib["observed"],
            "predicted probability",
            "observed rate",
            diagonal=True,
            marker="o",
        )
    )

    top = importance.head(20).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh(top["feature"], top["mean_abs_contribution"])
    ax.set_title(f"{title}: mean |contribution| (log-odds)")
    fig.tight_layout()
    fig.savefig(out_dir / "importance.png", dpi=90)
    plt.close(fig)
    paths.append(out_dir / "importance.png")
    return paths


def _plot(
    path: Path,
    title: str,
    x,
    y,
    xlabel: str,
    ylabel: str,
    diagonal: bool = False,
    marker: str | None = None,
) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(x, y, marker=marker)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
