"""Preprocessing steps of our own that travel inside the fitted pipelines (so they live in the
package the bento carries, not in ``training/``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin


def signed_log(values: np.ndarray) -> np.ndarray:
    """sign(x) * log(1 + |x|): monotone, defined for every number, NaN stays NaN."""
    return np.sign(values) * np.log1p(np.abs(values))


class SignedLog(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Compress heavy-tailed numbers (counts, amounts) before scaling, or pass them through.

    A linear model on raw counts sees a customer with 20x the median activity as a 20-sigma
    outlier, and its log-odds run to the bound; trees are indifferent. ``enabled`` is searched
    (``training/candidates.py``), so each model takes it where it helps.
    """

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled

    def fit(self, X: Any, y: Any = None) -> SignedLog:
        self.n_features_in_ = np.shape(X)[1]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype="float64")
        return signed_log(values) if self.enabled else values

    def inverse_transform(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype="float64")
        return np.sign(values) * np.expm1(np.abs(values)) if self.enabled else values
