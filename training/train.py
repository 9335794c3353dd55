"""``leadrisk train lead|risk``: compare candidates, calibrate, threshold, evaluate, register."""

from __future__ import annotations

import json
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.models import infer_signature
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    RandomizedSearchCV,
    StratifiedKFold,
    cross_val_predict,
    cross_validate,
    train_test_split,
)

from core import reference, risk_rules
from core.kinds import MODEL_KINDS, ModelKind
from core.progress import Report, step
from core.scoring import REASON_GROUPS, Band, ScoringModel, prepare_inputs
from core.settings import PROJECT_ROOT, Settings
from training import candidates as cands
from training import dataset, evaluate, registry


@dataclass
class TrainReport:
    kind: str
    model: str
    version: str
    candidates: dict[str, dict[str, str]]
    chosen: str
    test: dict[str, float]
    oof: dict[str, float]
    lift: pd.DataFrame
    bands: list[Band]
    gate: registry.GateDecision
    run_id: str
    training_set_hash: str
    extras: dict[str, Any] = field(default_factory=dict)


def train(
    kind_key: str,
    settings: Settings,
    progress: Report = print,
    source: str = "unknown",
) -> TrainReport:
    """Train, evaluate and register one model; promote it if it passes the gate."""
    kind = MODEL_KINDS[kind_key]
    cfg = settings.training
    with step(progress, f"[{kind.key}] building training set from {kind.feature_service} (Feast)"):
        ts = dataset.build(kind, settings)
    X = prepare_inputs(ts.features, ts.numeric, ts.categorical)
    y = ts.label.to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=cfg.test_size, stratify=y, random_state=cfg.seed
    )
    progress(
        f"[{kind.key}] {len(X):,} rows ({y.mean():.1%} positive), {X.shape[1]} features; "
        f"train {len(X_train):,} / held-out {len(X_test):,}"
    )
    folds = StratifiedKFold(n_splits=cfg.cv_folds, shuffle=True, random_state=cfg.seed)
    metric = kind.gate_metric(cfg)
    cv_table, best = _compare(X_train, y_train, ts, folds, settings, metric, progress)
    servable = {c.name: best[c.name][1:] for c in cands.candidates(cfg.seed) if c.servable}
    chosen, why = cands.choose(servable, cfg.cv_folds, cfg.selection_std_errors)
    pipe = best[chosen][0]
    progress(f"[{kind.key}] chosen: {chosen} (cv {metric} {best[chosen][1]:.4f}; {why})")

    oof_raw = cross_val_predict(clone(pipe), X_train, y_train, cv=folds, method="predict_proba")[
        :, 1
    ]
    calibration = _fit_calibration(oof_raw, y_train)
    oof = _apply_calibration(oof_raw, calibration)
    threshold, bands = kind.decision_rules(oof, y_train, cfg)
    pipe.fit(X_train, y_train)
    model = ScoringModel(
        pipeline=pipe,
        numeric=ts.numeric,
        categorical=ts.categorical,
        calibration=calibration,
        threshold=threshold,
        bands=bands,
        transformed_to_raw=cands.transformed_to_raw(pipe[:-1][0], [*ts.numeric, *ts.categorical]),
        imputation=cands.imputation_values(pipe[:-1][0]),
        metadata={
            "model": kind.registered_name,
            "feature_service": kind.feature_service,
            "estimator": chosen,
            "selection": why,
            "transformed_means": np.asarray(pipe[:-1].transform(X_train)).mean(axis=0).tolist(),
            "threshold_rule": kind.threshold_rule(cfg),
            "pattern_cuts": risk_rules.pattern_cuts(X_train) if kind.has_patterns else {},
            REASON_GROUPS: cands.correlated_groups(
                X_train, ts.numeric, cfg.reason_group_correlation
            ),
        },
    )
    test_score = model.predict_proba(X_test)
    test_metrics = evaluate.metrics(y_test, test_score, threshold)
    oof_metrics = evaluate.metrics(y_train, oof, threshold)
    lift = evaluate.lift_table(y_test, test_score)
    importance = _importance(model, X_test)

    client = registry.connect(settings)
    champion = registry.alias_version(client, kind.registered_name, registry.CHAMPION)
    champion_score = None
    if champion is not None:
        old = registry.load_version(kind.registered_name, champion.version)
        champion_score = evaluate.metrics(y_test, old.predict_proba(X_test), old.threshold)[metric]
    decision = registry.gate(
        test_metrics[metric],
        champion_score,
        str(champion.version) if champion else None,
        metric,
        cfg.champion_margin,
    )
    evaluation = Evaluation(
        chosen=chosen,
        cv_table=cv_table,
        y_test=y_test,
        test_score=test_score,
        test_metrics=test_metrics,
        oof=oof,
        oof_metrics=oof_metrics,
        lift=lift,
        importance=importance,
    )
    with step(progress, f"[{kind.key}] logging the run and registering {kind.registered_name}"):
        run_id, version = _log_run(kind, settings, model, ts, X_train, evaluation, source)
    alias = registry.CHAMPION if decision.promote else registry.CHALLENGER
    registry.set_alias(client, kind.registered_name, alias, version, f"gate: {decision.reason}")
    progress(
        f"[{kind.key}] registered {kind.registered_name} v{version} as {alias}: {decision.reason}"
    )
    return TrainReport(
        kind=kind.key,
        model=kind.registered_name,
        version=version,
        candidates=cv_table,
        chosen=chosen,
        test=test_metrics,
        oof=oof_metrics,
        lift=lift,
        bands=bands,
        gate=decision,
        run_id=run_id,
        training_set_hash=ts.fingerprint,
        extras={"importance": importance},
    )


def _compare(X, y, ts, folds, settings, metric, progress):
    """Bounded seeded search per candidate, then 5-fold CV of its best setting on every metric."""
    cfg = settings.training
    scoring = evaluate.CV_SCORING[metric]
    table: dict[str, dict[str, str]] = {}
    best: dict[str, tuple[Any, float, float]] = {}
    for candidate in cands.candidates(cfg.seed):
        search = RandomizedSearchCV(
            cands.pipeline(candidate, ts.numeric, ts.categorical),
            candidate.search_space,
            n_iter=cfg.search_iterations,
            scoring=scoring,
            cv=folds,
            random_state=cfg.seed,
            n_jobs=2,
            refit=False,
        )
        searching = (
            f"  searching {candidate.name} "
            f"({cfg.search_iterations} settings x {cfg.cv_folds} folds, then CV of the best)"
        )
        with step(progress, searching, total=2) as advance:
            search.fit(X, y)
            advance(1)
            pipe = cands.pipeline(candidate, ts.numeric, ts.categorical).set_params(
                **search.best_params_
            )
            scores = cross_validate(pipe, X, y, cv=folds, scoring=evaluate.CV_SCORING, n_jobs=2)
            advance(1)
        row = {}
        for name in evaluate.CV_SCORING:
            values = scores[f"test_{name}"]
            values = -values if name in ("log_loss", "brier") else values
            row[name] = f"{values.mean():.4f} +- {values.std():.4f}"
        table[candidate.name] = row
        gate = scores[f"test_{metric}"]
        best[candidate.name] = (pipe, float(np.mean(gate)), float(np.std(gate)))
        progress(f"    {candidate.name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return table, best


def _fit_calibration(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling on out-of-fold log-odds (class weights distort raw probabilities)."""
    logit = np.log(np.clip(raw, 1e-12, 1 - 1e-12) / np.clip(1 - raw, 1e-12, 1))
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(logit.reshape(-1, 1), y)
    return float(platt.coef_[0, 0]), float(platt.intercept_[0])


def _apply_calibration(raw: np.ndarray, calibration: tuple[float, float]) -> np.ndarray:
    logit = np.log(np.clip(raw, 1e-12, 1 - 1e-12) / np.clip(1 - raw, 1e-12, 1))
    return 1 / (1 + np.exp(-(calibration[0] * logit + calibration[1])))


def _importance(model: ScoringModel, X: pd.DataFrame) -> pd.DataFrame:
    contributions = np.abs(model.contributions(X)).mean(axis=0)
    frame = pd.DataFrame({"feature": model.features, "mean_abs_contribution": contributions})
    estimator = model.pipeline[-1]
    if hasattr(estimator, "booster_"):
        gain = estimator.booster_.feature_importance(importance_type="gain")
        per_raw = np.zeros(len(model.features))
        np.add.at(per_raw, model.transformed_to_raw, gain)
        frame["gain"] = per_raw
    return frame.sort_values("mean_abs_contribution", ascending=False).reset_index(drop=True)


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    import feast
    import lightgbm

    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "lightgbm": lightgbm.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "feast": feast.__version__,
        "mlflow": mlflow.__version__,
    }


@dataclass(frozen=True)
class Evaluation:
    """What the run measured, as logged to MLflow."""

    chosen: str
    cv_table: dict[str, dict[str, str]]
    y_test: np.ndarray
    test_score: np.ndarray
    test_metrics: dict[str, float]
    oof: np.ndarray
    oof_metrics: dict[str, float]
    lift: pd.DataFrame
    importance: pd.DataFrame


def _log_run(
    kind: ModelKind,
    settings: Settings,
    model: ScoringModel,
    ts: dataset.TrainingSet,
    X_train: pd.DataFrame,
    ev: Evaluation,
    source: str,
) -> tuple[str, str]:
    cfg = settings.training
    chosen, y_test, test_score, oof = ev.chosen, ev.y_test, ev.test_score, ev.oof
    _use_experiment(kind.registered_name, settings)
    with (
        mlflow.start_run(run_name=f"{kind.key}-{chosen}") as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        out = Path(tmp)
        mlflow.set_tags(
            {
                "git_commit": _git_commit(),
                "training_set_hash": ts.fingerprint,
                "feature_service": kind.feature_service,
                "data_source": source,
                "seed": str(cfg.seed),
                "estimator": chosen,
                "selection": model.metadata["selection"],
                **{f"version.{k}": v for k, v in _versions().items()},
            }
        )
        params = {k: v for k, v in model.pipeline[-1].get_params().items() if _loggable(v)}
        mlflow.log_params({f"model.{k}": v for k, v in params.items()})
        mlflow.log_params(
            {
                "threshold": model.threshold,
                "threshold_rule": model.metadata["threshold_rule"],
                "calibration_slope": model.calibration[0],
                "calibration_intercept": model.calibration[1],
                "cv_folds": cfg.cv_folds,
                "search_iterations": cfg.search_iterations,
                "test_size": cfg.test_size,
                "bands": json.dumps([[b.name, b.min_score] for b in model.bands]),
            }
        )
        (out / "cv_comparison.json").write_text(json.dumps(ev.cv_table, indent=2))
        ev.lift.to_csv(out / "lift_table.csv", index=False)
        evaluate.calibration_table(y_test, test_score).to_csv(out / "calibration.csv", index=False)
        ev.importance.to_csv(out / "importance.csv", index=False)
        evaluate.save_plots(y_test, test_score, ev.importance, out / "plots", kind.registered_name)
        _write_reference(model, X_train, oof, out / reference.ARTIFACT)
        mlflow.log_artifacts(str(out))
        example = ts.features.loc[X_train.index[:5]]
        signature = infer_signature(example, model.predict_proba(example))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=kind.registered_name,
            serialization_format="cloudpickle",
        )
        # After log_model, which links them to the logged model as they are written; logged
        # before, log_model re-inserts them with the model's id and that batch fails on MLflow's
        # metric key (on PostgreSQL, psycopg then logs "pipeline aborted").
        mlflow.log_metrics({f"test_{k}": v for k, v in ev.test_metrics.items()})
        mlflow.log_metrics({f"oof_{k}": v for k, v in ev.oof_metrics.items()})
        return run.info.run_id, str(info.registered_model_version)


def _use_experiment(name: str, settings: Settings) -> None:
    """Keep artifacts under the data folder: MLflow's default is ``./mlruns`` of the cwd."""
    if mlflow.get_experiment_by_name(name) is None:
        location = (settings.mlflow_artifacts_dir / name).resolve().as_uri()
        mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)


def _write_reference(
    model: ScoringModel, X_train: pd.DataFrame, oof: np.ndarray, out: Path
) -> None:
    """The monitoring reference: training features with out-of-fold scores and their bands."""
    reference.write_reference(X_train[model.features], oof, model.band(oof), out)


def _loggable(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None
