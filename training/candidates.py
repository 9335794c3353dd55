"""Candidate models: one preprocessing design, three estimators, bounded search spaces.

Class imbalance is handled by class weights inside each estimator, so it is recomputed on the
training folds of every fit and never touches a validation fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import loguniform, randint, uniform
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core.transforms import SignedLog

MISSING_CATEGORY = "missing"
MIN_CATEGORY_FREQUENCY = 10


@dataclass(frozen=True)
class Candidate:
    """``servable``: explains each prediction exactly and cheaply (LightGBM ``pred_contrib`` or
    linear terms). A random forest is compared but not registered: its only per-prediction
    explanation is occlusion, about 2.5 s of CPU per customer at serving time."""

    name: str
    estimator: Any
    search_space: dict[str, Any]
    servable: bool = True


def preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Numbers: an optional signed log (off unless searched), median imputation with missing
    indicators, scaling. Categories: one-hot."""
    numeric_steps = Pipeline(
        [
            ("log", SignedLog()),
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
        ]
    )
    categorical_steps = Pipeline(
        [
            (
                "impute",
                SimpleImputer(
                    strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True
                ),
            ),
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=MIN_CATEGORY_FREQUENCY,
                    sparse_output=False,
                ),
            ),
        ]
    )
    return ColumnTransformer(
        [("num", numeric_steps, numeric), ("cat", categorical_steps, categorical)],
        verbose_feature_names_out=False,
    )


def candidates(seed: int) -> list[Candidate]:
    """The compared models, simplest first: cheapest to serve and explain, fewest knobs."""
    return [
        Candidate(
            "logistic_regression",
            LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
            # The signed log helps on heavy-tailed transaction aggregates and costs leads a
            # little (docs/decisions/0012-signed-log-for-logistic-regression.md). A grid of 6,
            # which the default 6 draws cover; C matters less.
            {"model__C": [0.1, 1.0, 10.0], "prep__num__log__enabled": [False, True]},
        ),
        Candidate(
            "random_forest",
            RandomForestClassifier(
                n_estimators=200, class_weight="balanced_subsample", n_jobs=1, random_state=seed
            ),
            {"model__max_depth": randint(6, 20), "model__min_samples_leaf": randint(1, 10)},
            servable=False,
        ),
        Candidate(
            "lightgbm",
            LGBMClassifier(
                class_weight="balanced", random_state=seed, n_jobs=1, verbose=-1, subsample_freq=1
            ),
            {
                "model__n_estimators": randint(150, 600),
                "model__learning_rate": loguniform(0.02, 0.15),
                "model__num_leaves": randint(8, 64),
                # Bounded depth: the served explanation (TreeSHAP) costs trees x leaves x depth^2
                # per row. Unbounded leaf-wise trees grew deep and made it the largest
                # per-request cost of the service; bounded, it is a few times cheaper at the
                # same PR-AUC (docs/decisions/0009-lightgbm-depth-bound.md).
                "model__max_depth": randint(4, 9),
                "model__min_child_samples": randint(10, 60),
                "model__subsample": uniform(0.7, 0.3),
                "model__colsample_bytree": uniform(0.5, 0.5),
                "model__reg_lambda": loguniform(1e-3, 10.0),
            },
        ),
    ]


def choose(
    cv_scores: dict[str, tuple[float, float]], folds: int, std_errors: float
) -> tuple[str, str]:
    """The one-standard-error rule: of ``cv_scores`` (name -> mean, std of the gate metric over
    ``folds`` folds; higher is better; simplest first, as ``candidates`` lists them), the first
    whose mean is within ``std_errors`` standard errors (std / sqrt(folds)) of the best mean.
    Returns the chosen name and why."""
    best = max(cv_scores, key=lambda name: cv_scores[name][0])
    best_mean, best_std = cv_scores[best]
    margin = std_errors * best_std / folds**0.5
    chosen = next(name for name, (mean, _) in cv_scores.items() if mean >= best_mean - margin)
    if chosen == best:
        return chosen, "best mean"
    return chosen, (
        f"within {std_errors:g} standard error ({margin:.4f}) of {best}'s {best_mean:.4f}, "
        "and simpler"
    )


def pipeline(candidate: Candidate, numeric: list[str], categorical: list[str]) -> Pipeline:
    return Pipeline([("prep", preprocessor(numeric, categorical)), ("model", candidate.estimator)])


def transformed_to_raw(prep: ColumnTransformer, raw_features: list[str]) -> list[int]:
    """For each transformed column, the index of the raw feature it came from."""
    index = {name: i for i, name in enumerate(raw_features)}
    by_length = sorted(raw_features, key=len, reverse=True)
    mapping = []
    for name in prep.get_feature_names_out():
        name = str(name).removeprefix("missingindicator_")
        if name in index:
            mapping.append(index[name])
            continue
        owner = next(raw for raw in by_length if name.startswith(f"{raw}_"))
        mapping.append(index[owner])
    return mapping


def imputation_values(prep: ColumnTransformer) -> dict[str, Any]:
    """The fill value the fitted pipeline uses for each missing raw feature (in raw units)."""
    numeric_steps = prep.named_transformers_["num"].named_steps
    fills = numeric_steps["impute"].statistics_
    if "log" in numeric_steps:  # the imputer may have seen signed logs
        fills = numeric_steps["log"].inverse_transform(fills.reshape(1, -1))[0]
    numeric = dict(zip(prep.transformers_[0][2], fills, strict=True))
    categorical = {name: MISSING_CATEGORY for name in prep.transformers_[1][2]}
    return {
        k: (float(v) if isinstance(v, np.floating) else v)
        for k, v in {**numeric, **categorical}.items()
    }


def correlated_groups(frame: pd.DataFrame, numeric: list[str], threshold: float) -> list[list[str]]:
    """Groups of numeric features linked by |Spearman correlation| >= ``threshold`` on ``frame``
    (connected components; groups of one left out), to be explained as one reason."""
    values = frame[numeric].astype("float64")
    values = values.loc[:, values.std() > 0]
    if values.shape[1] < 2:
        return []
    linked = values.corr(method="spearman").abs().fillna(0.0).to_numpy() >= threshold
    count, labels = connected_components(csr_matrix(linked), directed=False)
    names = list(values.columns)
    groups = [[names[i] for i in np.flatnonzero(labels == label)] for label in range(count)]
    return [group for group in groups if len(group) > 1]
