"""Training: the data it sees, how the trained models behave, the registry's gate, promotion,
rollback and audit trail, reproducibility, the PostgreSQL store, off-boarding and the CLI."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from pandas.api.types import is_float_dtype, is_integer_dtype, is_object_dtype

from core.kinds import LEAD, RISK, ModelKind
from core.risk_rules import HIGH
from core.scoring import REASON_GROUPS, ScoringModel
from core.settings import Settings, load_settings
from features import store, tables
from features.definitions import definitions
from training import dataset, registry
from training.candidates import choose, correlated_groups
from training.offboard import offboarding_list, segment_profile
from training.train import TrainReport, train

pytestmark = pytest.mark.usefixtures("keep_mlflow_uris")

LEAKAGE = {*tables.LEAD_SALES_CATEGORICAL, *tables.LEAD_SALES_NUMERIC}
TINY_TRAINING = {
    "LEADRISK_TRAINING__SEARCH_ITERATIONS": "1",
    "LEADRISK_TRAINING__CV_FOLDS": "2",
}
REASON_TEXT = re.compile(r"^[a-z0-9 ]+ is .+: [+-]\d+\.\d\d$")


def quiet(_: str) -> None:
    pass


def _sqlite_store(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


# --- Data -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[LEAD, RISK], ids=["lead", "risk"])
def training_set(request, synthetic_settings: Settings) -> tuple[ModelKind, dataset.TrainingSet]:
    return request.param, dataset.build(request.param, synthetic_settings)


def test_training_set_has_exactly_the_service_columns(training_set, synthetic_settings) -> None:
    kind, ts = training_set
    service = store.feature_service(store.open_store(synthetic_settings), kind.feature_service)
    assert list(ts.features.columns) == store.feature_columns(service)
    assert ts.categorical == store.string_features(service)
    assert sorted(ts.numeric + ts.categorical) == sorted(ts.features.columns)


def test_training_set_has_no_leakage_and_no_label(training_set) -> None:
    kind, ts = training_set
    columns = set(ts.features.columns)
    assert not columns & LEAKAGE
    assert kind.label not in columns and "cohort" not in columns
    assert kind.entity_key not in columns and "event_timestamp" not in columns


def test_training_set_dtypes(training_set) -> None:
    _, ts = training_set
    for column in ts.numeric:
        dtype = ts.features[column].dtype
        assert is_float_dtype(dtype) or is_integer_dtype(dtype), (column, dtype)
    for column in ts.categorical:
        values = ts.features[column]
        assert is_object_dtype(values.dtype), (column, values.dtype)
        assert values.dropna().map(type).eq(str).all(), column
    assert is_integer_dtype(ts.label.dtype) and set(ts.label.unique()) == {0, 1}


def test_training_set_rows_are_the_labeled_entities(training_set, synthetic_settings) -> None:
    kind, ts = training_set
    labeled = dataset.entity_frame(kind, synthetic_settings)
    assert len(ts.features) == len(ts.label) == len(labeled)
    assert list(ts.entities[kind.entity_key]) == list(labeled[kind.entity_key])
    assert (ts.label.to_numpy() == labeled[kind.label].to_numpy()).all()
    assert ts.fingerprint == dataset.build(kind, synthetic_settings).fingerprint


# --- Behaviour of the trained models --------------------------------------------------------------


def _champion(settings: Settings, kind: ModelKind) -> ScoringModel:
    client = registry.connect(settings)
    version = registry.alias_version(client, kind.registered_name, registry.CHAMPION)
    assert version is not None, f"{kind.registered_name} has no champion"
    return registry.load_version(kind.registered_name, version.version)


@pytest.fixture(scope="module")
def lead_model(trained_settings: Settings) -> ScoringModel:
    return _champion(trained_settings, LEAD)


@pytest.fixture(scope="module")
def lead_rows(trained_settings: Settings) -> pd.DataFrame:
    """200 real leads as the store serves them, with their id."""
    ts = dataset.build(LEAD, trained_settings)
    rows = pd.concat([ts.entities[[LEAD.entity_key]], ts.features], axis=1)
    return rows.sample(200, random_state=3).reset_index(drop=True)


def _with_derived(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Recompute the on-demand features with the registered transformation."""
    view = definitions(settings)["lead_engagement_derived"]
    derived = view.feature_transformation.transform(
        frame[tables.LEAD_ENGAGEMENT_NUMERIC].to_dict("list")
    )
    return frame.assign(**derived)


def test_more_time_on_website_raises_the_score(lead_model, lead_rows, trained_settings) -> None:
    low = _with_derived(lead_rows.assign(total_time_on_website=60.0), trained_settings)
    high = _with_derived(lead_rows.assign(total_time_on_website=1800.0), trained_settings)
    low_score, high_score = lead_model.predict_proba(low), lead_model.predict_proba(high)
    assert (high_score > low_score).mean() >= 0.95
    assert high_score.mean() - low_score.mean() > 0.1


def test_sms_sent_scores_above_email_bounced(lead_model, lead_rows) -> None:
    sms = lead_model.predict_proba(lead_rows.assign(last_activity="SMS Sent"))
    bounced = lead_model.predict_proba(lead_rows.assign(last_activity="Email Bounced"))
    assert (sms > bounced).all()


def test_known_hot_and_cold_leads(lead_model, lead_rows, trained_settings) -> None:
    hot = lead_rows.head(1).assign(
        occupation="Working Professional",
        lead_origin="Lead Add Form",
        lead_source="Reference",
        last_activity="SMS Sent",
        do_not_email=0,
        total_visits=5.0,
        total_time_on_website=1800.0,
        page_views_per_visit=3.0,
    )
    cold = lead_rows.head(1).assign(
        occupation="Unemployed",
        lead_origin="API",
        lead_source="Olark Chat",
        last_activity="Email Bounced",
        do_not_email=1,
        total_visits=0.0,
        total_time_on_website=0.0,
        page_views_per_visit=0.0,
    )
    hot, cold = (_with_derived(f, trained_settings) for f in (hot, cold))
    assert lead_model.predict_proba(hot)[0] > 0.8
    assert lead_model.predict_proba(cold)[0] < 0.2
    bands = sorted(lead_model.bands, key=lambda b: b.min_score)
    assert lead_model.band(lead_model.predict_proba(hot)) == [bands[-1].name]
    assert lead_model.band(lead_model.predict_proba(cold)) == [bands[0].name]


def test_fields_outside_the_model_do_not_change_the_score(lead_model, lead_rows) -> None:
    base = lead_model.predict_proba(lead_rows)
    assert not {"lead_id", *LEAKAGE} & set(lead_model.features)
    changed = lead_rows.assign(
        lead_id=lead_rows["lead_id"] + 1_000_000,
        tags="Closed by Horizzon",
        lead_quality="High in Relevance",
        asymmetrique_activity_score=18.0,
    )
    assert (lead_model.predict_proba(changed) == base).all()
    reordered = lead_rows[list(reversed(lead_rows.columns))]
    assert (lead_model.predict_proba(reordered) == base).all()


def test_scores_bands_and_reasons(lead_model, lead_rows) -> None:
    scores = lead_model.predict_proba(lead_rows)
    assert scores.shape == (len(lead_rows),)
    assert ((scores >= 0) & (scores <= 1)).all() and scores.std() > 0.05
    names = {b.name for b in lead_model.bands}
    bands = lead_model.band(scores)
    assert set(bands) <= names and len(set(bands)) >= 3
    order = {b.name: b.min_score for b in lead_model.bands}
    assert all(scores[i] >= order[band] for i, band in enumerate(bands))
    assert set(lead_model.predict(lead_rows)) <= {0, 1}

    sample = lead_rows.head(30)
    contributions = lead_model.contributions(sample)
    reasons = lead_model.top_reasons(sample, k=3)
    signs = set()
    for row, row_reasons in enumerate(reasons):
        assert len(row_reasons) == 3
        magnitudes = [abs(r.contribution) for r in row_reasons]
        assert magnitudes == sorted(magnitudes, reverse=True)
        totals = _group_totals(lead_model, contributions[row])
        assert magnitudes[-1] >= np.sort(np.abs(list(totals.values())))[-3] - 1e-12
        for reason in row_reasons:
            members = frozenset([reason.feature, *reason.grouped_with])
            assert reason.contribution == pytest.approx(totals[members], abs=1e-12)
            assert REASON_TEXT.match(reason.text), reason.text
            assert "_" not in reason.text.split(" is ")[0]
            signs.add(np.sign(reason.contribution))
    assert {-1.0, 1.0} <= signs


def _group_totals(model: ScoringModel, contributions: np.ndarray) -> dict[frozenset, float]:
    """One row's contribution per reason group (features not in a group alone)."""
    groups = [frozenset(g) for g in model.metadata.get(REASON_GROUPS, [])]
    grouped = set().union(*groups)
    groups += [frozenset([f]) for f in model.features if f not in grouped]
    index = {f: i for i, f in enumerate(model.features)}
    return {g: float(sum(contributions[index[f]] for f in g)) for g in groups}


def test_raising_reasons_are_the_largest_positive_contributions(lead_model, lead_rows) -> None:
    sample = lead_rows.head(30)
    contributions = lead_model.contributions(sample)
    raising = lead_model.raising_reasons(sample, k=3)
    assert raising != lead_model.top_reasons(sample, k=3)  # some top reasons lowered a score
    for row, row_reasons in enumerate(raising):
        totals = _group_totals(lead_model, contributions[row])
        expected = sorted((t for t in totals.values() if t > 0), reverse=True)[:3]
        assert [r.contribution for r in row_reasons] == pytest.approx(expected, abs=1e-12)


def test_correlated_features_are_one_reason(trained_settings, synthetic_settings) -> None:
    """Near-copies get large opposite contributions alone; grouped, their sum is the reason."""
    model = _champion(trained_settings, RISK)
    groups = model.metadata[REASON_GROUPS]
    assert groups and all(len(g) > 1 and set(g) <= set(model.numeric) for g in groups)
    frame = dataset.build(RISK, synthetic_settings).features.head(200)
    reasons = [r for row in model.top_reasons(frame, k=3) for r in row]
    in_groups = [r for r in reasons if r.grouped_with]
    assert in_groups and all(" (with " in r.text for r in in_groups)
    group_of = {f: set(g) for g in groups for f in g}
    assert all({r.feature, *r.grouped_with} == group_of[r.feature] for r in in_groups)


def test_correlated_groups_link_features_by_rank_correlation() -> None:
    rng = np.random.default_rng(0)
    base = rng.lognormal(size=500)
    frame = pd.DataFrame(
        {
            "count": base,
            "count_squared": base**2,  # monotone: rank correlation 1
            "noisy_count": base + rng.normal(0, 0.01, 500),
            "independent": rng.normal(size=500),
            "constant": np.ones(500),
        }
    )
    groups = correlated_groups(frame, list(frame.columns), 0.9)
    assert [sorted(g) for g in groups] == [["count", "count_squared", "noisy_count"]]
    assert correlated_groups(frame, ["count", "independent"], 0.9) == []


def test_the_simplest_model_within_one_standard_error_of_the_best_is_chosen() -> None:
    # standard error of the best mean: 0.02 / sqrt(4) = 0.01
    tied = {"logistic_regression": (0.692, 0.010), "lightgbm": (0.6995, 0.020)}
    chosen, why = choose(tied, folds=4, std_errors=1.0)
    assert chosen == "logistic_regression"
    assert "within 1 standard error (0.0100) of lightgbm's 0.6995" in why
    better = {"logistic_regression": (0.688, 0.010), "lightgbm": (0.6995, 0.020)}
    assert choose(better, folds=4, std_errors=1.0) == ("lightgbm", "best mean")
    assert choose(tied, folds=4, std_errors=0.0)[0] == "lightgbm"  # 0: the best mean
    assert choose({"lightgbm": (0.70, 0.02), "logistic_regression": (0.69, 0.0)}, 4, 1.0)[0] == (
        "lightgbm"  # simplest is the first listed
    )


@pytest.mark.parametrize("kind", [LEAD, RISK], ids=["lead", "risk"])
def test_contributions_add_up_to_the_logit(kind, trained_settings, synthetic_settings) -> None:
    model = _champion(trained_settings, kind)
    frame = dataset.build(kind, synthetic_settings).features.head(50)
    estimator = model.pipeline[-1]
    transformed = np.asarray(model.pipeline[:-1].transform(model.prepare(frame)), dtype="float64")
    if hasattr(estimator, "booster_"):
        bias = estimator.booster_.predict(transformed, pred_contrib=True)[:, -1]
    elif hasattr(estimator, "coef_"):
        bias = np.full(len(frame), estimator.intercept_[0])
    else:
        pytest.skip(f"{type(estimator).__name__} contributions are occlusion estimates")
    slope, intercept = model.calibration
    probability = model.predict_proba(frame)
    logit = np.log(probability / (1 - probability))
    total = model.contributions(frame).sum(axis=1) + slope * bias + intercept
    np.testing.assert_allclose(total, logit, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", [LEAD, RISK], ids=["lead", "risk"])
def test_served_columns_score_like_the_training_frame(
    kind, trained_settings, synthetic_settings
) -> None:
    """The service scores typed NumPy columns built from the online store's Python values (None
    for missing); training and evaluation score DataFrames. Same scores, bands, reasons, imputed."""
    model = _champion(trained_settings, kind)
    frame = dataset.build(kind, synthetic_settings).features.head(200)
    reader = store.OnlineReader(store.open_store(synthetic_settings), kind.feature_service)
    served = model.assess(
        reader.typed({c: [None if pd.isna(v) else v for v in frame[c]] for c in reader.columns})
    )
    trained = model.assess(frame)
    assert any(served.imputed), "the sample must exercise missing values"
    np.testing.assert_allclose(served.scores, trained.scores, rtol=0, atol=1e-12)
    assert served.bands == trained.bands
    assert served.imputed == trained.imputed

    def explained(reasons):
        return [[(r.feature, r.contribution, r.text) for r in row] for row in reasons]

    assert explained(served.reasons) == explained(trained.reasons)


# --- Registry, gate and reproducibility ---------------------------------------------------------


@pytest.fixture(scope="module")
def twice(
    synthetic_settings: Settings, synthetic_env: dict[str, str], tmp_path_factory
) -> tuple[dict[str, str], TrainReport, TrainReport]:
    """The risk model trained twice on the same data, seed and config into a fresh registry."""
    env = {
        **synthetic_env,
        **TINY_TRAINING,
        "LEADRISK_TRAINING__MLFLOW_TRACKING_URI": _sqlite_store(tmp_path_factory.mktemp("reg")),
    }
    settings = load_settings(env)
    first = train("risk", settings, progress=quiet, source="synthetic")
    second = train("risk", settings, progress=quiet, source="synthetic")
    return env, first, second


def _alias(client, name: str, alias: str) -> str | None:
    version = registry.alias_version(client, name, alias)
    return None if version is None else str(version.version)


def test_same_data_seed_and_config_give_identical_metrics(twice) -> None:
    _, first, second = twice
    assert first.test == second.test
    assert first.oof == second.oof
    assert first.chosen == second.chosen
    assert first.training_set_hash == second.training_set_hash
    assert first.run_id != second.run_id


def test_gate_keeps_the_champion_against_an_equal_model(twice) -> None:
    env, first, second = twice
    assert (first.version, second.version) == ("1", "2")
    assert first.gate.promote and first.gate.reason == "no champion yet"
    assert not second.gate.promote
    assert second.gate.champion_version == "1"
    assert second.gate.new_score == second.gate.champion_score

    client = registry.connect(load_settings(env))
    name = RISK.registered_name
    assert _alias(client, name, registry.CHAMPION) == "1"
    assert _alias(client, name, registry.CHALLENGER) == "2"
    last = registry.audit_trail(client, name)[-1]
    assert (last["alias"], last["from_version"], last["to_version"]) == ("challenger", None, "2")
    assert "does not beat champion v1" in last["reason"]
    assert f"by {load_settings(env).training.champion_margin}" in last["reason"]


def test_promote_rollback_and_audit_through_the_cli(twice, invoke_cli) -> None:
    env, _, _ = twice
    promoted = invoke_cli(["models", "promote", "risk", "2", "--reason", "ops sign-off"], env)
    assert promoted.exit_code == 0, promoted.output
    entry = json.loads(promoted.stdout)
    assert (entry["alias"], entry["from_version"], entry["to_version"]) == ("champion", "1", "2")
    assert entry["reason"] == "ops sign-off"
    client = registry.connect(load_settings(env))
    assert _alias(client, RISK.registered_name, registry.CHAMPION) == "2"

    rolled = invoke_cli(["models", "rollback", "risk", "--reason", "alerts fired"], env)
    assert rolled.exit_code == 0, rolled.output
    entry = json.loads(rolled.stdout)
    assert (entry["from_version"], entry["to_version"]) == ("2", "1")
    assert entry["reason"] == "rollback: alerts fired"
    assert _alias(client, RISK.registered_name, registry.CHAMPION) == "1"

    again = invoke_cli(["models", "rollback", "risk"], env)
    assert again.exit_code != 0
    assert "no earlier champion than v1" in again.stderr
    unknown = invoke_cli(["models", "promote", "risk", "99", "--reason", "typo"], env)
    assert unknown.exit_code != 0 and "customer_risk v99" in unknown.stderr

    audit = invoke_cli(["models", "audit", "risk"], env)
    assert audit.exit_code == 0, audit.output
    entries = json.loads(audit.stdout)
    assert [e["sequence"] for e in entries] == list(range(1, len(entries) + 1))
    assert [(e["from_version"], e["to_version"]) for e in entries if e["alias"] == "champion"] == [
        (None, "1"),
        ("1", "2"),
        ("2", "1"),
    ]
    for e in entries:
        assert {"at", "from_version", "to_version", "reason"} <= set(e)
        assert datetime.fromisoformat(e["at"]).tzinfo is not None
        assert e["reason"]


# --- PostgreSQL-backed MLflow ---------------------------------------------------------------------


@pytest.mark.services("postgres")
def test_postgres_mlflow_store(synthetic_settings, synthetic_env, postgres, caplog) -> None:
    """Training registers on a PostgreSQL MLflow store, with no failed statement on the way (a
    failed batch in psycopg's pipeline mode logs 'pipeline aborted')."""
    caplog.set_level(logging.WARNING, logger="psycopg")
    host, port = postgres
    database = f"leadrisk_mlflow_test_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://postgres@{host}:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    try:
        uri = f"postgresql://postgres@{host}:{port}/{database}"
        settings = load_settings(
            {**synthetic_env, **TINY_TRAINING, "LEADRISK_TRAINING__MLFLOW_TRACKING_URI": uri}
        )
        assert settings.mlflow_uri == uri
        report = train("risk", settings, progress=quiet, source="synthetic")
        assert report.version == "1" and report.gate.promote
        client = registry.connect(settings)
        champion = registry.alias_version(client, RISK.registered_name, registry.CHAMPION)
        assert champion is not None and str(champion.version) == "1"
        assert client.get_run(champion.run_id).data.tags["data_source"] == "synthetic"
        model = registry.load_version(RISK.registered_name, "1")
        assert model.metadata["feature_service"] == RISK.feature_service
        with psycopg.connect(f"postgresql://postgres@{host}:{port}/{database}") as connection:
            versions = connection.execute("SELECT count(*) FROM model_versions").fetchone()[0]
        assert versions == 1
        assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text
        metrics = client.get_run(champion.run_id).data.metrics
        assert {"test_pr_auc", "oof_pr_auc"} <= set(metrics)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# --- Off-boarding ---------------------------------------------------------------------------------


def test_offboarding_list_rows_have_rule_and_reasons(trained_settings, tmp_path: Path) -> None:
    out = offboarding_list(trained_settings, tmp_path / "offboarding.csv", progress=quiet)
    rows = pd.read_csv(out)
    assert len(rows) > 0
    unlabeled = dataset.entity_frame(RISK, trained_settings, cohort=tables.UNLABELED)
    assert set(rows["customer_id"]) <= set(unlabeled["customer_id"])
    assert (rows["segment"] == HIGH).all()
    assert rows["p_suspended"].is_monotonic_decreasing
    for rule, reasons in zip(rows["rule"], rows["top_reasons"], strict=True):
        assert isinstance(rule, str) and f"{HIGH} segment" in rule and " and " in rule
        assert isinstance(reasons, str)
        parts = reasons.split("; ")
        assert 1 <= len(parts) <= trained_settings.training.offboard_top_reasons
        assert all(REASON_TEXT.match(p) for p in parts), parts
        assert all(p.rsplit(": ", 1)[1].startswith("+") for p in parts), parts
    high_from = trained_settings.training.risk_segment_thresholds[1]
    assert (rows["p_suspended"] >= high_from).all()


def test_segment_profile_covers_the_labeled_population(trained_settings) -> None:
    profile = segment_profile(trained_settings)
    assert list(profile.index) == ["Low", "Medium", "High"]
    labeled = dataset.entity_frame(RISK, trained_settings)
    assert profile["customers"].sum() == len(labeled)
    rates = profile["suspension_rate"]
    assert rates["Low"] < rates["High"]
    assert any(c.startswith("median_") for c in profile.columns)


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_train_prints_the_summary_with_targets(
    synthetic_settings, synthetic_env, invoke_cli, tmp_path: Path
) -> None:
    uri = _sqlite_store(tmp_path)
    env = {**synthetic_env, **TINY_TRAINING, "LEADRISK_TRAINING__MLFLOW_TRACKING_URI": uri}
    result = invoke_cli(["train", "lead", "--source", "synthetic"], env)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "lead_scoring: stratified 2-fold CV" in out
    for candidate in ("logistic_regression", "random_forest", "lightgbm"):
        assert candidate in out
    assert "lead_scoring v1: held-out and out-of-fold" in out
    targets = load_settings(env).training.lead_targets
    for metric, target in targets.items():
        assert re.search(rf"{metric}\s.*>= {target} (met|MISSED)", out), metric
    assert "gate: promoted (no champion yet)" in out
    assert f"tracking {uri}" in " ".join(out.split())
    for chatter in ("DeprecationWarning", "UserWarning", "INFO mlflow", "WARNING mlflow"):
        assert chatter not in result.output, chatter  # the libraries speak with --verbose only
    client = registry.connect(load_settings(env))
    assert _alias(client, LEAD.registered_name, registry.CHAMPION) == "1"


@pytest.mark.parametrize("command", [["diagnose", "lead"], ["monitor", "drift", "--model", "risk"]])
def test_monitoring_commands_without_a_champion_say_so(command, env_for, invoke_cli, tmp_path):
    result = invoke_cli(command, env_for(tmp_path))
    assert result.exit_code == 2, result.output
    assert "has no champion yet" in result.output and "Traceback" not in result.output
