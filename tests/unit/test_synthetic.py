"""The synthetic generator: canonical tables, determinism, known signal, drift and chunking."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from features.sources.synthetic import DRIFTED_VALUES, DriftSpec, generate
from features.tables import (
    ALL_TABLES,
    CUSTOMER_LABELS,
    CUSTOMERS,
    DIRECTIONS,
    FAILED_STATUS,
    LABELED,
    LEAD_FLAGS,
    LEAD_LABELS,
    LEADS,
    TRANSACTIONS,
    UNLABELED,
)

START = date(2025, 1, 1)
DAYS = 120
END = pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=DAYS)
SIZE = {"customers": 3_000, "leads": 3_000, "transactions_per_customer": 30.0}
DRIFT_START = datetime(2025, 1, 20, tzinfo=UTC)
SHIFTS = {
    "total_time_on_website": 0.5,
    "lead_source": 0.3,
    "init_balance": -0.3,
    "kyc_level": 0.4,
    "amount": 0.5,
    "counterparty_country": 0.3,
}


def _generate(out_dir: Path, **overrides) -> dict[str, pd.DataFrame]:
    args = {**SIZE, "start": START, "days": DAYS, "seed": 7, **overrides}
    paths = generate(out_dir, **args)
    return {name: pd.read_parquet(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    return _generate(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    drift = DriftSpec(start=DRIFT_START, shifts=SHIFTS)
    return _generate(tmp_path_factory.mktemp("drifted"), drift=drift)


def test_writes_exactly_the_canonical_tables(tmp_path: Path) -> None:
    paths = generate(
        tmp_path,
        customers=200,
        leads=200,
        transactions_per_customer=5,
        start=START,
        days=DAYS,
        seed=1,
    )
    assert set(paths) == {spec.name for spec in ALL_TABLES}
    for spec in ALL_TABLES:
        assert paths[spec.name] == tmp_path / spec.filename
        assert pq.read_schema(paths[spec.name]).equals(spec.schema), spec.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(s.filename for s in ALL_TABLES)


def test_row_counts_and_unique_ids(world: dict[str, pd.DataFrame]) -> None:
    assert len(world[LEADS.name]) == len(world[LEAD_LABELS.name]) == SIZE["leads"]
    assert len(world[CUSTOMERS.name]) == len(world[CUSTOMER_LABELS.name]) == SIZE["customers"]
    per_customer = len(world[TRANSACTIONS.name]) / SIZE["customers"]
    assert 0.9 * SIZE["transactions_per_customer"] < per_customer
    assert per_customer < 1.3 * SIZE["transactions_per_customer"]
    for spec in ALL_TABLES:
        assert world[spec.name][spec.key].is_unique, spec.name
    assert world[LEADS.name].lead_id.tolist() == world[LEAD_LABELS.name].lead_id.tolist()


def test_same_seed_same_tables_and_other_seed_differs(
    tmp_path: Path, world: dict[str, pd.DataFrame]
) -> None:
    again = _generate(tmp_path / "again")
    for spec in ALL_TABLES:
        pd.testing.assert_frame_equal(again[spec.name], world[spec.name])
    other = _generate(tmp_path / "other", seed=8)
    for spec in ALL_TABLES:
        assert not other[spec.name].equals(world[spec.name]), spec.name


def test_label_balance_and_unlabeled_cohort(world: dict[str, pd.DataFrame]) -> None:
    assert 0.30 <= world[LEAD_LABELS.name].converted.mean() <= 0.46
    labels = world[CUSTOMER_LABELS.name]
    labeled = labels.cohort == LABELED
    assert set(labels.cohort) == {LABELED, UNLABELED}
    assert (~labeled).mean() == pytest.approx(0.1, abs=0.01)
    assert labels.suspended.isna().equals(~labeled)
    assert 0.06 <= labels.suspended[labeled].mean() <= 0.12
    assert (labels.label_at == END).all()


def test_lead_conversion_follows_the_known_signal(world: dict[str, pd.DataFrame]) -> None:
    leads, converted = world[LEADS.name], world[LEAD_LABELS.name].converted
    assert roc_auc_score(converted, leads.total_time_on_website) > 0.65
    rate = converted.groupby(leads.last_activity).mean()
    assert rate["SMS Sent"] > rate["Email Opened"] > rate["Email Bounced"]
    by_occupation = converted.groupby(leads.occupation).mean()
    assert by_occupation["Working Professional"] > by_occupation["Unemployed"] + 0.2
    by_origin = converted.groupby(leads.lead_origin).mean()
    assert by_origin["Lead Add Form"] > by_origin["Landing Page Submission"]
    assert converted[leads.do_not_email == 1].mean() < converted[leads.do_not_email == 0].mean()
    # Sales tags leak the outcome, as in the real data.
    assert converted[leads.tags == "Will revert after reading the email"].mean() > 0.8
    assert converted[leads.tags == "Ringing"].mean() < 0.1


def test_suspended_customers_behave_differently(world: dict[str, pd.DataFrame]) -> None:
    tx = world[TRANSACTIONS.name]
    per_customer = (
        tx.assign(
            night=tx.event_timestamp.dt.hour < 6,
            cross_border=tx.counterparty_country != tx.customer_country,
            failed=tx.status == FAILED_STATUS,
        )
        .groupby("customer_id")
        .agg(
            night=("night", "mean"),
            cross_border=("cross_border", "mean"),
            failed=("failed", "mean"),
            counterparties=("counterparty_id", "nunique"),
            amount=("amount", "median"),
        )
    )
    labels = world[CUSTOMER_LABELS.name].set_index("customer_id").suspended
    means = per_customer.join(labels, how="inner").groupby("suspended").mean()
    assert (means.loc[1] > 1.5 * means.loc[0]).all(), means
    customers = world[CUSTOMERS.name].set_index("customer_id").join(labels)
    basic = (customers.kyc_level == "basic").groupby(customers.suspended).mean()
    assert basic[1] > basic[0]


def test_values_are_plausible(world: dict[str, pd.DataFrame]) -> None:
    leads, customers, tx = (world[s.name] for s in (LEADS, CUSTOMERS, TRANSACTIONS))
    start = pd.Timestamp(START, tz="UTC")
    assert leads.created_at.between(start, END, inclusive="left").all()
    assert leads.created_at.is_monotonic_increasing
    origins = {"Landing Page Submission", "API", "Lead Add Form", "Lead Import"}
    assert set(leads.lead_origin) <= origins
    assert leads.occupation.isna().any() and leads.country.isna().any()
    assert leads[LEAD_FLAGS].isin([0, 1]).all().all()
    assert leads.total_visits.dropna().between(0, 30).all() and leads.total_visits.isna().any()
    assert leads.total_time_on_website.between(0, 2500).all()
    assert (leads.total_time_on_website == 0).mean() > 0.1
    assert leads.page_views_per_visit.dropna().between(0, 10).all()

    assert customers.profile_at.between(start, start + pd.Timedelta(days=DAYS / 4)).all()
    assert (customers.tenure_months >= 0).all() and (customers.init_balance > 0).all()

    assert (tx.amount > 0).all()
    assert set(tx.direction) == set(DIRECTIONS)
    assert set(tx.status) == {"completed", FAILED_STATUS}
    assert set(tx.type) == {"card", "transfer", "cash_withdrawal", "cash_deposit", "crypto"}
    joined = tx.merge(customers, on="customer_id")
    assert (joined.customer_country == joined.country).all()
    assert (joined.event_timestamp >= joined.profile_at).all() and (tx.event_timestamp < END).all()
    assert (tx.event_timestamp.dt.microsecond == 0).all()


def test_drift_shifts_only_named_features_after_start(
    world: dict[str, pd.DataFrame], drifted: dict[str, pd.DataFrame]
) -> None:
    for spec in (LEADS, CUSTOMERS, TRANSACTIONS):
        table, time_column = spec.name, spec.timestamp
        base, shifted = world[table], drifted[table]
        after = base[time_column] >= DRIFT_START
        assert 0.1 < after.mean() < 0.95, table
        named = [c for c in SHIFTS if c in base.columns]
        assert named, table
        pd.testing.assert_frame_equal(base.drop(columns=named), shifted.drop(columns=named))
        for column in named:
            before_base, before_shifted = base.loc[~after, column], shifted.loc[~after, column]
            pd.testing.assert_series_equal(before_base, before_shifted)
            if pd.api.types.is_float_dtype(base[column]):
                ratio = shifted.loc[after, column].mean() / base.loc[after, column].mean()
                assert ratio == pytest.approx(1 + SHIFTS[column], rel=1e-3), column
            else:
                value = DRIFTED_VALUES[table][column]
                changed = base.loc[after, column] != shifted.loc[after, column]
                assert (shifted.loc[after, column][changed] == value).all(), column
                gain = (shifted.loc[after, column] == value).mean()
                gain -= (base.loc[after, column] == value).mean()
                assert gain == pytest.approx(SHIFTS[column], abs=0.08), column
    for labels in (LEAD_LABELS, CUSTOMER_LABELS):
        pd.testing.assert_frame_equal(world[labels.name], drifted[labels.name])


def test_qualified_drift_name_targets_one_table(
    tmp_path: Path, world: dict[str, pd.DataFrame]
) -> None:
    drift = DriftSpec(start=datetime(2025, 1, 1), shifts={"customers.country": 1.0})
    result = _generate(tmp_path, drift=drift)
    drifted_country = DRIFTED_VALUES[CUSTOMERS.name]["country"]
    assert (result[CUSTOMERS.name].country == drifted_country).all()
    assert (result[TRANSACTIONS.name].customer_country == drifted_country).all()
    pd.testing.assert_frame_equal(result[LEADS.name], world[LEADS.name])


def test_chunking_keeps_the_shape(tmp_path: Path, world: dict[str, pd.DataFrame]) -> None:
    calls: list[str] = []
    chunked = _generate(tmp_path, chunk_customers=700, progress=calls.append)
    assert len(calls) == 2 * 5  # ceil(3000 / 700) chunks of leads, then of customers
    for spec in (LEADS, LEAD_LABELS, CUSTOMERS, CUSTOMER_LABELS):
        assert chunked[spec.name][spec.key].tolist() == world[spec.name][spec.key].tolist()
    tx = chunked[TRANSACTIONS.name]
    assert tx.transaction_id.tolist() == list(range(1, len(tx) + 1))
    assert len(tx) == pytest.approx(len(world[TRANSACTIONS.name]), rel=0.05)
    assert pq.ParquetFile(tmp_path / TRANSACTIONS.filename).metadata.num_row_groups == 5
    assert not tx.equals(world[TRANSACTIONS.name])


def test_empty_world_has_the_schema(tmp_path: Path) -> None:
    paths = generate(
        tmp_path, customers=0, leads=0, transactions_per_customer=10, start=START, days=DAYS, seed=1
    )
    for spec in ALL_TABLES:
        table = pq.read_table(paths[spec.name])
        assert table.num_rows == 0 and table.schema.equals(spec.schema)


@pytest.mark.parametrize(
    "shifts",
    [{"no_such_feature": 0.1}, {"kyc_level": 1.5}, {"amount": -1.0}, {"leads.amount": 0.1}],
)
def test_drift_rejects_unknown_features_and_bad_shifts(shifts: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="drift"):
        DriftSpec(start=DRIFT_START, shifts=shifts)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unlabeled_share"):
        generate(
            tmp_path,
            customers=10,
            leads=10,
            transactions_per_customer=1,
            start=START,
            days=DAYS,
            seed=1,
            unlabeled_share=1.5,
        )
    assert not list(tmp_path.iterdir())


def test_naive_drift_start_is_utc() -> None:
    naive = DriftSpec(start=datetime(2025, 2, 1), shifts={"amount": 0.1})
    assert naive.start_s == int(datetime(2025, 2, 1, tzinfo=UTC).timestamp())
