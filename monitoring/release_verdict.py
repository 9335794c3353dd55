"""The statistics that decide a release: how a shadow challenger agrees with the champion on the
same requests, and how an A/B challenger converts against it on the sales feedback."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats
from sklearn.metrics import roc_auc_score

from core.reference import bin_shares
from core.settings import Settings
from monitoring.drift import psi
from monitoring.feedback import FeedbackStore
from monitoring.prediction_log import read_entries
from monitoring.releases import ReleaseStore, tag_version

SCORE_EDGES = np.linspace(0.1, 0.9, 9)  # ten score bins for the PSI between the variants
CONFIDENCE = 0.95
POWER = 0.80


@dataclass(frozen=True)
class ShadowAgreement:
    requests: int
    rank_correlation: float  # Spearman, champion vs challenger scores of the same requests
    band_agreement: float  # share of requests in the same band
    bands: dict[str, dict[str, int]]  # champion band -> challenger band -> requests
    score_psi: float  # challenger's score distribution against the champion's
    top_reason_changed: float  # share of requests whose first reason differs
    reason_changes: dict[str, int]  # "old -> new" first reasons, most frequent first


def shadow_agreement(answered: pd.DataFrame, shadowed: pd.DataFrame) -> ShadowAgreement:
    """Compare the champion's answers with the shadow's scores of the same requests (prediction
    log entries with ``request_id``, ``score``, ``band``, ``reasons``)."""
    pairs = answered.merge(shadowed, on="request_id", suffixes=("_champion", "_challenger"))
    if pairs.empty:
        raise ValueError("no request has both a champion answer and a shadow score yet")
    champion, challenger = pairs["score_champion"], pairs["score_challenger"]
    first = [
        (_first(a), _first(b))
        for a, b in zip(pairs["reasons_champion"], pairs["reasons_challenger"], strict=True)
    ]
    changes = pd.Series([f"{a} -> {b}" for a, b in first if a != b], dtype=object)
    crosstab = pd.crosstab(pairs["band_champion"], pairs["band_challenger"])
    return ShadowAgreement(
        requests=len(pairs),
        rank_correlation=float(stats.spearmanr(champion, challenger).statistic),
        band_agreement=float((pairs["band_champion"] == pairs["band_challenger"]).mean()),
        bands={str(k): {str(c): int(v) for c, v in row.items()} for k, row in crosstab.iterrows()},
        score_psi=psi(bin_shares(champion, SCORE_EDGES), bin_shares(challenger, SCORE_EDGES)),
        top_reason_changed=float(np.mean([a != b for a, b in first])),
        reason_changes={str(k): int(v) for k, v in changes.value_counts().head(10).items()},
    )


def _first(reasons: Any) -> str | None:
    return reasons[0] if isinstance(reasons, list | tuple | np.ndarray) and len(reasons) else None


@dataclass(frozen=True)
class Conversion:
    labelled: int
    converted: int
    rate: float
    interval: tuple[float, float]  # Wilson, at CONFIDENCE


@dataclass(frozen=True)
class ABVerdict:
    champion: Conversion
    challenger: Conversion
    uplift: float  # challenger rate - champion rate
    p_value: float  # two-sided two-proportion z-test
    auc: dict[str, tuple[float, float, float] | None]  # variant -> (AUC, low, high) bootstrap
    needed_per_variant: int  # labelled entities per variant to detect this uplift at POWER
    significant: bool


def conversion(labels: np.ndarray) -> Conversion:
    """The conversion rate of 0/1 ``labels`` with its Wilson interval."""
    n, k = len(labels), int(np.sum(labels))
    if n == 0:
        return Conversion(0, 0, float("nan"), (float("nan"), float("nan")))
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Conversion(n, k, p, (centre - half, centre + half))


def two_proportion_p_value(a: Conversion, b: Conversion) -> float:
    """Two-sided z-test of equal conversion rates (pooled variance)."""
    if min(a.labelled, b.labelled) == 0:
        return float("nan")
    pooled = (a.converted + b.converted) / (a.labelled + b.labelled)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.labelled + 1 / b.labelled))
    if se == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(b.rate - a.rate) / se))


def sample_size(base_rate: float, uplift: float, power: float = POWER) -> int:
    """Labelled entities per variant for a two-sided test at 1 - CONFIDENCE to detect a change
    of ``uplift`` from ``base_rate`` with ``power`` (normal approximation)."""
    if uplift == 0 or not 0 < base_rate < 1 or not 0 < base_rate + uplift < 1:
        return 0
    z_alpha = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    z_beta = stats.norm.ppf(power)
    p1, p2 = base_rate, base_rate + uplift
    mean = (p1 + p2) / 2
    numerator = (
        z_alpha * math.sqrt(2 * mean * (1 - mean))
        + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2
    return math.ceil(numerator / uplift**2)


def bootstrap_auc(
    labels: np.ndarray, scores: np.ndarray, rounds: int = 500, seed: int = 0
) -> tuple[float, float, float] | None:
    """ROC-AUC with a percentile bootstrap interval; None without both classes."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    if len(np.unique(labels)) < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), len(labels))
        if len(np.unique(labels[pick])) == 2:
            draws.append(roc_auc_score(labels[pick], scores[pick]))
    low, high = np.percentile(draws, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return float(roc_auc_score(labels, scores)), float(low), float(high)


def ab_verdict(feedback: pd.DataFrame, challenger_version: str) -> ABVerdict:
    """The A/B verdict from the feedback recorded during a test (``label``, ``score``,
    ``model_version``): a row answered by ``challenger_version`` counts for the challenger."""
    labelled = feedback.dropna(subset=["label"])
    is_challenger = labelled["model_version"].astype(str) == str(challenger_version)
    groups = {"champion": labelled[~is_challenger], "challenger": labelled[is_challenger]}
    rates = {v: conversion(g["label"].to_numpy(dtype=int)) for v, g in groups.items()}
    champion, challenger = rates["champion"], rates["challenger"]
    uplift = challenger.rate - champion.rate
    p_value = two_proportion_p_value(champion, challenger)
    return ABVerdict(
        champion=champion,
        challenger=challenger,
        uplift=uplift,
        p_value=p_value,
        auc={
            v: bootstrap_auc(g["label"].to_numpy(dtype=int), g["score"].to_numpy(dtype=float))
            for v, g in groups.items()
        },
        needed_per_variant=sample_size(champion.rate, uplift) if champion.labelled else 0,
        significant=bool(p_value < 1 - CONFIDENCE),
    )


def release_verdict(settings: Settings, model: str) -> dict[str, Any]:
    """The verdict on ``model``'s current or last test, from the prediction log (shadow) or the
    sales feedback (A/B) since it started; written as JSON under the reports folder."""
    store = ReleaseStore(settings.release_store_url)
    release = store.get(model)
    if release is None or release.started_at is None or release.challenger is None:
        raise ValueError(f"{model} has had no release test with its current challenger")
    events = store.events(model)
    mode = next(e["detail"]["mode"] for e in reversed(events) if e["event"] == "started")
    since = release.started_at
    champion_version = tag_version(release.champion)
    challenger_version = tag_version(release.challenger)
    result: dict[str, Any] = {
        "model": model,
        "mode": mode,
        "since": since,
        "champion": champion_version,
        "challenger": challenger_version,
    }
    if mode == "shadow":
        entries = pd.DataFrame(
            e
            for e in read_entries(settings.prediction_log_dir)
            if e["model"] == model and e["scored_at"] >= since
        )
        if entries.empty:
            raise ValueError(f"no {model} predictions since the test started ({since})")
        variant = entries.get("variant", pd.Series("champion", index=entries.index))
        columns = ["request_id", "score", "band", "reasons"]
        answered = entries[(variant == "champion") & (entries["model_version"] == champion_version)]
        shadowed = entries[variant == "shadow"]
        agreement = shadow_agreement(answered[columns], shadowed[columns])
        result["shadow"] = asdict(agreement)
        figure = _shadow_chart(model, answered, shadowed, agreement)
    else:
        feedback = FeedbackStore(settings.feedback_db).frame(model, datetime.fromisoformat(since))
        verdict = ab_verdict(feedback, challenger_version)
        result["ab"] = asdict(verdict)
        figure = _ab_chart(model, verdict)
    out = settings.reports_dir / "releases" / f"{model}_{since[:19].replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    figure.savefig(out.with_suffix(".png"), dpi=110)
    result["written_to"] = [str(out), str(out.with_suffix(".png"))]
    return result


def _shadow_chart(
    model: str, answered: pd.DataFrame, shadowed: pd.DataFrame, agreement: ShadowAgreement
) -> Figure:
    """The two versions' score distributions on the same requests, and the band matrix."""
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    scores, bands = figure.subplots(1, 2)
    edges = np.linspace(0, 1, 21)
    scores.hist(answered["score"], bins=edges, alpha=0.6, label="champion")
    scores.hist(shadowed["score"], bins=edges, alpha=0.6, label="challenger (shadow)")
    scores.set_xlabel("score")
    scores.set_ylabel("requests")
    scores.legend(fontsize=8)
    scores.set_title(
        f"{model}: rank correlation {agreement.rank_correlation:.3f}, "
        f"PSI {agreement.score_psi:.3f}",
        fontsize=9,
    )
    matrix = pd.DataFrame(agreement.bands).T.fillna(0)
    bands.imshow(matrix.to_numpy(), cmap="Blues")
    bands.set_xticks(range(len(matrix.columns)), matrix.columns)
    bands.set_yticks(range(len(matrix.index)), matrix.index)
    for (i, j), count in np.ndenumerate(matrix.to_numpy()):
        bands.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=8)
    bands.set_xlabel("challenger band")
    bands.set_ylabel("champion band")
    bands.set_title(f"same band: {agreement.band_agreement:.1%}", fontsize=9)
    return figure


def _ab_chart(model: str, verdict: ABVerdict) -> Figure:
    """Conversion per variant with its interval and sample size."""
    figure = Figure(figsize=(5, 3.6), layout="constrained")
    ax = figure.subplots()
    variants = {"champion": verdict.champion, "challenger": verdict.challenger}
    rates = [v.rate for v in variants.values()]
    errors = [
        [v.rate - v.interval[0] for v in variants.values()],
        [v.interval[1] - v.rate for v in variants.values()],
    ]
    bars = ax.bar(list(variants), rates, yerr=errors, capsize=6, color=["#4c72b0", "#dd8452"])
    ax.bar_label(bars, [f"n={v.labelled}" for v in variants.values()], padding=3, fontsize=8)
    ax.set_ylabel("conversion rate (95% interval)")
    ax.set_title(
        f"{model}: uplift {verdict.uplift:+.3f}, p={verdict.p_value:.3g}; "
        f"n needed per variant {verdict.needed_per_variant:,}",
        fontsize=9,
    )
    return figure


def summary(verdict: dict[str, Any]) -> str:
    """One line of a verdict, for the audit trail."""
    if "shadow" in verdict:
        shadow = verdict["shadow"]
        return (
            f"shadow over {shadow['requests']:,} requests: rank correlation "
            f"{shadow['rank_correlation']:.3f}, band agreement {shadow['band_agreement']:.1%}, "
            f"score PSI {shadow['score_psi']:.3f}"
        )
    ab = verdict["ab"]
    return (
        f"A/B: conversion {ab['champion']['rate']:.3f} (n={ab['champion']['labelled']}) vs "
        f"{ab['challenger']['rate']:.3f} (n={ab['challenger']['labelled']}), uplift "
        f"{ab['uplift']:+.3f}, p={ab['p_value']:.3g}"
    )


def latest_verdict(settings: Settings, model: str) -> str:
    """The summary of ``model``'s newest verdict file, or "" when there is none."""
    files = sorted((settings.reports_dir / "releases").glob(f"{model}_*.json"))
    return summary(json.loads(files[-1].read_text())) if files else ""
