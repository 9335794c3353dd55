"""IBM AMLSim 20K sample -> canonical ``customers``, ``customer_labels`` and ``transactions``.

Mapping (documented in docs/data.md):
- an account is a customer; ``isFraud`` is the SUSPENDED label (``fraudStep`` is not used);
- simulation step ``s`` happens on day ``anchor + (s - 1)`` at 12:00 UTC (steps carry no time of
  day, so night-time shares are zero on this source);
- each transfer appears twice, once per side: ``out`` for the sender, ``in`` for the receiver
  (``transaction_id = 2 * row`` for the sender's view and ``2 * row + 1`` for the receiver's);
- labels are observed the day after the last step; a seeded share of customers is held back as
  the unlabeled cohort that ``leadrisk risk offboard`` scores.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features import tables
from features.sources.csv_input import check_rows, read_csv_checked

NODES_FILE, TRANSACTIONS_FILE = "nodes.csv", "transactions.csv"
STEP_TIME_OF_DAY = timedelta(hours=12)


def load(
    folder: Path, anchor: str, unlabeled_share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (customers, customer_labels, transactions) as canonical frames."""
    nodes_path, tx_path = folder / NODES_FILE, folder / TRANSACTIONS_FILE
    nodes = read_csv_checked(
        nodes_path, numeric=["init_balance"], integer=["nodeid", "isFraud"], text=[]
    )
    check_rows(nodes_path, nodes["nodeid"].duplicated(), nodes["nodeid"], "nodeid", "a unique id")
    check_rows(nodes_path, ~nodes["isFraud"].isin([0, 1]), nodes["isFraud"], "isFraud", "0 or 1")
    raw_tx = read_csv_checked(
        tx_path, numeric=["value"], integer=["sourceNodeId", "targetNodeId", "time"], text=[]
    )
    known = nodes["nodeid"]
    for column in ("sourceNodeId", "targetNodeId"):
        check_rows(tx_path, ~raw_tx[column].isin(known), raw_tx[column], column, "a nodeid")
    check_rows(tx_path, raw_tx["time"] < 1, raw_tx["time"], "time", "a step >= 1")
    check_rows(tx_path, raw_tx["value"] <= 0, raw_tx["value"], "value", "an amount > 0")

    start = pd.Timestamp(datetime.fromisoformat(anchor).replace(tzinfo=UTC))
    label_at = start + pd.Timedelta(days=int(raw_tx["time"].max()))
    customers = _customers(nodes, start)
    labels = _labels(nodes, label_at, unlabeled_share, seed)
    transactions = _transactions(raw_tx, start)
    return customers, labels, transactions


def _customers(nodes: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    customers = pd.DataFrame({"customer_id": nodes["nodeid"], "profile_at": start})
    for column in tables.CUSTOMER_CATEGORICAL:
        customers[column] = None
    customers["tenure_months"] = np.nan
    customers["init_balance"] = nodes["init_balance"]
    return customers[tables.CUSTOMERS.columns]


def _labels(
    nodes: pd.DataFrame, label_at: pd.Timestamp, unlabeled_share: float, seed: int
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unlabeled = rng.random(len(nodes)) < unlabeled_share
    suspended = nodes["isFraud"].astype("Int64").mask(unlabeled)
    return pd.DataFrame(
        {
            "customer_id": nodes["nodeid"],
            "label_at": label_at,
            "suspended": suspended,
            "cohort": np.where(unlabeled, tables.UNLABELED, tables.LABELED),
        }
    )


def _transactions(raw: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    when = start + pd.to_timedelta(raw["time"] - 1, unit="D") + STEP_TIME_OF_DAY
    row = np.arange(len(raw), dtype="int64")
    sides = []
    for offset, direction, own, other in (
        (0, "out", "sourceNodeId", "targetNodeId"),
        (1, "in", "targetNodeId", "sourceNodeId"),
    ):
        sides.append(
            pd.DataFrame(
                {
                    "transaction_id": 2 * row + offset,
                    "customer_id": raw[own].to_numpy(),
                    "counterparty_id": raw[other].to_numpy(),
                    "amount": raw["value"].to_numpy(),
                    "direction": direction,
                    "type": "transfer",
                    "counterparty_country": None,
                    "customer_country": None,
                    "status": "completed",
                    "event_timestamp": when.to_numpy(),
                }
            )
        )
    merged = pd.concat(sides, ignore_index=True).sort_values("transaction_id", kind="stable")
    merged["event_timestamp"] = pd.to_datetime(merged["event_timestamp"], utc=True)
    return merged.reset_index(drop=True)[tables.TRANSACTIONS.columns]
