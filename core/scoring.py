"""The scoring object that travels from training to serving: fitted transform, model,
calibration, decision threshold, bands and explanations in one picklable piece.

Serving never refits anything: it loads this object and calls ``score``. Missing values are
filled by the training-time imputation inside the pipeline and reported with each assessment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from core.columns import Columns, as_float
from core.compiled_transform import CompiledTransform, compile_preprocessor

EPS = 1e-12
LOGIT_BOUND = float(np.log((1 - EPS) / EPS))  # the log-odds of a probability clipped to EPS
COMPILED = "_compiled"
GROUPS = "_grouping"
# metadata key: lists of correlated features whose contributions are reported as one reason
REASON_GROUPS = "reason_groups"


@dataclass(frozen=True)
class Band:
    """A named score band: scores >= ``min_score`` and below the next band's minimum."""

    name: str
    min_score: float


@dataclass(frozen=True)
class Reason:
    """One reason for a score: a feature and its value, with the contribution (calibrated
    log-odds) of the feature and of the correlated features reported with it."""

    feature: str
    value: Any
    contribution: float
    grouped_with: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        value = self.value
        if isinstance(value, float):
            value = "missing" if np.isnan(value) else f"{value:,.4g}"
        grouped = (
            f" (with {', '.join(_words(name) for name in self.grouped_with)})"
            if self.grouped_with
            else ""
        )
        return f"{_words(self.feature)} is {value}{grouped}: {self.contribution:+.2f}"


@dataclass
class ScoringModel:
    """A fitted classifier with everything needed to score, band and explain a row."""

    pipeline: Pipeline
    numeric: list[str]
    categorical: list[str]
    calibration: tuple[float, float]
    threshold: float
    bands: list[Band]
    transformed_to_raw: list[int]
    imputation: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model inputs of ``frame`` as the fitted pipeline takes them."""
        return prepare_inputs(frame, self.numeric, self.categorical)

    def _prepared(self, rows: pd.DataFrame | Columns) -> Columns:
        return prepare_columns(rows, self.numeric, self.categorical)

    def _imputed(self, prepared: Columns) -> list[list[str]]:
        names = np.array(self.features)
        missing = np.empty((len(prepared), len(names)), dtype=bool)
        for j, name in enumerate(self.numeric):
            missing[:, j] = np.isnan(prepared[name])
        for j, name in enumerate(self.categorical, start=len(self.numeric)):
            missing[:, j] = [not isinstance(v, str) for v in prepared[name]]
        return [names[row].tolist() for row in missing]

    def _transform(self, prepared: Columns) -> np.ndarray:
        compiled = self._compiled_transform()
        if compiled is not None:
            return compiled.transform(prepared)
        return np.asarray(self.pipeline[:-1].transform(prepared.to_frame()), dtype="float64")

    def _compiled_transform(self) -> CompiledTransform | None:
        """The fitted preprocessing compiled to NumPy (leadrisk/compiled_transform.py), built
        once per loaded model; None when it cannot be compiled (scikit-learn is used)."""
        if COMPILED not in self.__dict__:
            prep = self.pipeline[:-1]
            steps = prep.steps if len(prep.steps) == 1 else []
            self.__dict__[COMPILED] = (
                compile_preprocessor(steps[0][1], self.numeric, self.categorical) if steps else None
            )
        return self.__dict__[COMPILED]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without what is derived on load (compiled transform, reason groups)."""
        return {k: v for k, v in self.__dict__.items() if k not in (COMPILED, GROUPS)}

    def _groups(self) -> tuple[list[tuple[int, ...]], np.ndarray]:
        """The reason groups as feature indices (every feature in exactly one; a feature not in
        ``metadata["reason_groups"]`` alone) and the features x groups membership matrix."""
        if GROUPS not in self.__dict__:
            index = {name: i for i, name in enumerate(self.features)}
            groups = [
                tuple(index[name] for name in group if name in index)
                for group in self.metadata.get(REASON_GROUPS, [])
            ]
            groups = [group for group in groups if group]
            grouped = {i for group in groups for i in group}
            groups += [(i,) for i in range(len(self.features)) if i not in grouped]
            membership = np.zeros((len(self.features), len(groups)))
            for column, group in enumerate(groups):
                membership[list(group), column] = 1.0
            self.__dict__[GROUPS] = (groups, membership)
        return self.__dict__[GROUPS]

    def _calibrated(self, transformed: np.ndarray) -> np.ndarray:
        slope, intercept = self.calibration
        raw = self._log_odds(transformed)
        return 1.0 / (1.0 + np.exp(-(slope * raw + intercept)))

    def _log_odds(self, transformed: np.ndarray) -> np.ndarray:
        """The estimator's uncalibrated log-odds, straight from the booster or the coefficients
        (scikit-learn's ``predict_proba`` wrappers cost more than the model on small batches),
        bounded as the calibration saw them in training (the logit of a clipped probability)."""
        model = self.pipeline[-1]
        if hasattr(model, "booster_"):
            raw = model.booster_.predict(transformed, raw_score=True, **_threads(model))
        elif hasattr(model, "coef_"):
            raw = transformed @ model.coef_[0] + model.intercept_[0]
        else:
            return _logit(model.predict_proba(transformed)[:, 1])
        return np.clip(raw, -LOGIT_BOUND, LOGIT_BOUND)

    def predict_proba(self, frame: pd.DataFrame | Columns) -> np.ndarray:
        """Calibrated probability of the positive class, one per row."""
        return self._calibrated(self._transform(self._prepared(frame)))

    def assess(self, frame: pd.DataFrame | Columns, k: int = 3) -> Assessment:
        """Score, band, top reasons and imputed features in one pass (the serving hot path)."""
        prepared = self._prepared(frame)
        transformed = self._transform(prepared)
        scores = self._calibrated(transformed)
        contributions = self._contributions(transformed)
        return Assessment(
            prepared=prepared,
            scores=scores,
            bands=self.band(scores),
            reasons=self._reasons(prepared, contributions, k),
            imputed=self._imputed(prepared),
        )

    def predict(self, frame: pd.DataFrame | Columns) -> np.ndarray:
        """Decisions at the saved threshold (1 = positive)."""
        return (self.predict_proba(frame) >= self.threshold).astype(int)

    def band(self, scores: np.ndarray) -> list[str]:
        ordered = sorted(self.bands, key=lambda b: b.min_score)
        mins = np.array([b.min_score for b in ordered])
        index = np.searchsorted(mins, scores, side="right") - 1
        return [ordered[max(i, 0)].name for i in index]

    def contributions(self, frame: pd.DataFrame | Columns) -> np.ndarray:
        """Per row and raw feature, the contribution to the calibrated log-odds."""
        return self._contributions(self._transform(self._prepared(frame)))

    def limit_threads(self, threads: int) -> None:
        """Cap the threads one prediction may use (LightGBM uses every core by default).

        A server scoring small batches in several processes wants 1: OpenMP threads that spin
        between tiny parallel regions take CPU from the other processes."""
        model = self.pipeline[-1]
        if hasattr(model, "booster_"):
            model.set_params(n_jobs=threads)

    def _contributions(self, transformed: np.ndarray) -> np.ndarray:
        model = self.pipeline[-1]
        if hasattr(model, "booster_"):
            per_column = model.booster_.predict(transformed, pred_contrib=True, **_threads(model))[
                :, :-1
            ]
        elif hasattr(model, "coef_"):
            per_column = transformed * model.coef_[0]
        else:
            per_column = self._occlusion(transformed, model)
        assign = np.zeros((len(self.transformed_to_raw), len(self.features)))
        assign[np.arange(len(self.transformed_to_raw)), self.transformed_to_raw] = 1.0
        return self.calibration[0] * (per_column @ assign)

    def _occlusion(self, transformed: np.ndarray, model: Any) -> np.ndarray:
        baseline = np.asarray(self.metadata["transformed_means"], dtype="float64")
        full = _logit(model.predict_proba(transformed)[:, 1])
        out = np.zeros_like(transformed)
        for column in range(transformed.shape[1]):
            occluded = transformed.copy()
            occluded[:, column] = baseline[column]
            out[:, column] = full - _logit(model.predict_proba(occluded)[:, 1])
        return out

    def top_reasons(self, frame: pd.DataFrame | Columns, k: int = 3) -> list[list[Reason]]:
        """The ``k`` reasons that moved each score most, either way, in plain words."""
        prepared = self._prepared(frame)
        return self._reasons(prepared, self._contributions(self._transform(prepared)), k)

    def raising_reasons(self, frame: pd.DataFrame | Columns, k: int = 3) -> list[list[Reason]]:
        """The up to ``k`` reasons that raised each score most: the case for a positive
        decision (e.g. off-boarding); a reason that lowered the risk does not justify acting."""
        prepared = self._prepared(frame)
        contributions = self._contributions(self._transform(prepared))
        return self._reasons(prepared, contributions, k, raising=True)

    def _reasons(
        self, prepared: Columns, contributions: np.ndarray, k: int, raising: bool = False
    ) -> list[list[Reason]]:
        """Top reasons per row. Correlated features (``metadata["reason_groups"]``) count as one
        reason: their contributions are summed, and the reason names the member that pushed
        hardest in the sum's direction. Alone, near-copies of one another get large opposite
        contributions that say nothing (docs/decisions/0010-grouped-and-raising-reasons.md)."""
        groups, membership = self._groups()
        totals = contributions @ membership
        ranking = np.where(totals > 0, totals, -np.inf) if raising else np.abs(totals)
        order = np.argsort(-ranking, axis=1)[:, :k]
        values = prepared.objects(self.features)
        reasons = []
        for row in range(len(prepared)):
            row_reasons = []
            for column in order[row]:
                total = float(totals[row, column])
                if raising and total <= 0:
                    break
                group = groups[column]
                lead = max(group, key=lambda i: contributions[row, i] * np.sign(total))
                others = tuple(self.features[i] for i in group if i != lead)
                row_reasons.append(
                    Reason(self.features[lead], _plain(values[row, lead]), total, others)
                )
            reasons.append(row_reasons)
        return reasons


@dataclass(frozen=True)
class Assessment:
    """Everything serving needs about a batch of rows, computed in one pass."""

    prepared: Columns  # the model inputs, typed as the pipeline takes them
    scores: np.ndarray
    bands: list[str]
    reasons: list[list[Reason]]
    imputed: list[list[str]]


def prepare_columns(
    rows: pd.DataFrame | Columns, numeric: list[str], categorical: list[str]
) -> Columns:
    """Select and type model inputs: numbers as float64, categories as str or NaN.

    Training and serving both go through this, so None (online store) and NaN (offline store)
    reach the fitted pipeline identically.
    """
    missing = [c for c in [*numeric, *categorical] if c not in rows]
    if missing:
        raise KeyError(f"input is missing feature columns {missing}")
    if isinstance(rows, pd.DataFrame):
        numbers = rows[numeric].to_numpy(dtype="float64", na_value=np.nan)
        columns = {name: numbers[:, i] for i, name in enumerate(numeric)}
        raw = {name: rows[name].to_numpy(dtype=object) for name in categorical}
    else:
        columns = {name: as_float(rows[name]) for name in numeric}
        raw = {name: rows[name] for name in categorical}
    for name, values in raw.items():
        columns[name] = np.array([v if isinstance(v, str) else np.nan for v in values], object)
    return Columns(columns, len(rows))


def prepare_inputs(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """:func:`prepare_columns` as a DataFrame with ``frame``'s index (for scikit-learn)."""
    return prepare_columns(frame, numeric, categorical).to_frame(index=frame.index)


def _threads(model: Any) -> dict[str, int]:
    """LightGBM's thread count for a prediction: the estimator's ``n_jobs`` when set."""
    return {"num_threads": model.n_jobs} if (model.n_jobs or 0) > 0 else {}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _logit(proba: np.ndarray) -> np.ndarray:
    proba = np.clip(proba, EPS, 1 - EPS)
    return np.log(proba / (1 - proba))


def _words(name: str) -> str:
    return name.replace("_", " ")
