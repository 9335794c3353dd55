"""Open the Feast store for the configured profile; apply, materialize and read features.

``feature_store.yaml`` at the project root is the base; settings decide the profile:
- ``embedded``: file registry and SQLite online store under the data folder, file offline store;
- ``production``: PostgreSQL SQL registry and Redis online store, same offline sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import yaml
from feast import FeatureService, FeatureStore, FeatureView
from feast.repo_config import RepoConfig
from feast.types import Float64, Int64, String

from core.columns import Columns
from core.kinds import ModelKind
from core.progress import Report, step
from core.settings import PROJECT_ROOT, Settings
from features.definitions import definitions

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVENT_TIMESTAMP = "event_timestamp"


def repo_config(settings: Settings) -> RepoConfig:
    """The Feast config of the active profile."""
    base: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "feature_store.yaml").read_text())
    base["project"] = settings.feature_store.project
    feast_dir = settings.feast_dir
    feast_dir.mkdir(parents=True, exist_ok=True)
    if settings.profile == "production":
        base["registry"] = {
            "registry_type": "sql",
            "path": settings.feature_store.postgres_url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }
        base["online_store"] = {
            "type": "redis",
            "connection_string": settings.feature_store.redis_url,
        }
    else:
        base["registry"] = {"path": str(feast_dir / "registry.db"), "cache_ttl_seconds": 60}
        base["online_store"] = {"type": "sqlite", "path": str(feast_dir / "online_store.db")}
    return RepoConfig(repo_path=PROJECT_ROOT, **base)


def open_store(settings: Settings) -> FeatureStore:
    return FeatureStore(config=repo_config(settings), repo_path=str(PROJECT_ROOT))


def apply(settings: Settings) -> list[str]:
    """Register every definition; returns the names applied."""
    objects = definitions(settings)
    open_store(settings).apply(list(objects.values()))
    return list(objects)


@dataclass(frozen=True)
class MaterializeSummary:
    view: str
    start: datetime
    end: datetime
    rows: int
    entities: int
    seconds: float


def materialize(
    settings: Settings,
    incremental: bool = False,
    end: datetime | None = None,
    progress: Report = print,
) -> list[MaterializeSummary]:
    """Load the latest value of every online view into the online store, view by view."""
    store = open_store(settings)
    end = end or datetime.now(UTC)
    summaries = []
    for view in store.list_feature_views():
        if not view.online:
            continue
        start = _start_of(view, incremental)
        began = datetime.now(UTC)
        span = f"[{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}]"
        with step(progress, f"materializing {view.name} {span}"):
            store.materialize(start_date=start, end_date=end, feature_views=[view.name])
        seconds = (datetime.now(UTC) - began).total_seconds()
        rows, entities = _rows_in_range(view, start, end)
        summaries.append(MaterializeSummary(view.name, start, end, rows, entities, seconds))
        progress(f"  {view.name}: {entities:,} entities from {rows:,} rows in {seconds:.1f}s")
    return summaries


def _start_of(view: FeatureView, incremental: bool) -> datetime:
    if incremental and view.most_recent_end_time is not None:
        return view.most_recent_end_time.astimezone(UTC)
    return EPOCH


def _rows_in_range(view: FeatureView, start: datetime, end: datetime) -> tuple[int, int]:
    source = view.batch_source
    key = view.entity_columns[0].name
    query = (
        f"SELECT count(*), count(DISTINCT {key}) FROM read_parquet('{source.path}') "
        f"WHERE {source.timestamp_field} >= ? AND {source.timestamp_field} < ?"
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        rows, entities = con.execute(query, [start, end]).fetchone()
    return int(rows), int(entities)


def last_materialized(settings: Settings) -> dict[str, datetime | None]:
    """End of the last materialization window per online view (feature freshness)."""
    store = open_store(settings)
    return {
        view.name: view.most_recent_end_time for view in store.list_feature_views() if view.online
    }


def feature_service(store: FeatureStore, name: str) -> FeatureService:
    """From the registry cache: a fresh read would also reset Feast's request-plan cache."""
    return store.get_feature_service(name, allow_cache=True)


def feature_refs(service: FeatureService) -> list[str]:
    """``view:feature`` references of a FeatureService, in its declared order."""
    return [
        f"{projection.name_to_use()}:{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


def feature_columns(service: FeatureService) -> list[str]:
    """Column names of a FeatureService's features, as Feast returns them."""
    return [ref.split(":", 1)[1] for ref in feature_refs(service)]


def string_features(service: FeatureService) -> list[str]:
    """The FeatureService's categorical (String) features."""
    return [
        feature.name
        for projection in service.feature_view_projections
        for feature in projection.features
        if feature.dtype == String
    ]


def historical_features(
    store: FeatureStore, service_name: str, entity_df: pd.DataFrame
) -> pd.DataFrame:
    """Point-in-time correct features for each (entity, event_timestamp) row, in input order.

    Feast's file offline store drops a whole entity row when one view has rows for that entity
    but all of them lie after its timestamp (a customer whose first transaction follows the
    label). Each view is therefore fetched on its own and left-joined back: that view's features
    are missing, the others are kept, and no row silently leaves a training or scoring set.
    """
    service = feature_service(store, service_name)
    join_keys = {entity.join_key for entity in store.list_entities()}
    keys = [c for c in entity_df.columns if c in join_keys] + [EVENT_TIMESTAMP]
    requests = _with_utc_timestamps(entity_df[keys]).drop_duplicates(keys)
    result = _with_utc_timestamps(entity_df)
    for refs in _retrieval_groups(store, service):
        retrieved = store.get_historical_features(entity_df=requests, features=refs).to_df()
        columns = [ref.split(":", 1)[1] for ref in refs]
        features = _with_utc_timestamps(retrieved[keys + columns]).drop_duplicates(keys)
        result = result.merge(features, on=keys, how="left", validate="many_to_one")
    return result[[*entity_df.columns, *feature_columns(service)]]


def _retrieval_groups(store: FeatureStore, service: FeatureService) -> list[list[str]]:
    """The service's ``view:feature`` refs, one group per view; on-demand views ride along with
    the views they are computed from."""
    sources = {
        view.name: list(view.source_feature_view_projections)
        for view in store.list_on_demand_feature_views()
    }
    group_of: dict[str, int] = {}
    groups: list[list[str]] = []
    for projection in service.feature_view_projections:
        name = projection.name_to_use()
        anchors = sources.get(projection.name, [projection.name])
        index = next((group_of[a] for a in anchors if a in group_of), len(groups))
        if index == len(groups):
            groups.append([])
        for anchor in [name, *anchors]:
            group_of[anchor] = index
        groups[index] += [f"{name}:{feature.name}" for feature in projection.features]
    return groups


def _with_utc_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    timestamps = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True).astype("datetime64[ns, UTC]")
    return frame.reset_index(drop=True).assign(**{EVENT_TIMESTAMP: timestamps})


# The NumPy type of each Feast type's online values: numbers as float64 (a missing one is NaN,
# as the offline frames have it), strings as objects (a missing one is None)
ONLINE_DTYPES: dict[Any, Any] = {Float64: np.float64, Int64: np.float64, String: object}


@dataclass(frozen=True)
class OnlineRows:
    """One online read: the features in input order, and which entities the store knows."""

    columns: Columns  # the entity key, then the FeatureService's features
    found: np.ndarray  # per row: at least one stored (not on-demand) feature has a value

    @property
    def frame(self) -> pd.DataFrame:
        return self.columns.to_frame()


class OnlineReader:
    """Reads one FeatureService online; what does not change between reads is resolved once."""

    def __init__(self, store: FeatureStore, service: str | FeatureService) -> None:
        self.store = store
        self.service = feature_service(store, service) if isinstance(service, str) else service
        self.columns = feature_columns(self.service)
        on_demand = {view.name for view in store.list_on_demand_feature_views()}
        self.stored_columns = [
            feature.name
            for projection in self.service.feature_view_projections
            if projection.name not in on_demand
            for feature in projection.features
        ]
        self._dtypes = {
            feature.name: ONLINE_DTYPES.get(feature.dtype)
            for projection in self.service.feature_view_projections
            for feature in projection.features
        }

    def read(self, entity_rows: list[dict[str, Any]]) -> OnlineRows:
        """Latest online features of each entity row (one Feast call)."""
        values = self.store.get_online_features(
            features=self.service, entity_rows=entity_rows
        ).to_dict()
        keys = [c for c in values if c in entity_rows[0]] if entity_rows else []
        keyed = {key: np.asarray(values[key]) for key in keys}
        columns = Columns(keyed | self._typed_arrays(values), len(entity_rows))
        stored = [values[c] for c in self.stored_columns]
        found = np.array(
            [any(v is not None and v == v for v in row) for row in zip(*stored, strict=True)],
            dtype=bool,
        )
        return OnlineRows(columns, found)

    def typed(self, values: dict[str, list]) -> Columns:
        """The FeatureService's features from lists of Python values (a Feast response, or raw
        payloads with their on-demand features), as typed arrays."""
        return Columns(self._typed_arrays(values))

    def _typed_arrays(self, values: dict[str, list]) -> dict[str, np.ndarray]:
        return {c: _typed(values[c], self._dtypes[c]) for c in self.columns}


def _typed(values: list, dtype: Any) -> np.ndarray:
    """NumPy array of a known type (None becomes NaN for numbers); objects otherwise."""
    return np.array(values, dtype=dtype or object)


class ServingFeatures:
    """What the scorer reads: each model kind's FeatureService online, and the same features for
    raw payloads of entities not in the store (the service's on-demand views applied to them)."""

    def __init__(self, store: FeatureStore, kinds: list[ModelKind]) -> None:
        self.store = store
        self._readers = {kind.key: OnlineReader(store, kind.feature_service) for kind in kinds}
        on_demand = {view.name: view for view in store.list_on_demand_feature_views()}
        self._derivations = {
            kind.key: [
                on_demand[projection.name].feature_transformation.udf
                for projection in self._readers[kind.key].service.feature_view_projections
                if projection.name in on_demand
            ]
            for kind in kinds
        }

    def columns(self, kind: ModelKind) -> list[str]:
        return self._readers[kind.key].columns

    def read(self, kind: ModelKind, ids: Sequence[int]) -> OnlineRows:
        """Latest online features of the entities ``ids`` (one Feast call)."""
        return self._readers[kind.key].read([{kind.entity_key: int(i)} for i in ids])

    def from_payloads(self, kind: ModelKind, payloads: list[dict[str, Any]]) -> Columns:
        """Feature rows from raw payloads, with the registered on-demand features derived."""
        raw = {name: [payload[name] for payload in payloads] for name in payloads[0]}
        for derive in self._derivations[kind.key]:
            raw = raw | derive(raw)
        return self._readers[kind.key].typed(raw)
