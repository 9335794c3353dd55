"""The Feast store for real: point-in-time joins over the snapshots, online/offline parity, the
production profile on the local Redis and PostgreSQL, and the CLI commands."""

from __future__ import annotations

import math
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis
from feast.types import Float64, Int64, String
from sqlalchemy.engine import make_url

from core.kinds import LEAD, RISK
from core.settings import Settings, load_settings
from features import aggregates, store, tables
from features.definitions import CUSTOMER_RISK_SERVICE, LEAD_DERIVED, LEAD_SCORING_SERVICE
from training import dataset

WINDOWS = (7, 30, 90)
LABEL_AT = pd.Timestamp("2025-03-01", tz="UTC")

# customer, counterparty, amount, direction, status, event time (UTC)
HAND_MADE = [
    (1, 101, 100.0, "out", "completed", "2025-02-20 10:00:00"),
    (1, 102, 1000.0, "in", "completed", "2025-03-01 00:00:00"),  # exactly at the label time
    (1, 103, 5000.0, "in", "completed", "2025-03-10 09:00:00"),  # after the label
    (2, 201, 20.0, "out", "completed", "2025-01-29 23:59:59"),  # 1 s before the 30-day edge
    (2, 202, 10.0, "in", "completed", "2025-01-30 00:00:00"),  # on the 30-day edge
    (2, 203, 160.0, "out", "failed", "2025-02-21 23:59:59"),  # 1 s before the 7-day edge
    (2, 203, 80.0, "out", "completed", "2025-02-22 00:00:00"),  # on the 7-day edge
    (2, 204, 40.0, "in", "completed", "2025-02-28 23:59:59"),  # last second before the label
    (3, 301, 7.0, "out", "completed", "2025-03-05 02:00:00"),  # only after the label, at night
]


def online_features(feature_store, service, entity_rows: list[dict]) -> pd.DataFrame:
    """Latest online features for each entity row, one row per entity, in input order."""
    return store.OnlineReader(feature_store, service).read(entity_rows).frame


def as_of_now() -> datetime:
    """A point-in-time just after now, so rows written this second count as known."""
    return datetime.now(UTC) + timedelta(seconds=1)


def quiet(_: str) -> None:
    pass


# --- Point in time --------------------------------------------------------------------------------


def _hand_made_transactions() -> pd.DataFrame:
    frame = pd.DataFrame(
        HAND_MADE,
        columns=["customer_id", "counterparty_id", "amount", "direction", "status", "when"],
    )
    return pd.DataFrame(
        {
            "transaction_id": np.arange(1, len(frame) + 1),
            "customer_id": frame["customer_id"],
            "counterparty_id": frame["counterparty_id"],
            "amount": frame["amount"],
            "direction": frame["direction"],
            "type": "transfer",
            "counterparty_country": "GB",
            "customer_country": "GB",
            "status": frame["status"],
            "event_timestamp": pd.to_datetime(frame["when"], utc=True),
        }
    )


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory: pytest.TempPathFactory, env_for) -> tuple[Settings, pd.DataFrame]:
    """Three customers, nine transactions and labels at LABEL_AT, applied in their own project."""
    settings = load_settings(env_for(tmp_path_factory.mktemp("point_in_time")))
    settings.feature_store.windows_days = list(WINDOWS)
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "profile_at": pd.Timestamp("2025-01-01", tz="UTC"),
            **{c: "x" for c in tables.CUSTOMER_CATEGORICAL},
            "tenure_months": 1.0,
            "init_balance": 100.0,
        }
    )
    labels = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "label_at": LABEL_AT,
            "suspended": [1, 0, 0],
            "cohort": tables.LABELED,
        }
    )
    transactions = _hand_made_transactions()
    out = settings.tables_dir
    tables.write_table(customers, tables.CUSTOMERS, out)
    tables.write_table(labels, tables.CUSTOMER_LABELS, out)
    tables.write_table(transactions, tables.TRANSACTIONS, out)
    for spec in (tables.LEADS, tables.LEAD_LABELS):
        tables.write_arrow(spec.schema.empty_table(), spec, out)
    aggregates.build_snapshots(out, settings.feature_store.windows_days, [0, 1, 2, 3, 4, 5])
    store.apply(settings)
    return settings, transactions


def _historical(settings: Settings, rows: list[tuple[int, pd.Timestamp]]) -> pd.DataFrame:
    entity_df = pd.DataFrame(rows, columns=["customer_id", "event_timestamp"])
    frame = store.historical_features(store.open_store(settings), CUSTOMER_RISK_SERVICE, entity_df)
    return frame.set_index(["customer_id", "event_timestamp"]).sort_index()


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def test_label_time_features_exclude_later_transactions(hand_made) -> None:
    settings, _ = hand_made
    training = dataset.build(RISK, settings)
    features = training.features.set_index(training.entities["customer_id"])
    assert (training.entities["event_timestamp"] == LABEL_AT).all()

    # customer 1: the transaction at the label time and the one after it are not seen
    assert features.loc[1, "tx_count_30d"] == 1
    assert features.loc[1, "amount_sum_30d"] == 100.0
    assert features.loc[1, "amount_max_90d"] == 100.0
    assert features.loc[1, "in_count_90d"] == 0
    # customer 3 has no transaction before the label: no aggregate, not a future value, and the
    # row itself (with its profile) stays in the training set
    assert sorted(training.entities["customer_id"]) == [1, 2, 3]
    assert _missing(features.loc[3, "tx_count_30d"])
    assert _missing(features.loc[3, "amount_sum_90d"])
    assert features.loc[3, "country"] == "x" and features.loc[3, "init_balance"] == 100.0


def test_later_timestamps_include_the_later_transactions(hand_made) -> None:
    settings, _ = hand_made
    day = pd.Timedelta(days=1)
    got = _historical(
        settings,
        [
            (1, LABEL_AT + day),
            (1, pd.Timestamp("2025-03-11", tz="UTC")),
            (3, pd.Timestamp("2025-03-06", tz="UTC")),
        ],
    )
    after_label = got.loc[(1, LABEL_AT + day)]
    assert after_label["tx_count_30d"] == 2 and after_label["amount_sum_30d"] == 1100.0
    after_all = got.loc[(1, pd.Timestamp("2025-03-11", tz="UTC"))]
    assert after_all["tx_count_30d"] == 3 and after_all["amount_sum_30d"] == 6100.0
    assert after_all["amount_max_30d"] == 5000.0
    late = got.loc[(3, pd.Timestamp("2025-03-06", tz="UTC"))]
    assert late["tx_count_7d"] == 1 and late["night_share_7d"] == 1.0


def test_window_edges_are_exact(hand_made) -> None:
    settings, _ = hand_made
    at_label = _historical(settings, [(2, LABEL_AT)]).loc[(2, LABEL_AT)]
    # [D - 7d, D): 02-22 00:00 is in, 02-21 23:59:59 is out
    assert (at_label["tx_count_7d"], at_label["amount_sum_7d"]) == (2, 120.0)
    # [D - 30d, D): 01-30 00:00 is in, 01-29 23:59:59 is out
    assert (at_label["tx_count_30d"], at_label["amount_sum_30d"]) == (4, 290.0)
    assert (at_label["tx_count_90d"], at_label["amount_sum_90d"]) == (5, 310.0)
    assert at_label["failed_share_30d"] == 0.25
    assert at_label["distinct_counterparties_30d"] == 3

    next_day = LABEL_AT + pd.Timedelta(days=1)
    later = _historical(settings, [(2, next_day)]).loc[(2, next_day)]
    assert (later["tx_count_7d"], later["amount_sum_7d"]) == (1, 40.0)
    assert (later["tx_count_30d"], later["amount_sum_30d"]) == (3, 280.0)


def _oracle(tx: pd.DataFrame, customer: int, at: pd.Timestamp, window: int) -> dict[str, Any]:
    """Aggregates by brute force from the raw rows: the daily snapshot at or before ``at``."""
    day = at.floor("D")
    rows = tx[
        (tx["customer_id"] == customer)
        & (tx["event_timestamp"] >= day - pd.Timedelta(days=window))
        & (tx["event_timestamp"] < day)
    ]
    empty = rows.empty
    return {
        f"tx_count_{window}d": len(rows),
        f"in_count_{window}d": int((rows["direction"] == "in").sum()),
        f"out_count_{window}d": int((rows["direction"] == "out").sum()),
        f"amount_sum_{window}d": float(rows["amount"].sum()),
        f"amount_max_{window}d": None if empty else float(rows["amount"].max()),
        f"distinct_counterparties_{window}d": int(rows["counterparty_id"].nunique()),
        f"failed_share_{window}d": None if empty else float((rows["status"] == "failed").mean()),
        f"night_share_{window}d": (
            None if empty else float((rows["event_timestamp"].dt.hour < 6).mean())
        ),
    }


def test_every_day_matches_a_brute_force_oracle(hand_made) -> None:
    settings, tx = hand_made
    horizon = tx["event_timestamp"].max().floor("D") + pd.Timedelta(days=1)
    days = pd.date_range(pd.Timestamp("2025-01-25", tz="UTC"), horizon, freq="D")
    times = [*days, *(days + pd.Timedelta(hours=13))]
    got = _historical(settings, [(c, t) for c in (1, 2, 3) for t in times])
    checked = 0
    for (customer, at), row in got.iterrows():
        first_snapshot = tx.loc[tx["customer_id"] == customer, "event_timestamp"].min().floor(
            "D"
        ) + pd.Timedelta(days=1)
        for window in WINDOWS:
            for name, expected in _oracle(tx, customer, at, window).items():
                value = row[name]
                if at < first_snapshot or expected is None:
                    assert _missing(value), (customer, at, name, value)
                else:
                    assert value == pytest.approx(expected, rel=1e-12), (customer, at, name)
                checked += 1
    assert checked == len(times) * 3 * len(WINDOWS) * 8


# --- Online / offline parity ----------------------------------------------------------------------


def _feature_types(service) -> dict[str, Any]:
    return {
        feature.name: feature.dtype
        for projection in service.feature_view_projections
        for feature in projection.features
    }


def _same(a: Any, b: Any, dtype: Any) -> bool:
    """Exact equality; None and NaN are the same missing value; ints compare as ints."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if dtype == String:
        return isinstance(a, str) and a == b
    if dtype == Int64:
        return float(a).is_integer() and float(b).is_integer() and int(a) == int(b)
    return float(a) == float(b)


def _assert_frames_equal(
    left: pd.DataFrame, right: pd.DataFrame, key: str, types: dict[str, Any]
) -> int:
    left, right = left.set_index(key), right.set_index(key)
    assert sorted(left.index) == sorted(right.index)
    right = right.loc[left.index]
    differences = [
        (entity, column, left.at[entity, column], right.at[entity, column])
        for column, dtype in types.items()
        for entity in left.index
        if not _same(left.at[entity, column], right.at[entity, column], dtype)
    ]
    assert not differences, differences[:10]
    return int(left[list(types)].notna().to_numpy().sum())


def _sample_ids(settings: Settings, spec: tables.TableSpec, n: int, seed: int) -> list[int]:
    ids = tables.read_table(spec, settings.tables_dir)[spec.key]
    return ids.sample(n, random_state=seed).astype(int).tolist()


@pytest.mark.parametrize("kind", [LEAD, RISK], ids=["lead", "risk"])
def test_online_features_equal_historical_features_now(synthetic_settings, kind) -> None:
    settings = synthetic_settings
    feature_store = store.open_store(settings)
    service = store.feature_service(feature_store, kind.feature_service)
    types = _feature_types(service)
    spec = tables.LEADS if kind is LEAD else tables.CUSTOMERS
    ids = _sample_ids(settings, spec, 200, seed=11)

    online = online_features(
        feature_store, kind.feature_service, [{kind.entity_key: i} for i in ids]
    )
    entity_df = pd.DataFrame({kind.entity_key: ids, "event_timestamp": as_of_now()})
    offline = store.historical_features(feature_store, kind.feature_service, entity_df)

    assert list(online.columns) == [kind.entity_key, *store.feature_columns(service)]
    assert list(online[kind.entity_key]) == ids
    assert set(types) == set(store.feature_columns(service))
    if kind is LEAD:
        assert set(LEAD_DERIVED) <= set(types)
    non_null = _assert_frames_equal(
        online, offline[[kind.entity_key, *types]], kind.entity_key, types
    )
    assert non_null > 0.8 * len(ids) * len(types)


@pytest.mark.parametrize("kind", [LEAD, RISK], ids=["lead", "risk"])
def test_online_reader_finds_known_entities_only(synthetic_settings, kind) -> None:
    """An entity is found when a stored view has a value for it; the on-demand view's values
    (derived even from nothing) do not count. Numbers come back as float64, strings as object."""
    feature_store = store.open_store(synthetic_settings)
    reader = store.OnlineReader(feature_store, kind.feature_service)
    spec = tables.LEADS if kind is LEAD else tables.CUSTOMERS
    known = _sample_ids(synthetic_settings, spec, 3, seed=5)
    unknown = [-1, 10**9]
    rows = reader.read([{kind.entity_key: i} for i in [unknown[0], *known, unknown[1]]])

    assert rows.found.tolist() == [False, True, True, True, False]
    assert list(rows.frame.columns) == [kind.entity_key, *reader.columns]
    assert rows.frame[reader.stored_columns].iloc[[0, -1]].isna().all(axis=None)
    types = _feature_types(store.feature_service(feature_store, kind.feature_service))
    for column, dtype in types.items():
        expected = {String: object, Float64: np.float64}.get(dtype)
        if expected is not None:
            assert rows.frame[column].dtype == expected, column


# --- Production profile ---------------------------------------------------------------------------


def _admin_url(settings: Settings) -> str:
    url = make_url(settings.feature_store.postgres_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@pytest.fixture
def production_settings(
    synthetic_settings: Settings, synthetic_env: dict[str, str], postgres, redis_server
) -> Iterator[Settings]:
    """The synthetic tables behind a SQL registry in a fresh database and the local Redis."""
    project = f"lrprod_{uuid.uuid4().hex[:10]}"
    database = f"{project}_registry"
    admin = _admin_url(synthetic_settings)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    registry_url = make_url(synthetic_settings.feature_store.postgres_url).set(database=database)
    settings = load_settings(
        {
            **synthetic_env,
            "LEADRISK_PROFILE": "production",
            "LEADRISK_FEATURE_STORE__PROJECT": project,
            "LEADRISK_FEATURE_STORE__POSTGRES_URL": registry_url.render_as_string(False),
        }
    )
    try:
        yield settings
    finally:
        client = _redis(settings)
        keys = list(client.scan_iter(match=_project_keys(settings)))
        if keys:
            client.delete(*keys)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _redis(settings: Settings) -> redis.Redis:
    host, _, rest = settings.feature_store.redis_url.partition(":")
    return redis.Redis(host=host, port=int(rest.split(",")[0]))


def _project_keys(settings: Settings) -> bytes:
    """Feast's Redis keys end with the project name."""
    return b"*" + settings.feature_store.project.encode()


def _redis_keys(settings: Settings) -> int:
    return sum(1 for _ in _redis(settings).scan_iter(match=_project_keys(settings)))


@pytest.mark.services("postgres", "redis")
def test_production_profile_serves_the_same_values(
    production_settings: Settings, synthetic_settings: Settings
) -> None:
    settings = production_settings
    assert store.repo_config(settings).online_store.type == "redis"
    names = store.apply(settings)
    assert LEAD_SCORING_SERVICE in names and CUSTOMER_RISK_SERVICE in names
    summaries = store.materialize(settings, progress=quiet)
    assert {s.view for s in summaries} == {
        "lead_profile",
        "lead_engagement",
        "customer_profile",
        "customer_transactions",
    }
    assert _redis_keys(settings) > 0
    assert all(end is not None for end in store.last_materialized(settings).values())

    production, embedded = store.open_store(settings), store.open_store(synthetic_settings)
    for kind, spec in ((LEAD, tables.LEADS), (RISK, tables.CUSTOMERS)):
        rows = [{kind.entity_key: i} for i in _sample_ids(settings, spec, 25, seed=5)]
        types = _feature_types(store.feature_service(embedded, kind.feature_service))
        _assert_frames_equal(
            online_features(production, kind.feature_service, rows),
            online_features(embedded, kind.feature_service, rows),
            kind.entity_key,
            types,
        )

    # Feast's own teardown of this project's online rows (FeatureStore.teardown would also delete
    # every other project in the registry)
    production._get_provider().teardown_infra(
        settings.feature_store.project, production.list_feature_views(), production.list_entities()
    )
    assert _redis_keys(settings) == 0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_service_fails_under_ci_and_skips_elsewhere(
    require_service, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"redis at 127.0.0.1:{port} is unreachable"):
        require_service("127.0.0.1", port, "redis")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="unreachable"):
        require_service("127.0.0.1", port, "redis")


# --- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def cli_world(tmp_path, env_for) -> Iterator[dict[str, str]]:
    yield env_for(tmp_path, LEADRISK_SYNTHETIC__TRANSACTIONS_PER_CUSTOMER="5")


def test_cli_apply_and_materialize_print_summaries(cli_world, invoke_cli) -> None:
    env = cli_world
    prepared = invoke_cli(
        ["data", "prepare", "--source", "synthetic", "--customers", "300", "--leads", "300"], env
    )
    assert prepared.exit_code == 0, prepared.output
    settings = load_settings(env)

    applied = invoke_cli(["features", "apply"], env)
    assert applied.exit_code == 0, applied.output
    project = env["LEADRISK_FEATURE_STORE__PROJECT"]
    assert f"applied 10 objects to project {project!r} (embedded profile)" in applied.stdout
    assert LEAD_SCORING_SERVICE in applied.stdout and CUSTOMER_RISK_SERVICE in applied.stdout

    full = invoke_cli(["features", "materialize"], env)
    assert full.exit_code == 0, full.output
    snapshots = pd.read_parquet(settings.tables_dir / aggregates.SNAPSHOTS_FILE)
    expected = 300 + 300 + 300 + snapshots["customer_id"].nunique()
    assert f"materialized 4 views, {expected:,} entity rows written" in full.stdout

    again = invoke_cli(["features", "materialize", "--incremental"], env)
    assert again.exit_code == 0, again.output
    assert "materialized 4 views, 0 entity rows written" in again.stdout
