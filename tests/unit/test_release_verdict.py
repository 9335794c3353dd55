"""The release statistics against answers known in advance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.release_verdict import (
    ab_verdict,
    bootstrap_auc,
    conversion,
    sample_size,
    shadow_agreement,
    two_proportion_p_value,
)


def test_wilson_interval_matches_the_textbook_value() -> None:
    rate = conversion(np.array([1] * 40 + [0] * 60))
    assert rate.rate == 0.4
    assert rate.interval == pytest.approx((0.3094, 0.4980), abs=1e-4)  # Wilson, 95%, n=100


def test_two_proportion_test_and_sample_size_match_known_answers() -> None:
    a, b = conversion(np.array([1] * 100 + [0] * 900)), conversion(np.array([1] * 150 + [0] * 850))
    z = 0.05 / np.sqrt(0.125 * 0.875 * (2 / 1000))  # pooled two-proportion z for 10% vs 15%
    assert two_proportion_p_value(a, b) == pytest.approx(2 * (1 - _phi(z)), rel=1e-6)
    # 10% -> 15% at alpha 0.05 and 80% power: 686 per group (Fleiss, without continuity fix)
    assert sample_size(0.10, 0.05) == 686


def _phi(x: float) -> float:
    from math import erf, sqrt

    return 0.5 * (1 + erf(x / sqrt(2)))


def test_an_ab_test_with_a_known_uplift_is_found_significant() -> None:
    rng = np.random.default_rng(3)
    n = 4_000
    variant = rng.random(n) < 0.5
    label = np.where(variant, rng.random(n) < 0.30, rng.random(n) < 0.20).astype(int)
    score = np.clip(label * 0.3 + rng.random(n) * 0.7, 0, 1)
    feedback = pd.DataFrame(
        {"label": label, "score": score, "model_version": np.where(variant, "2", "1")}
    )
    verdict = ab_verdict(feedback, "2")
    assert verdict.uplift == pytest.approx(0.10, abs=0.03)
    assert verdict.significant and verdict.p_value < 1e-6
    low, high = verdict.challenger.interval
    assert low < verdict.challenger.rate < high
    assert (
        verdict.auc["challenger"][1] < verdict.auc["challenger"][0] < verdict.auc["challenger"][2]
    )
    assert 0 < verdict.needed_per_variant < n / 2


def test_no_uplift_is_not_significant() -> None:
    rng = np.random.default_rng(4)
    label = (rng.random(2_000) < 0.25).astype(int)
    feedback = pd.DataFrame(
        {"label": label, "score": rng.random(2_000), "model_version": ["1", "2"] * 1_000}
    )
    assert not ab_verdict(feedback, "2").significant


def test_bootstrap_auc_of_a_perfect_ranking_is_one() -> None:
    labels = np.array([0] * 50 + [1] * 50)
    assert bootstrap_auc(labels, np.linspace(0, 1, 100)) == pytest.approx((1.0, 1.0, 1.0))
    assert bootstrap_auc(np.zeros(10), np.linspace(0, 1, 10)) is None


def test_shadow_agreement_of_identical_and_of_reversed_scores() -> None:
    scores = np.linspace(0.01, 0.99, 200)
    bands = np.where(scores > 0.5, "A", "B")
    answered = pd.DataFrame(
        {"request_id": range(200), "score": scores, "band": bands, "reasons": [["x"]] * 200}
    )
    same = shadow_agreement(answered, answered.copy())
    assert same.rank_correlation == pytest.approx(1.0)
    assert same.band_agreement == 1.0 and same.score_psi == pytest.approx(0.0)
    assert same.top_reason_changed == 0.0
    reversed_ = answered.assign(
        score=scores[::-1], band=bands[::-1], reasons=[["y"]] * 100 + [["x"]] * 100
    )
    flipped = shadow_agreement(answered, reversed_)
    assert flipped.rank_correlation == pytest.approx(-1.0)
    assert flipped.band_agreement == 0.0 and flipped.top_reason_changed == 0.5
    assert flipped.reason_changes == {"x -> y": 100}
    assert flipped.bands == {"A": {"A": 0, "B": 100}, "B": {"A": 100, "B": 0}}
