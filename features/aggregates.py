"""Batch job: raw transactions -> point-in-time correct daily snapshots of windowed aggregates.

A snapshot stamped ``D 00:00 UTC`` covers transactions in ``[D - w days, D)`` for each window
``w``; it never includes a transaction at or after its own timestamp, so a point-in-time join on
it cannot see the future. Aggregates only change on the day after a transaction and on the days
that transaction leaves a window, so snapshots are written on exactly those days (exact, and far
smaller than one row per customer per day). Snapshots after the last transaction day are not
written: data after that is unknown.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb

from features import tables

SNAPSHOTS_FILE = "customer_transaction_snapshots.parquet"
SNAPSHOT_TIMESTAMP = "snapshot_at"

# name -> (SQL over the window named {w}, Feast value type: "int" or "float")
AGGREGATES: dict[str, tuple[str, str]] = {
    "tx_count": ("count(amount) OVER {w}", "int"),
    "in_count": ("count(amount) FILTER (WHERE direction = 'in') OVER {w}", "int"),
    "out_count": ("count(amount) FILTER (WHERE direction = 'out') OVER {w}", "int"),
    "amount_sum": ("coalesce(sum(amount) OVER {w}, 0)", "float"),
    "amount_mean": ("avg(amount) OVER {w}", "float"),
    "amount_max": ("max(amount) OVER {w}", "float"),
    "amount_std": ("stddev_samp(amount) OVER {w}", "float"),
    "distinct_counterparties": ("count(DISTINCT counterparty_id) OVER {w}", "int"),
    "inflow_outflow_ratio": (
        "sum(amount) FILTER (WHERE direction = 'in') OVER {w}"
        " / nullif(sum(amount) FILTER (WHERE direction = 'out') OVER {w}, 0)",
        "float",
    ),
    "failed_share": ("avg(failed::DOUBLE) OVER {w}", "float"),
    "night_share": ("avg(night::DOUBLE) OVER {w}", "float"),
    "cross_border_share": ("avg(cross_border::DOUBLE) OVER {w}", "float"),
}


def feature_names(windows: list[int]) -> dict[str, str]:
    """Every snapshot feature name -> its value type ("int" or "float")."""
    return {f"{name}_{w}d": kind for w in windows for name, (_, kind) in AGGREGATES.items()}


def build_snapshots(
    tables_dir: Path,
    windows: list[int],
    night_hours: list[int],
    memory_limit: str = "4GB",
) -> tuple[Path, int]:
    """Compute snapshots from ``transactions.parquet``; returns (path, rows written)."""
    source = tables_dir / tables.TRANSACTIONS.filename
    if not source.exists():
        raise FileNotFoundError(f"{source} not found: run `leadrisk data prepare` first")
    target = tables_dir / SNAPSHOTS_FILE
    fd, tmp = tempfile.mkstemp(dir=tables_dir, prefix=".snapshots.", suffix=".parquet")
    os.close(fd)
    os.unlink(tmp)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        # One thread: in parallel, transactions with the same timestamp (AMLSim has one per day)
        # were summed in a different order each run, so float aggregates differed in their last
        # bits and the trained models by ~1e-4 between identical runs.
        con.execute("SET threads = 1")
        con.execute(f"SET temp_directory = '{tables_dir / '.duckdb_tmp'}'")
        con.execute(_snapshot_sql(source, windows, night_hours, tmp))
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{tmp}')").fetchone()[0]
        os.replace(tmp, target)
    finally:
        con.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target, int(rows)


def _snapshot_sql(source: Path, windows: list[int], night_hours: list[int], out: str) -> str:
    nights = ", ".join(str(h) for h in night_hours) or "-1"
    offsets = ", ".join(f"({k})" for k in [0, *windows])
    frames = ",\n".join(
        f"w{w} AS (PARTITION BY customer_id ORDER BY ts "
        f"RANGE BETWEEN INTERVAL {w} DAYS PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)"
        for w in windows
    )
    columns = ",\n".join(
        f"{sql.format(w=f'w{w}')} AS {name}_{w}d"
        for w in windows
        for name, (sql, _) in AGGREGATES.items()
    )
    return f"""
    COPY (
      WITH tx AS (
        SELECT customer_id, counterparty_id, amount, direction,
               event_timestamp AS ts,
               status = '{tables.FAILED_STATUS}' AS failed,
               hour(event_timestamp) IN ({nights}) AS night,
               coalesce(counterparty_country <> customer_country, false) AS cross_border
        FROM read_parquet('{source}')
      ),
      horizon AS (SELECT date_trunc('day', max(ts)) + INTERVAL 1 DAY AS last_snapshot FROM tx),
      marks AS (
        SELECT DISTINCT customer_id,
               date_trunc('day', ts) + to_days(CAST(1 + k AS INTEGER)) AS ts
        FROM tx, (VALUES {offsets}) AS o(k), horizon
        WHERE date_trunc('day', ts) + to_days(CAST(1 + k AS INTEGER)) <= horizon.last_snapshot
      ),
      events AS (
        SELECT customer_id, counterparty_id, amount, direction, ts, failed, night, cross_border,
               false AS is_mark
        FROM tx
        UNION ALL
        SELECT customer_id, NULL, NULL, NULL, ts, NULL, NULL, NULL, true FROM marks
      )
      SELECT customer_id, ts AS {SNAPSHOT_TIMESTAMP},
      {columns}
      FROM events
      WINDOW {frames}
      QUALIFY is_mark
      ORDER BY customer_id, {SNAPSHOT_TIMESTAMP}
    ) TO '{out}' (FORMAT parquet)
    """
