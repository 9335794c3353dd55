"""The scorer without a server or Feast: the online store is an in-memory table behind the small
interface the scorer reads (``service.scorer.OnlineFeatures``); Feast's own implementation of it is
checked against the offline store in tests/integration."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from core.columns import Columns
from core.kinds import LEAD, RISK, ModelKind
from core.scoring import Band, ScoringModel, prepare_inputs
from features.store import OnlineRows
from monitoring.prediction_log import PredictionEntry, PredictionLog, read_entries
from monitoring.releases import CHALLENGER, CHAMPION, SHADOW, Release
from service.schemas import LeadRequest, RawLead
from service.scorer import TOP_REASONS, Scorer, ServedModel, Serving
from training.candidates import preprocessor

FEATURES = {
    LEAD.key: (["total_visits", "total_time_on_website"], ["last_activity"]),
    RISK.key: (["tenure_months", "init_balance"], ["country"]),
}


class InMemoryFeatures:
    """Feature rows by entity id, one table per model kind; ``down`` simulates an outage."""

    def __init__(self, tables: dict[str, pd.DataFrame]) -> None:
        self.tables = tables
        self.down = False

    def columns(self, kind: ModelKind) -> list[str]:
        return list(self.tables[kind.key].columns)

    def read(self, kind: ModelKind, ids: Sequence[int]) -> OnlineRows:
        if self.down:
            raise ConnectionError("store down")
        table = self.tables[kind.key]
        rows = table.reindex(list(ids))
        keyed = rows.reset_index(names=kind.entity_key)
        return OnlineRows(Columns.of(keyed), np.isin(list(ids), table.index))

    def from_payloads(self, kind: ModelKind, payloads: list[dict[str, Any]]) -> Columns:
        return Columns.of(pd.DataFrame(payloads)[self.columns(kind)])


def table(kind: ModelKind, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    numeric, categorical = FEATURES[kind.key]
    data = {name: rng.gamma(2.0, 50.0, rows) for name in numeric}
    if "total_visits" in data:
        data["total_visits"] = data["total_visits"].round()  # visits are counted
    data |= {name: rng.choice(["SMS Sent", "Email Opened", "DE"], rows) for name in categorical}
    return pd.DataFrame(data, index=pd.RangeIndex(rows))


def fitted(kind: ModelKind, frame: pd.DataFrame, bands: list[Band]) -> ScoringModel:
    numeric, categorical = FEATURES[kind.key]
    X = prepare_inputs(frame, numeric, categorical)
    y = (frame[numeric[0]] > frame[numeric[0]].median()).astype(int)
    pipe = Pipeline([("prep", preprocessor(numeric, categorical)), ("model", LogisticRegression())])
    pipe.fit(X, y)
    width = len(pipe[:-1].transform(X[:1])[0])
    to_raw = [min(i, len(numeric)) for i in range(width)]  # one-hot columns -> the category
    return ScoringModel(
        pipe, numeric, categorical, (1.0, 0.0), bands[-1].min_score, bands, to_raw, {}
    )


@pytest.fixture
def world(tmp_path: Path) -> tuple[Scorer, InMemoryFeatures, dict[str, pd.DataFrame]]:
    tables = {LEAD.key: table(LEAD, 200, 1), RISK.key: table(RISK, 200, 2)}
    lead_bands = [Band("D", 0.0), Band("C", 0.3), Band("B", 0.6), Band("A", 0.8)]
    risk_bands = [Band("Low", 0.0), Band("Medium", 0.2), Band("High", 0.6)]
    features = InMemoryFeatures(tables)
    scorer = Scorer(
        features,
        ServedModel(LEAD, "3", fitted(LEAD, tables[LEAD.key], lead_bands)),
        ServedModel(RISK, "5", fitted(RISK, tables[RISK.key], risk_bands)),
        PredictionLog(tmp_path / "predictions"),
    )
    return scorer, features, tables


def test_stored_lead_scores_as_the_model_scores_its_row(world, tmp_path):
    scorer, _, tables = world
    [outcome] = scorer.score_leads([LeadRequest(lead_id=7)])
    model = scorer.models[LEAD.key].model
    expected = model.predict_proba(tables[LEAD.key].iloc[[7]])[0]
    assert outcome.error is None
    assert outcome.score.probability == pytest.approx(expected, abs=1e-12)
    assert outcome.score.band == model.band(np.array([expected]))[0]
    assert outcome.score.model_version == "3" and outcome.score.lead_id == 7
    assert 0 < len(outcome.score.reasons) <= TOP_REASONS
    [entry] = list(read_entries(tmp_path / "predictions"))
    assert entry["request_id"] == outcome.score.request_id
    assert set(entry) == {*PredictionEntry.__dataclass_fields__, "logged_at"}


def test_raw_lead_scores_like_the_same_stored_lead(world):
    scorer, _, tables = world
    row = tables[LEAD.key].iloc[11].to_dict()
    stored, raw = scorer.score_leads([LeadRequest(lead_id=11), LeadRequest(lead=RawLead(**row))])
    assert raw.score.probability == pytest.approx(stored.score.probability, abs=1e-12)
    assert raw.score.lead_id is None


def test_unknown_ids_are_404_and_the_rest_of_the_batch_is_scored(world):
    scorer, _, _ = world
    outcomes = scorer.score_leads([LeadRequest(lead_id=3), LeadRequest(lead_id=10_000)])
    assert outcomes[0].error is None
    assert outcomes[1].error.status == 404 and outcomes[1].error.field == "lead_id"
    known, unknown = scorer.score_customers([4, 99_999])
    assert known.error is None and known.score.customer_id == 4
    assert unknown.error.status == 404 and unknown.error.field == "customer_id"


def test_customer_segment_follows_the_model_bands(world):
    scorer, _, tables = world
    model = scorer.models[RISK.key].model
    ids = list(range(50))
    outcomes = scorer.score_customers(ids)
    expected = model.band(model.predict_proba(tables[RISK.key].iloc[ids]))
    assert [o.score.segment for o in outcomes] == list(expected)
    assert all(o.score.offboard is False for o in outcomes)  # no learned patterns: no rule


def test_store_outage_answers_every_request_503_and_logs_nothing(world, tmp_path):
    scorer, features, _ = world
    features.down = True
    outcomes = scorer.score_customers([1, 2, 3])
    assert [o.error.status for o in outcomes] == [503, 503, 503]
    assert list(read_entries(tmp_path / "predictions")) == []


def test_batch_scorer_is_chosen_by_kind(world):
    scorer, _, _ = world
    assert scorer.batch_scorer(LEAD.key) == scorer.score_leads
    assert scorer.batch_scorer(RISK.key) == scorer.score_customers


def _challenged(scorer: Scorer, tables, mode: str, share: float = 0.0) -> Release:
    """Serve a second risk model (another fit: its scores differ) as the challenger."""
    champion = scorer.models[RISK.key]
    other = tables[RISK.key].sample(frac=1.0, random_state=9)
    other["tenure_months"] = other["tenure_months"].to_numpy()[::-1]  # another relation
    challenger = ServedModel(RISK, "6", fitted(RISK, other, champion.model.bands))
    release = Release(RISK.registered_name, "risk:v5", "risk:v6", mode, share, salt="s", revision=1)
    scorer.serve(RISK.key, Serving(release, champion, challenger))
    return release


def test_an_ab_test_answers_each_customer_with_its_sticky_variant(world, tmp_path):
    scorer, _, tables = world
    release = _challenged(scorer, tables, "ab", share=0.3)
    ids = list(range(200))
    outcomes = scorer.score_customers(ids)
    for customer_id, outcome in zip(ids, outcomes, strict=True):
        expected = release.variant(customer_id)
        assert outcome.score.variant == expected
        assert outcome.score.model_version == ("6" if expected == CHALLENGER else "5")
    share = sum(o.score.variant == CHALLENGER for o in outcomes) / len(ids)
    assert 0.15 < share < 0.45
    logged = {e["request_id"]: e for e in read_entries(tmp_path / "predictions")}
    assert {logged[o.score.request_id]["variant"] for o in outcomes} == {CHAMPION, CHALLENGER}
    again = scorer.score_customers(ids[:50])
    assert [o.score.variant for o in again] == [o.score.variant for o in outcomes[:50]]


def test_a_shadow_scores_every_row_after_the_answer_and_only_logs_it(world, tmp_path):
    scorer, _, tables = world
    _challenged(scorer, tables, "shadow")
    outcomes = scorer.score_customers(list(range(100)))
    assert {o.score.variant for o in outcomes} == {CHAMPION}
    assert {o.score.model_version for o in outcomes} == {"5"}
    scorer.shadow.drain()
    entries = list(read_entries(tmp_path / "predictions"))
    shadows = {e["request_id"]: e for e in entries if e["variant"] == SHADOW}
    answered = {o.score.request_id: o.score for o in outcomes}
    assert set(shadows) == set(answered)  # the same request ids, one shadow entry each
    assert {e["model_version"] for e in shadows.values()} == {"6"}
    assert any(shadows[r]["score"] != answered[r].p_suspended for r in answered)
    assert all(shadows[r]["reasons"] for r in answered)


def test_a_swap_takes_effect_from_the_next_batch(world):
    scorer, _, tables = world
    before = scorer.serving[RISK.key]
    _challenged(scorer, tables, "ab", share=1.0 - 1e-9)
    assert scorer.serving[RISK.key] is not before
    assert {o.score.model_version for o in scorer.score_customers(list(range(20)))} == {"6"}
