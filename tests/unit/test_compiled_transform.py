"""The NumPy-compiled preprocessing gives scikit-learn's numbers, or is not used at all."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from core.compiled_transform import compile_preprocessor
from core.scoring import Band, ScoringModel, prepare_inputs
from training.candidates import MIN_CATEGORY_FREQUENCY, imputation_values, preprocessor

NUMERIC = ["amount", "visits", "always_present", "never_present"]
CATEGORICAL = ["country", "source"]


def frame(rows: int, seed: int, unseen: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, rows)
    amount[rng.random(rows) < 0.2] = np.nan
    visits = rng.poisson(4, rows).astype(float)
    visits[rng.random(rows) < 0.05] = np.nan
    common = ["DE", "FR", "IN", "US"]
    rare = [f"R{i}" for i in range(6)]  # each well under MIN_CATEGORY_FREQUENCY rows
    country = rng.choice(common + rare, rows, p=[0.24] * 4 + [0.04 / 6] * 6).astype(object)
    country[rng.random(rows) < 0.1] = None
    source = rng.choice(["ads", "referral", "web"], rows).astype(object)
    if unseen:
        country[::7] = "Atlantis"
        source[::5] = "carrier pigeon"
    return pd.DataFrame(
        {
            "amount": amount,
            "visits": visits,
            "always_present": rng.normal(size=rows),
            "never_present": np.full(rows, np.nan),
            "country": country,
            "source": source,
        }
    )


@pytest.fixture(scope="module", params=["no_log", "signed_log", "before_the_log_step"])
def fitted(request) -> ColumnTransformer:
    prep = preprocessor(NUMERIC, CATEGORICAL)
    if request.param == "signed_log":
        prep.set_params(num__log__enabled=True)
    elif request.param == "before_the_log_step":  # as models registered before it were fitted
        prep.transformers[0][1].steps.pop(0)
    prep.fit(prepare_inputs(frame(2_000, 0), NUMERIC, CATEGORICAL))
    rare = prep.named_transformers_["cat"].named_steps["onehot"].infrequent_categories_
    assert rare[0] is not None and len(rare[0]) > 0, "the fixture must exercise rare categories"
    assert MIN_CATEGORY_FREQUENCY > 1
    return prep


@pytest.mark.parametrize("unseen", [False, True])
def test_compiled_transform_equals_scikit_learn(fitted, unseen):
    compiled = compile_preprocessor(fitted, NUMERIC, CATEGORICAL)
    assert compiled is not None
    prepared = prepare_inputs(frame(3_000, 1, unseen=unseen), NUMERIC, CATEGORICAL)
    expected = fitted.transform(prepared)
    np.testing.assert_allclose(compiled.transform(prepared), expected, rtol=0, atol=1e-12)
    one_row = prepared.iloc[[5]]
    np.testing.assert_allclose(
        compiled.transform(one_row), fitted.transform(one_row), rtol=0, atol=1e-12
    )


def test_unrecognised_preprocessing_is_not_compiled(fitted):
    other = ColumnTransformer([("num", MinMaxScaler(), ["always_present"])])
    other.fit(frame(100, 2))
    assert compile_preprocessor(other, ["always_present"], []) is None
    assert compile_preprocessor(fitted, CATEGORICAL, NUMERIC) is None  # wrong layout


def test_scoring_model_uses_it_and_pickles_without_it(fitted):
    data = frame(2_000, 3)
    labels = (np.nan_to_num(data["amount"]) > 20).astype(int)
    pipeline = Pipeline([("prep", fitted), ("model", LogisticRegression(max_iter=500))])
    pipeline.fit(prepare_inputs(data, NUMERIC, CATEGORICAL), labels)
    model = ScoringModel(
        pipeline, NUMERIC, CATEGORICAL, (1.0, 0.0), 0.5, [Band("Low", 0.0)], [], {}
    )
    scores = model.predict_proba(data)
    assert model._compiled_transform() is not None
    restored = pickle.loads(pickle.dumps(model))
    assert "_compiled" not in restored.__dict__
    expected = pipeline.predict_proba(prepare_inputs(data, NUMERIC, CATEGORICAL))[:, 1]
    np.testing.assert_allclose(restored.predict_proba(data), scores, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)


def test_imputation_values_are_in_raw_units(fitted):
    """Filling a row with the reported values gives what the pipeline's own imputation gives."""
    fills = imputation_values(fitted)
    missing = frame(1, 4).assign(**dict.fromkeys(NUMERIC, np.nan))
    filled = missing.assign(**{name: fills[name] for name in NUMERIC})
    imputed, by_hand = (
        fitted.transform(prepare_inputs(rows, NUMERIC, CATEGORICAL))[:, : len(NUMERIC)]
        for rows in (missing, filled)
    )
    np.testing.assert_allclose(by_hand, imputed, rtol=0, atol=1e-9)
