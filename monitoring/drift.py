"""Drift of live profiles against the training reference: features, scores, bands, data quality.

Feature drift uses whylogs' own tests on the sketches (Kolmogorov-Smirnov for numeric columns,
chi-square on frequent items for categorical ones) at ``monitoring.drift_p_value``. Prediction
drift adds the population stability index (PSI) of the score deciles and the band share changes.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.reference import BAND, SCORE, bin_shares
from core.settings import Settings
from monitoring.whylogs_compat import (
    KS,
    ChiSquareConfig,
    ColumnDriftAlgorithm,
    ColumnProfileView,
    DatasetProfileView,
    DriftThresholds,
    KSTestConfig,
    PooledChiSquare,
    calculate_drift_scores,
)

PSI_FLOOR = 1e-4
TYPE_FAMILIES = {"integral": "number", "fractional": "number"}


@dataclass
class FeatureDrift:
    feature: str
    test: str | None
    p_value: float | None
    statistic: float | None
    drifted: bool
    missing_rate: float
    reference_missing_rate: float
    types: dict[str, int]
    new_types: list[str]


@dataclass
class PredictionDrift:
    score_p_value: float | None
    score_statistic: float | None
    score_drifted: bool
    psi: float | None
    score_edges: list[float]
    score_shares: list[float]
    reference_score_shares: list[float]
    band_p_value: float | None
    band_shares: dict[str, float]
    reference_band_shares: dict[str, float]
    max_band_share_change: float


@dataclass
class DriftReport:
    model: str
    created_at: str
    p_value_threshold: float
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift]
    prediction: PredictionDrift

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "drifted_features": drifted_features(self),
            "drifted_share": drifted_share(self),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``drift_<model>_<time>.html`` (self-contained) and ``.json`` into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromisoformat(self.created_at).strftime("%Y%m%dT%H%M%SZ")
        stem = f"drift_{self.model}_{stamp}"
        html_path, json_path = out_dir / f"{stem}.html", out_dir / f"{stem}.json"
        html_path.write_text(render_html(self))
        json_path.write_text(self.to_json())
        return html_path, json_path


def drift_report(
    settings: Settings,
    model: str,
    reference_view: DatasetProfileView,
    reference_summary: dict[str, Any],
    current_view: DatasetProfileView,
    *,
    current_scores: np.ndarray | None = None,
) -> DriftReport:
    """Compare ``current_view`` with the reference; raw ``current_scores`` make the PSI exact.

    ``drift_p_value`` is a family-wise level: each of the n columns is tested at p / n
    (Bonferroni), so a stable model does not raise a drifted feature on most days by chance.
    """
    columns = len(reference_view.get_columns())
    p_value = settings.monitoring.drift_p_value / max(columns, 1)
    scores = calculate_drift_scores(
        target_view=current_view,
        reference_view=reference_view,
        drift_map=_drift_map(reference_view, current_view, p_value),
        with_thresholds=True,
    )
    features = [
        _feature_drift(name, scores.get(name), reference_view, current_view)
        for name in reference_view.get_columns()
        if name not in (SCORE, BAND)
    ]
    return DriftReport(
        model=model,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        p_value_threshold=p_value,
        reference_rows=_rows(reference_view.get_column(SCORE)),
        current_rows=_rows(current_view.get_column(SCORE)),
        features=features,
        prediction=_prediction_drift(scores, reference_summary, current_view, current_scores),
    )


def drifted_features(report: DriftReport) -> list[str]:
    return [f.feature for f in report.features if f.drifted]


def drifted_share(report: DriftReport) -> float:
    """Drifted features over features that could be tested."""
    tested = [f for f in report.features if f.p_value is not None]
    return sum(f.drifted for f in tested) / len(tested) if tested else 0.0


def alert_facts(report: DriftReport) -> dict[str, Any]:
    """The report's inputs to ``monitoring.alerts.evaluate``.

    ``missing_feature_rate`` is the worst rise of a feature's missing rate over the reference, so
    features that were often missing in training do not alert forever.
    """
    rises = [f.missing_rate - f.reference_missing_rate for f in report.features]
    return {
        "model": report.model,
        "drifted_share": drifted_share(report),
        "psi": report.prediction.psi,
        "missing_feature_rate": max(rises, default=0.0),
    }


def psi(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """Population stability index; empty bins count as ``PSI_FLOOR`` so it stays finite."""
    expected = np.clip(np.asarray(reference_shares, dtype="float64"), PSI_FLOOR, None)
    actual = np.clip(np.asarray(current_shares, dtype="float64"), PSI_FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _drift_map(
    reference: DatasetProfileView, current: DatasetProfileView, p_value: float
) -> dict[str, ColumnDriftAlgorithm]:
    thresholds = DriftThresholds(NO_DRIFT=(p_value, 1), DRIFT=(0, p_value))
    shared = set(current.get_columns())
    return {
        name: KS(KSTestConfig(thresholds=thresholds))
        if _is_numeric(column)
        else PooledChiSquare(ChiSquareConfig(thresholds=thresholds))
        for name, column in reference.get_columns().items()
        if name in shared
    }


def _feature_drift(
    name: str,
    score: dict[str, Any] | None,
    reference: DatasetProfileView,
    current: DatasetProfileView,
) -> FeatureDrift:
    ref_column, column = reference.get_column(name), current.get_column(name)
    ref_types = _types(ref_column)
    types = _types(column) if column is not None else {}
    return FeatureDrift(
        feature=name,
        test=score["algorithm"] if score else None,
        p_value=_number(score["pvalue"]) if score else None,
        statistic=_number(score["statistic"]) if score else None,
        drifted=bool(score) and score["drift_category"] == "DRIFT",
        missing_rate=_missing_rate(column),
        reference_missing_rate=_missing_rate(ref_column),
        types=types,
        new_types=sorted(t for t, n in types.items() if n and not ref_types.get(t)),
    )


def _prediction_drift(
    scores: dict[str, dict[str, Any] | None],
    summary: dict[str, Any],
    current: DatasetProfileView,
    current_scores: np.ndarray | None,
) -> PredictionDrift:
    edges = summary["score_edges"]
    shares = (
        bin_shares(np.asarray(current_scores, dtype="float64"), edges)
        if current_scores is not None
        else _sketch_shares(current.get_column(SCORE), edges)
    )
    band_shares = _band_shares(current.get_column(BAND))
    reference_bands = summary["band_shares"]
    changes = [
        abs(band_shares.get(b, 0.0) - reference_bands.get(b, 0.0))
        for b in {*band_shares, *reference_bands}
    ]
    score, band = scores.get(SCORE), scores.get(BAND)
    return PredictionDrift(
        score_p_value=_number(score["pvalue"]) if score else None,
        score_statistic=_number(score["statistic"]) if score else None,
        score_drifted=bool(score) and score["drift_category"] == "DRIFT",
        psi=psi(summary["score_shares"], shares) if shares is not None else None,
        score_edges=list(edges),
        score_shares=[] if shares is None else [float(s) for s in shares],
        reference_score_shares=list(summary["score_shares"]),
        band_p_value=_number(band["pvalue"]) if band else None,
        band_shares=band_shares,
        reference_band_shares=dict(reference_bands),
        max_band_share_change=max(changes, default=0.0),
    )


def _sketch_shares(column: ColumnProfileView | None, edges: list[float]) -> np.ndarray | None:
    """Bin shares read from the score column's quantile sketch (KLL), no raw scores needed."""
    metric = column.get_metric("distribution") if column is not None else None
    if metric is None or metric.kll.value.is_empty():
        return None
    cdf = metric.kll.value.get_cdf(list(edges)) if edges else [1.0]
    return np.diff([0.0, *cdf])


def _band_shares(column: ColumnProfileView | None) -> dict[str, float]:
    if column is None:
        return {}
    summary = column.to_summary_dict()
    present = summary["counts/n"] - summary["counts/null"]
    items = summary.get("frequent_items/frequent_strings", [])
    return {item.value: item.est / present for item in items} if present else {}


def _is_numeric(column: ColumnProfileView) -> bool:
    metric = column.get_metric("distribution")
    return metric is not None and metric.kll.value.get_n() > 0


def _types(column: ColumnProfileView) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key, value in column.to_summary_dict().items():
        if key.startswith("types/") and value:
            family = TYPE_FAMILIES.get(key[len("types/") :], key[len("types/") :])
            counts[family] = counts.get(family, 0) + int(value)
    return counts


def _missing_rate(column: ColumnProfileView | None) -> float:
    """Null (None or NaN) share of the column; a column that is absent is all missing."""
    if column is None:
        return 1.0
    counts = column.to_summary_dict()
    return counts["counts/null"] / counts["counts/n"] if counts["counts/n"] else 0.0


def _rows(column: ColumnProfileView | None) -> int:
    return int(column.to_summary_dict()["counts/n"]) if column is not None else 0


def _number(value: Any) -> float | None:
    return None if value is None or math.isnan(float(value)) else float(value)


def render_html(report: DriftReport) -> str:
    """One self-contained page: summary, per-feature table, score and band share bars."""
    pred = report.prediction
    rows = "".join(
        "<tr{cls}><td>{name}</td><td>{test}</td><td>{p}</td><td>{stat}</td><td>{flag}</td>"
        "<td>{ref_miss:.1%} &rarr; {miss:.1%}</td><td>{types}</td></tr>".format(
            cls=' class="drift"' if f.drifted else "",
            name=html.escape(f.feature),
            test=f.test or "-",
            p=_fmt(f.p_value),
            stat=_fmt(f.statistic),
            flag="DRIFT" if f.drifted else "",
            ref_miss=f.reference_missing_rate,
            miss=f.missing_rate,
            types=html.escape(
                ", ".join(f"{t}: {n}" for t, n in f.types.items())
                + (f" (new: {', '.join(f.new_types)})" if f.new_types else "")
            ),
        )
        for f in report.features
    )
    bins = [f"bin {i + 1}" for i in range(len(pred.reference_score_shares))]
    bands = sorted({*pred.band_shares, *pred.reference_band_shares})
    band_bars = _bars(
        bands,
        [pred.reference_band_shares.get(b, 0.0) for b in bands],
        [pred.band_shares.get(b, 0.0) for b in bands],
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift: {html.escape(report.model)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
tr.drift td {{ background: #fde2e2; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>Drift report: {html.escape(report.model)}</h1>
<p>Created {report.created_at}; reference rows {report.reference_rows:,}, current rows
{report.current_rows:,}; a feature drifts when its p-value is below {report.p_value_threshold}.</p>
<ul>
<li>Drifted features: {len(drifted_features(report))} of {len(report.features)}
({drifted_share(report):.0%}): {html.escape(", ".join(drifted_features(report)) or "none")}</li>
<li>Score: KS p-value {_fmt(pred.score_p_value)}, PSI {_fmt(pred.psi)}</li>
<li>Bands: chi-square p-value {_fmt(pred.band_p_value)}, largest share change
{pred.max_band_share_change:.1%}</li>
</ul>
<h2>Features</h2>
<table><tr><th>feature</th><th>test</th><th>p-value</th><th>statistic</th><th>drift</th>
<th>missing (reference &rarr; current)</th><th>types</th></tr>{rows}</table>
<p class="legend"><span style="background:#999"></span>reference
<span style="background:#d9534f"></span>current</p>
<h2>Scores, in bins cut at the reference deciles</h2>
{_bars(bins, pred.reference_score_shares, pred.score_shares)}
<h2>Bands</h2>
{band_bars}
</body></html>
"""


def _bars(labels: list[str], reference: list[float], current: list[float]) -> str:
    """Paired horizontal bars (reference grey, current red) as inline SVG."""
    height, width, label_width = 22, 300, 80
    parts = []
    for i, label in enumerate(labels):
        y = i * height
        ref = reference[i] if i < len(reference) else 0.0
        cur = current[i] if i < len(current) else 0.0
        parts.append(
            f'<text x="0" y="{y + 14}" font-size="12">{html.escape(label)}</text>'
            f'<rect x="{label_width}" y="{y + 2}" width="{ref * width:.1f}" height="8" '
            f'fill="#999"/><rect x="{label_width}" y="{y + 10}" width="{cur * width:.1f}" '
            f'height="8" fill="#d9534f"/><text x="{label_width + width + 8}" y="{y + 14}" '
            f'font-size="12">{ref:.1%} &rarr; {cur:.1%}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + width + 120}" '
        f'height="{max(len(labels), 1) * height}">{"".join(parts)}</svg>'
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
