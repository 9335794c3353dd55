"""A/B guardrails: each limit breached by a challenger built to break it, none by a fair one,
and a breach stops the test."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from core.settings import Settings
from monitoring.feedback import Feedback, FeedbackStore
from monitoring.prediction_log import PredictionEntry, PredictionLog
from monitoring.release_guardrails import breaches, enforce
from monitoring.releases import ReleaseStore

CHAMP, CHALL = "lead_scoring:v1-aaa", "lead_scoring:v2-bbb"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def release(settings):
    store = ReleaseStore(settings.release_store_url)
    store.set_models("lead_scoring", CHAMP, CHALL)
    return store.start("lead_scoring", "ab", share=0.5)


def _entries(champion: np.ndarray, challenger: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "score": np.concatenate([champion, challenger]),
            "variant": ["champion"] * len(champion) + ["challenger"] * len(challenger),
        }
    )


def _feedback(band: str, champion_rate: float, challenger_rate: float, n: int) -> pd.DataFrame:
    rows = []
    for version, rate in (("1", champion_rate), ("2", challenger_rate)):
        converted = round(rate * n)
        rows += [
            {"label": int(i < converted), "band": band, "model_version": version} for i in range(n)
        ]
    return pd.DataFrame(rows)


def test_a_fair_challenger_breaks_nothing(settings, release) -> None:
    rng = np.random.default_rng(0)
    entries = _entries(rng.random(500), rng.random(500))
    feedback = _feedback("A", 0.6, 0.58, 60)
    assert breaches(settings, release, entries, feedback) == []


def test_a_collapsed_score_distribution_breaks_the_psi_limit(settings, release) -> None:
    rng = np.random.default_rng(1)
    entries = _entries(rng.random(500), np.full(500, 0.38))
    [breach] = breaches(settings, release, entries, pd.DataFrame())
    assert breach.rule == "score_psi" and breach.value > settings.monitoring.guardrail_psi


def test_too_few_rows_are_not_judged(settings, release) -> None:
    entries = _entries(np.random.default_rng(2).random(500), np.full(50, 0.38))
    assert breaches(settings, release, entries, pd.DataFrame()) == []


def test_a_conversion_drop_in_a_band_is_named(settings, release) -> None:
    feedback = pd.concat([_feedback("A", 0.8, 0.3, 40), _feedback("D", 0.1, 0.1, 40)])
    [breach] = breaches(settings, release, pd.DataFrame(), feedback)
    assert breach.rule == "conversion_drop" and breach.detail == "band A"
    assert breach.value == pytest.approx(0.5)


def test_errors_and_slow_calls_are_read_from_the_metrics(settings, release) -> None:
    text = "\n".join(
        [
            "# TYPE leadrisk_variant_rows counter",
            'leadrisk_variant_rows_total{model="lead_scoring",variant="champion"} 1000',
            'leadrisk_variant_rows_total{model="lead_scoring",variant="challenger"} 950',
            "# TYPE leadrisk_variant_errors counter",
            'leadrisk_variant_errors_total{model="lead_scoring",variant="challenger"} 50',
            "# TYPE leadrisk_variant_model_seconds histogram",
            *(
                f'leadrisk_variant_model_seconds_bucket{{model="lead_scoring",variant="{v}",'
                f'le="{le}"}} {count}'
                for v, counts in (
                    ("champion", {"0.005": 990, "0.01": 1000, "+Inf": 1000}),
                    ("challenger", {"0.005": 10, "0.01": 100, "0.1": 1000, "+Inf": 1000}),
                )
                for le, count in counts.items()
            ),
            "",
        ]
    )
    found = {b.rule: b for b in breaches(settings, release, pd.DataFrame(), pd.DataFrame(), text)}
    assert found["error_rate"].value == pytest.approx(0.05)
    assert found["p99_ratio"].value > settings.monitoring.guardrail_p99_ratio


def test_a_breach_stops_the_test_and_is_in_its_events(settings, release) -> None:
    log = PredictionLog(settings.prediction_log_dir)
    rng = np.random.default_rng(3)
    now = datetime.now(UTC).isoformat()
    log.append(
        [
            PredictionEntry(
                request_id=f"r{i}",
                model="lead_scoring",
                model_version=version,
                entity_id=i,
                features_hash="h",
                imputed_features=[],
                score=score,
                band="A",
                scored_at=now,
                variant=variant,
            )
            for i, (version, variant, score) in enumerate(
                [("1", "champion", float(s)) for s in rng.random(300)]
                + [("2", "challenger", 0.38)] * 300
            )
        ]
    )
    log.close()
    store = FeedbackStore(settings.feedback_db)
    store.record(Feedback("f1", "lead_scoring", 1, 1, None, 0.9, "A", "1", datetime.now(UTC)))
    judged = enforce(settings)
    assert [b["rule"] for b in judged["lead_scoring"]] == ["score_psi"]
    stopped = ReleaseStore(settings.release_store_url).get("lead_scoring")
    assert stopped.mode == "off" and stopped.stopped_reason.startswith("guardrail: score_psi")
    events = ReleaseStore(settings.release_store_url).events("lead_scoring")
    assert events[-1]["event"] == "guardrail"
    assert enforce(settings) == {}  # a stopped test is not judged again
