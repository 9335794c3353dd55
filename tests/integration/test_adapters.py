"""Dataset adapters: the real files become the canonical tables they promise, and every broken
input fails with a message naming file, column and row, leaving no table behind."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.settings import Settings, load_settings
from features import tables
from features.definitions import CUSTOMER_RISK_SERVICE, LEAD_SCORING_SERVICE, definitions
from features.prepare import parse_drift, prepare
from features.sources import amlsim, x_education
from features.sources.csv_input import InputFileError
from features.store import feature_columns

X_EDUCATION_ROWS = 9_240
X_EDUCATION_CONVERTED = 0.385
AMLSIM_CUSTOMERS = 20_000
AMLSIM_TRANSFERS = 120_558
AMLSIM_SUSPENDED = 1_804
LEAKAGE = [*tables.LEAD_SALES_CATEGORICAL, *tables.LEAD_SALES_NUMERIC]


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, env_for) -> Settings:
    return load_settings(env_for(tmp_path_factory.mktemp("adapters")))


@pytest.fixture(scope="module")
def real(real_dataset) -> Callable[[str], Path]:
    return real_dataset


@pytest.fixture(scope="module")
def x_leads(real, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = settings.data
    return x_education.load(
        real("x_education"), data.x_education_anchor_date, data.x_education_span_days
    )


@pytest.fixture(scope="module")
def aml(real, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    data = settings.data
    return amlsim.load(real("amlsim"), data.amlsim_anchor_date, data.unlabeled_share, data.seed)


# --- X Education --------------------------------------------------------------------------------


def test_x_education_rows_and_conversion_rate(x_leads) -> None:
    leads, labels = x_leads
    assert len(leads) == len(labels) == X_EDUCATION_ROWS
    assert leads["lead_id"].is_unique
    assert (leads["lead_id"].to_numpy() == labels["lead_id"].to_numpy()).all()
    assert labels["converted"].isin([0, 1]).all()
    assert abs(labels["converted"].mean() - X_EDUCATION_CONVERTED) <= 0.001


def test_x_education_unanswered_and_case_variants_are_normalised(x_leads, real) -> None:
    leads, _ = x_leads
    raw = pd.read_csv(real("x_education"), dtype=str)
    assert (raw == x_education.UNANSWERED).any().any(), "the raw file has 'Select' answers"
    assert raw["Lead Source"].isin(["google"]).any(), "the raw file has a lower-case variant"
    strings = [c for c in leads.columns if leads[c].dtype == object]
    assert len(strings) == len(tables.LEAD_CATEGORICAL) + len(
        tables.LEAD_ENGAGEMENT_CATEGORICAL + tables.LEAD_SALES_CATEGORICAL
    )
    for column in strings:
        values = pd.Series(leads[column].dropna().unique())
        assert x_education.UNANSWERED not in set(values), column
        assert not values.str.casefold().duplicated().any(), (column, sorted(values))
    sources = set(leads["lead_source"].dropna())
    assert "Google" in sources and "google" not in sources
    # 'Select' became missing, not a category of its own
    assert leads["city"].isna().sum() >= (raw["City"] == x_education.UNANSWERED).sum()


def test_x_education_constant_columns_are_dropped(x_leads, real) -> None:
    leads, _ = x_leads
    raw = pd.read_csv(real("x_education"), dtype=str)
    for column in x_education.CONSTANT_COLUMNS:
        assert raw[column].nunique() == 1, f"{column} is not constant in the source"
    assert list(leads.columns) == tables.LEADS.columns
    snake = {c.lower().replace(" ", "_") for c in x_education.CONSTANT_COLUMNS}
    assert not snake & set(leads.columns)
    assert "magazine" not in leads.columns


def test_x_education_created_at_is_deterministic_and_follows_lead_number(
    x_leads, real, settings: Settings
) -> None:
    leads, _ = x_leads
    data = settings.data
    again, _ = x_education.load(
        real("x_education"), data.x_education_anchor_date, data.x_education_span_days
    )
    pd.testing.assert_series_equal(leads["created_at"], again["created_at"])
    ordered = leads.sort_values("lead_id")["created_at"]
    assert ordered.is_monotonic_increasing and ordered.is_unique
    start = pd.Timestamp(data.x_education_anchor_date, tz="UTC")
    assert ordered.iloc[0] == start
    assert ordered.iloc[-1] < start + pd.Timedelta(days=data.x_education_span_days)


def test_x_education_prepare_writes_the_canonical_schema(real, env_for, tmp_path: Path) -> None:
    settings = load_settings(env_for(tmp_path))
    written = prepare("x_education", settings, progress=quiet)
    assert set(written) == {tables.LEADS.name, tables.LEAD_LABELS.name}
    for spec in (tables.LEADS, tables.LEAD_LABELS):
        assert pq.read_schema(written[spec.name]).equals(spec.schema)
    assert sorted(p.name for p in settings.tables_dir.iterdir()) == sorted(
        [tables.LEADS.filename, tables.LEAD_LABELS.filename, tables.SOURCES_FILE]
    )
    assert tables.source_of(tables.LEAD_LABELS, settings.tables_dir) == "x_education"


# --- AMLSim ---------------------------------------------------------------------------------------


def test_amlsim_customers_and_transfers(aml) -> None:
    customers, labels, transactions = aml
    assert len(customers) == len(labels) == AMLSIM_CUSTOMERS
    assert customers["customer_id"].is_unique
    assert len(transactions) == 2 * AMLSIM_TRANSFERS
    assert transactions["transaction_id"].is_unique
    by_transfer = transactions.set_index(transactions["transaction_id"] // 2)
    assert by_transfer.index.nunique() == AMLSIM_TRANSFERS
    out = by_transfer[by_transfer["direction"] == "out"]
    inn = by_transfer[by_transfer["direction"] == "in"]
    assert len(out) == len(inn) == AMLSIM_TRANSFERS
    inn = inn.loc[out.index]
    assert (out["customer_id"] == inn["counterparty_id"]).all()
    assert (out["counterparty_id"] == inn["customer_id"]).all()
    assert (out["amount"] == inn["amount"]).all()
    assert (out["event_timestamp"] == inn["event_timestamp"]).all()
    assert set(transactions["customer_id"]) <= set(customers["customer_id"])


def test_amlsim_suspended_rate_over_all_accounts(real, settings: Settings) -> None:
    data = settings.data
    _, labels, _ = amlsim.load(real("amlsim"), data.amlsim_anchor_date, 0.0, data.seed)
    assert (labels["cohort"] == tables.LABELED).all()
    assert int(labels["suspended"].sum()) == AMLSIM_SUSPENDED
    assert round(float(labels["suspended"].mean()), 3) == 0.090


def test_amlsim_unlabeled_cohort_has_null_labels(aml, settings: Settings) -> None:
    _, labels, transactions = aml
    unlabeled = labels["cohort"] == tables.UNLABELED
    assert set(labels["cohort"]) == {tables.LABELED, tables.UNLABELED}
    assert abs(unlabeled.mean() - settings.data.unlabeled_share) < 0.01
    assert labels.loc[unlabeled, "suspended"].isna().all()
    assert labels.loc[~unlabeled, "suspended"].notna().all()
    assert 0.085 <= labels.loc[~unlabeled, "suspended"].mean() <= 0.095
    assert (labels["label_at"] > transactions["event_timestamp"].max()).all()


def test_leakage_columns_are_not_in_the_scoring_services(settings: Settings) -> None:
    objects = definitions(settings)
    lead_columns = feature_columns(objects[LEAD_SCORING_SERVICE])
    for column in LEAKAGE:
        assert column not in lead_columns
    assert not [c for c in lead_columns if c.startswith("asymmetrique")]
    assert {"tags", "lead_quality", "lead_profile"}.isdisjoint(lead_columns)
    assert "converted" not in lead_columns
    assert "total_time_on_website" in lead_columns and "time_per_visit" in lead_columns
    risk_columns = feature_columns(objects[CUSTOMER_RISK_SERVICE])
    assert {"suspended", "cohort"}.isdisjoint(risk_columns)
    assert objects["lead_sales_assessment"].online is False


# --- Broken inputs --------------------------------------------------------------------------------

Mutation = Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame | str | None]]


def _set(frame: pd.DataFrame, row: int, column: str, value: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[row, column] = value
    return frame


def _write(folder: Path, files: dict[str, pd.DataFrame | str | None]) -> None:
    """A frame is written as CSV, a string verbatim; None means the file is absent."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, pd.DataFrame):
            content.to_csv(folder / name, index=False)
        elif isinstance(content, str):
            (folder / name).write_text(content)


def _header(frame: pd.DataFrame) -> str:
    return frame.head(0).to_csv(index=False)


def _digests(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def x_small(real) -> dict[str, pd.DataFrame]:
    raw = pd.read_csv(real("x_education"), dtype=str, keep_default_na=False)
    return {"Leads.csv": raw.head(20).reset_index(drop=True)}


@pytest.fixture(scope="module")
def aml_small() -> dict[str, pd.DataFrame]:
    nodes = pd.DataFrame(
        {
            "nodeid": [str(i) for i in range(10)],
            "isFraud": ["0", "0", "1", "0", "0", "1", "0", "0", "0", "0"],
            "init_balance": [f"{100 + 7.5 * i:.2f}" for i in range(10)],
            "fraudStep": ["-1", "-1", "3", "-1", "-1", "2", "-1", "-1", "-1", "-1"],
        }
    )
    transactions = pd.DataFrame(
        {
            "sourceNodeId": [str(i % 10) for i in range(12)],
            "targetNodeId": [str((i * 3 + 1) % 10) for i in range(12)],
            "value": [f"{10 + i:.2f}" for i in range(12)],
            "time": [str(1 + i // 3) for i in range(12)],
        }
    )
    return {amlsim.NODES_FILE: nodes, amlsim.TRANSACTIONS_FILE: transactions}


LEADS_CSV = "Leads.csv"
X_CASES: dict[str, tuple[Mutation, list[str]]] = {
    "missing file": (lambda f: {LEADS_CSV: None}, ["file not found"]),
    "empty file": (lambda f: {LEADS_CSV: ""}, ["file is empty"]),
    "header only": (lambda f: {LEADS_CSV: _header(f[LEADS_CSV])}, ["header but no rows"]),
    "missing column": (
        lambda f: {LEADS_CSV: f[LEADS_CSV].drop(columns=["Total Time Spent on Website"])},
        ["missing column 'Total Time Spent on Website'"],
    ),
    "misspelled column": (
        lambda f: {LEADS_CSV: f[LEADS_CSV].rename(columns={"TotalVisits": "Total Visits"})},
        ["missing column 'TotalVisits'", "found 'Total Visits'", "misspelled"],
    ),
    "text in a number": (
        lambda f: {LEADS_CSV: _set(f[LEADS_CSV], 3, "TotalVisits", "seven")},
        ["row 5", "column 'TotalVisits'", "expected a number", "'seven'"],
    ),
    "fraction in an id": (
        lambda f: {LEADS_CSV: _set(f[LEADS_CSV], 7, "Lead Number", "660727.5")},
        ["row 9", "column 'Lead Number'", "expected an integer"],
    ),
    "flag not yes/no": (
        lambda f: {LEADS_CSV: _set(f[LEADS_CSV], 2, "Do Not Email", "Maybe")},
        ["row 4", "column 'Do Not Email'", "expected Yes or No", "'Maybe'"],
    ),
    "label not binary": (
        lambda f: {LEADS_CSV: _set(f[LEADS_CSV], 5, "Converted", "2")},
        ["row 7", "column 'Converted'", "expected 0 or 1"],
    ),
    "duplicate id": (
        lambda f: {
            LEADS_CSV: _set(f[LEADS_CSV], 6, "Lead Number", f[LEADS_CSV].loc[1, "Lead Number"])
        },
        ["row 8", "column 'Lead Number'", "expected a unique id"],
    ),
}

NODES, TX = amlsim.NODES_FILE, amlsim.TRANSACTIONS_FILE
AML_CASES: dict[str, tuple[Mutation, str, list[str]]] = {
    "nodes missing": (lambda f: {**f, NODES: None}, NODES, ["file not found"]),
    "transactions missing": (lambda f: {**f, TX: None}, TX, ["file not found"]),
    "nodes empty": (lambda f: {**f, NODES: ""}, NODES, ["file is empty"]),
    "transactions empty": (lambda f: {**f, TX: ""}, TX, ["file is empty"]),
    "nodes header only": (
        lambda f: {**f, NODES: _header(f[NODES])},
        NODES,
        ["header but no rows"],
    ),
    "transactions header only": (
        lambda f: {**f, TX: _header(f[TX])},
        TX,
        ["header but no rows"],
    ),
    "nodes missing column": (
        lambda f: {**f, NODES: f[NODES].drop(columns=["init_balance"])},
        NODES,
        ["missing column 'init_balance'"],
    ),
    "transactions missing column": (
        lambda f: {**f, TX: f[TX].drop(columns=["value"])},
        TX,
        ["missing column 'value'"],
    ),
    "nodes misspelled column": (
        lambda f: {**f, NODES: f[NODES].rename(columns={"isFraud": "is_fraud"})},
        NODES,
        ["missing column 'isFraud'", "found 'is_fraud'", "misspelled"],
    ),
    "transactions misspelled column": (
        lambda f: {**f, TX: f[TX].rename(columns={"targetNodeId": "targetNodeID"})},
        TX,
        ["missing column 'targetNodeId'", "found 'targetNodeID'", "misspelled"],
    ),
    "nodes text in a number": (
        lambda f: {**f, NODES: _set(f[NODES], 2, "init_balance", "12,5x")},
        NODES,
        ["row 4", "column 'init_balance'", "expected a number", "'12,5x'"],
    ),
    "transactions fractional step": (
        lambda f: {**f, TX: _set(f[TX], 4, "time", "1.5")},
        TX,
        ["row 6", "column 'time'", "expected an integer"],
    ),
    "transactions negative amount": (
        lambda f: {**f, TX: _set(f[TX], 3, "value", "-5")},
        TX,
        ["row 5", "column 'value'", "expected an amount > 0"],
    ),
    "nodes duplicate id": (
        lambda f: {**f, NODES: _set(f[NODES], 5, "nodeid", "1")},
        NODES,
        ["row 7", "column 'nodeid'", "expected a unique id"],
    ),
    "nodes label not binary": (
        lambda f: {**f, NODES: _set(f[NODES], 8, "isFraud", "3")},
        NODES,
        ["row 10", "column 'isFraud'", "expected 0 or 1"],
    ),
    "transactions unknown node": (
        lambda f: {**f, TX: _set(f[TX], 2, "targetNodeId", "999")},
        TX,
        ["row 4", "column 'targetNodeId'", "expected a nodeid", "999"],
    ),
}


def _assert_fails_cleanly(
    source: str, settings: Settings, broken: Path, good: Path, expected: list[str]
) -> None:
    """Fails on an empty tables folder leaving it empty, and leaves earlier tables untouched."""
    with pytest.raises(InputFileError) as failure:
        prepare(source, settings, broken, progress=quiet)
    for fragment in expected:
        assert fragment in str(failure.value), (fragment, str(failure.value))
    assert _digests(settings.tables_dir) == {}

    prepare(source, settings, good, progress=quiet)
    before = _digests(settings.tables_dir)
    assert before
    with pytest.raises(InputFileError):
        prepare(source, settings, broken, progress=quiet)
    assert _digests(settings.tables_dir) == before


def test_small_valid_inputs_load(x_small, aml_small, tmp_path: Path, env_for) -> None:
    settings = load_settings(env_for(tmp_path / "data"))
    _write(tmp_path / "x", x_small)
    _write(tmp_path / "aml", aml_small)
    leads, _ = x_education.load(tmp_path / "x" / LEADS_CSV, "2025-01-01", 365)
    assert len(leads) == 20
    written = prepare("amlsim", settings, tmp_path / "aml", progress=quiet)
    assert len(pd.read_parquet(written[tables.TRANSACTIONS.name])) == 24
    # each table remembers its source: training runs record it as lineage
    assert tables.source_of(tables.CUSTOMERS, settings.tables_dir) == "amlsim"
    assert tables.source_of(tables.LEADS, settings.tables_dir) == "unknown"
    prepare("x_education", settings, tmp_path / "x" / LEADS_CSV, progress=quiet)
    assert tables.source_of(tables.LEADS, settings.tables_dir) == "x_education"
    assert tables.source_of(tables.TRANSACTIONS, settings.tables_dir) == "amlsim"


@pytest.mark.parametrize("case", list(X_CASES))
def test_x_education_bad_input(case: str, x_small, tmp_path: Path, env_for) -> None:
    mutate, expected = X_CASES[case]
    settings = load_settings(env_for(tmp_path / "data"))
    _write(tmp_path / "good", x_small)
    _write(tmp_path / "broken", mutate(x_small))
    broken = tmp_path / "broken" / LEADS_CSV
    _assert_fails_cleanly(
        "x_education", settings, broken, tmp_path / "good" / LEADS_CSV, [str(broken), *expected]
    )


@pytest.mark.parametrize("case", list(AML_CASES))
def test_amlsim_bad_input(case: str, aml_small, tmp_path: Path, env_for) -> None:
    mutate, file, expected = AML_CASES[case]
    settings = load_settings(env_for(tmp_path / "data"))
    _write(tmp_path / "good", aml_small)
    _write(tmp_path / "broken", mutate(aml_small))
    named = str(tmp_path / "broken" / file)
    _assert_fails_cleanly(
        "amlsim", settings, tmp_path / "broken", tmp_path / "good", [named, *expected]
    )


SYNTHETIC_CASES = {
    "negative customers": ("synthetic", "customers", -1, "customers must be >= 0, got -1"),
    "negative leads": ("synthetic", "leads", -5, "leads must be >= 0, got -5"),
    "negative rate": (
        "synthetic",
        "transactions_per_customer",
        -0.5,
        "transactions_per_customer must be >= 0, got -0.5",
    ),
    "no days": ("synthetic", "days", 0, "days must be >= 1, got 0"),
    "zero chunk": ("synthetic", "chunk_customers", 0, "chunk_customers must be >= 1, got 0"),
    "share above one": ("data", "unlabeled_share", 1.5, "unlabeled_share must be within [0, 1]"),
    "negative seed": ("data", "seed", -3, "seed must be >= 0, got -3"),
}


@pytest.mark.parametrize("case", list(SYNTHETIC_CASES))
def test_synthetic_bad_arguments(case: str, tmp_path: Path, env_for) -> None:
    group, name, value, expected = SYNTHETIC_CASES[case]
    settings = load_settings(env_for(tmp_path))
    settings.synthetic.customers = settings.synthetic.leads = 50
    setattr(getattr(settings, group), name, value)
    with pytest.raises(ValueError, match="synthetic data") as failure:
        prepare("synthetic", settings, progress=quiet)
    assert expected in str(failure.value)
    assert _digests(settings.tables_dir) == {}


def test_synthetic_reports_every_bad_argument_at_once(tmp_path: Path, env_for) -> None:
    settings = load_settings(env_for(tmp_path))
    settings.synthetic.customers, settings.synthetic.days = -1, 0
    with pytest.raises(ValueError) as failure:
        prepare("synthetic", settings, progress=quiet)
    assert "customers must be >= 0" in str(failure.value)
    assert "days must be >= 1" in str(failure.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("total_time_on_website=0.5", "expected 'feature=shift[,feature=shift]@YYYY-MM-DD'"),
        ("no_such_feature=0.5@2025-06-01", "unknown feature 'no_such_feature'"),
        ("kyc_level=1.5@2025-06-01", "is a probability, within [0, 1]"),
        ("amount=-1@2025-06-01", "must be > -1"),
    ],
)
def test_bad_drift_specs_are_rejected(text: str, expected: str) -> None:
    with pytest.raises(ValueError) as failure:
        parse_drift(text)
    assert expected in str(failure.value)


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_prepare_reports_a_bad_file(x_small, tmp_path: Path, env_for, invoke_cli) -> None:
    env = env_for(tmp_path / "data")
    broken = tmp_path / "broken" / LEADS_CSV
    _write(broken.parent, {LEADS_CSV: _set(x_small[LEADS_CSV], 3, "TotalVisits", "seven")})
    result = invoke_cli(["data", "prepare", "--source", "x_education", "--path", str(broken)], env)
    assert result.exit_code != 0
    assert f"error: {broken}: row 5, column 'TotalVisits'" in result.stderr
    assert _digests(tmp_path / "data") == {}

    missing = tmp_path / "nowhere.csv"
    result = invoke_cli(["data", "prepare", "--source", "x_education", "--path", str(missing)], env)
    assert result.exit_code != 0
    assert f"{missing}: file not found" in result.stderr


def test_cli_prepare_synthetic_bad_size(tmp_path: Path, env_for, invoke_cli) -> None:
    env = env_for(tmp_path / "data")
    result = invoke_cli(["data", "prepare", "--source", "synthetic", "--customers", "-2"], env)
    assert result.exit_code != 0
    assert "customers must be >= 0, got -2" in result.stderr
    assert _digests(tmp_path / "data") == {}
