"""Model registry: champion/challenger aliases, the promotion gate, rollback and the audit trail.

Every alias change is recorded as a tag ``audit.<sequence>`` on the registered model, so the audit
trail lives in the MLflow backend (SQLite by default, PostgreSQL in production) next to the
versions it describes.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from sqlalchemy import create_engine, make_url, text

from core.scoring import ScoringModel
from core.settings import Settings

CHAMPION, CHALLENGER = "champion", "challenger"
AUDIT_PREFIX = "audit."


class RegistryError(RuntimeError):
    """A registry operation cannot be carried out; the message says why."""


def ensure_database(uri: str) -> None:
    """Create the PostgreSQL database of an MLflow backend URI if it does not exist yet."""
    url = make_url(uri)
    if not url.drivername.startswith("postgresql") or not url.database:
        return
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    finally:
        engine.dispose()


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking/registry store and return a client."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_database(settings.mlflow_uri)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    return MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_version(name: str, version: str) -> ScoringModel:
    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def audit_trail(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Alias changes of a registered model, oldest first."""
    tags = client.get_registered_model(name).tags
    entries = [json.loads(v) for k, v in tags.items() if k.startswith(AUDIT_PREFIX)]
    return sorted(entries, key=lambda e: e["sequence"])


def set_alias(
    client: MlflowClient, name: str, alias: str, version: str, reason: str
) -> dict[str, Any]:
    """Move ``alias`` to ``version`` and record when, from which version, and why."""
    previous = alias_version(client, name, alias)
    entry = {
        "sequence": len(audit_trail(client, name)) + 1,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "alias": alias,
        "from_version": str(previous.version) if previous else None,
        "to_version": str(version),
        "reason": reason,
        "by": getpass.getuser(),
    }
    client.set_registered_model_alias(name, alias, str(version))
    client.set_registered_model_tag(
        name, f"{AUDIT_PREFIX}{entry['sequence']:06d}", json.dumps(entry)
    )
    return entry


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    new_score: float
    champion_score: float | None
    champion_version: str | None
    reason: str


def gate(
    new_score: float,
    champion_score: float | None,
    champion_version: str | None,
    metric: str,
    margin: float,
) -> GateDecision:
    """Promote only if the new model beats the champion on the same held-out data by ``margin``."""
    if champion_score is None:
        return GateDecision(True, new_score, None, None, "no champion yet")
    if new_score >= champion_score + margin:
        reason = (
            f"{metric} {new_score:.4f} beats champion v{champion_version} "
            f"{champion_score:.4f} by >= {margin}"
        )
        return GateDecision(True, new_score, champion_score, champion_version, reason)
    reason = (
        f"{metric} {new_score:.4f} does not beat champion v{champion_version} "
        f"{champion_score:.4f} by {margin}"
    )
    return GateDecision(False, new_score, champion_score, champion_version, reason)


def promote(client: MlflowClient, name: str, version: str, reason: str) -> dict[str, Any]:
    """Make ``version`` the champion by hand (the gate is for automatic promotion)."""
    client.get_model_version(name, version)  # raises if unknown
    return set_alias(client, name, CHAMPION, version, reason)


def rollback(client: MlflowClient, name: str, reason: str) -> dict[str, Any]:
    """Restore the champion that served before the current one."""
    current = alias_version(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back from")
    rolled_back = {
        str(e["from_version"])
        for e in audit_trail(client, name)
        if e["alias"] == CHAMPION and e["reason"].startswith("rollback")
    }
    history = [e["to_version"] for e in audit_trail(client, name) if e["alias"] == CHAMPION]
    current_version = str(current.version)  # MLflow returns an int; the audit trail keeps str
    for version in reversed(history):
        if version != current_version and version not in rolled_back:
            return set_alias(client, name, CHAMPION, version, f"rollback: {reason}")
    raise RegistryError(f"{name} has no earlier champion than v{current_version}")


def list_versions(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Versions with their aliases and headline metrics, newest first."""
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        run = client.get_run(mv.run_id) if mv.run_id else None
        metrics = run.data.metrics if run else {}
        rows.append(
            {
                "version": mv.version,
                "aliases": aliases.get(str(mv.version), []),
                "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                "test_roc_auc": metrics.get("test_roc_auc"),
                "test_pr_auc": metrics.get("test_pr_auc"),
                "run_id": mv.run_id,
            }
        )
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)
