"""Training sets, built only through Feast's point-in-time ``get_historical_features``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from feast import FeatureStore

from core.kinds import ModelKind
from core.settings import Settings
from features import store as feature_store
from features import tables


@dataclass(frozen=True)
class TrainingSet:
    """Features (exactly the FeatureService's columns), label, and the entity/time of each row."""

    features: pd.DataFrame
    label: pd.Series
    entities: pd.DataFrame
    numeric: list[str]
    categorical: list[str]

    @property
    def fingerprint(self) -> str:
        """Hash of the rows and columns, logged as lineage."""
        digest = hashlib.sha256()
        digest.update(pd.util.hash_pandas_object(self.features, index=False).to_numpy().tobytes())
        digest.update(pd.util.hash_pandas_object(self.label, index=False).to_numpy().tobytes())
        digest.update(",".join(self.features.columns).encode())
        return digest.hexdigest()[:16]


def entity_frame(kind: ModelKind, settings: Settings, cohort: str = tables.LABELED) -> pd.DataFrame:
    """Entities with the time their label is known: the point in time for feature retrieval."""
    labels = tables.read_table(tables.TABLES[kind.labels_table], settings.tables_dir)
    if "cohort" in labels.columns:
        labels = labels[labels["cohort"] == cohort]
    frame = labels.rename(columns={kind.label_time: "event_timestamp"})
    return frame.sort_values(kind.entity_key).reset_index(drop=True)


def build(kind: ModelKind, settings: Settings, store: FeatureStore | None = None) -> TrainingSet:
    """Fetch the model's FeatureService at each entity's label time."""
    store = store or feature_store.open_store(settings)
    entities = entity_frame(kind, settings)
    retrieved = feature_store.historical_features(
        store, kind.feature_service, entities[[kind.entity_key, "event_timestamp", kind.label]]
    )
    retrieved = retrieved.sort_values(kind.entity_key).reset_index(drop=True)
    service = feature_store.feature_service(store, kind.feature_service)
    columns = feature_store.feature_columns(service)
    features = retrieved[columns]
    categorical = feature_store.string_features(service)
    numeric = [c for c in columns if c not in categorical]
    return TrainingSet(
        features=features,
        label=retrieved[kind.label].astype("int64"),
        entities=retrieved[[kind.entity_key, "event_timestamp"]],
        numeric=numeric,
        categorical=categorical,
    )
