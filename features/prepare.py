"""``leadrisk data prepare``: run a dataset adapter, write canonical tables, then snapshots."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from core.progress import Report, step
from core.settings import Settings
from features import aggregates, tables
from features.sources import amlsim, synthetic, x_education

Source = Literal["synthetic", "x_education", "amlsim"]
SOURCES: tuple[Source, ...] = ("synthetic", "x_education", "amlsim")


def default_path(source: Source, settings: Settings) -> Path | None:
    """Where the real dataset lives by default (``None`` for the generator)."""
    if source == "x_education":
        return settings.data.shared_dir / settings.data.x_education_csv
    if source == "amlsim":
        return settings.data.shared_dir / settings.data.amlsim_dir
    return None


def real_data_available(settings: Settings) -> bool:
    return all(default_path(s, settings).exists() for s in ("x_education", "amlsim"))


def parse_drift(text: str) -> synthetic.DriftSpec:
    """Parse ``'total_time_on_website=0.5,amount=1.0@2025-10-01'`` into a drift spec."""
    try:
        shifts_text, start_text = text.split("@")
        shifts = {
            name.strip(): float(value)
            for name, value in (item.split("=") for item in shifts_text.split(","))
        }
        start = datetime.fromisoformat(start_text).replace(tzinfo=UTC)
    except ValueError as err:
        raise ValueError(
            f"--drift {text!r}: expected 'feature=shift[,feature=shift]@YYYY-MM-DD'"
        ) from err
    return synthetic.DriftSpec(start=start, shifts=shifts)


def prepare(
    source: Source,
    settings: Settings,
    path: Path | None = None,
    progress: Report = print,
    drift: synthetic.DriftSpec | None = None,
) -> dict[str, Path]:
    """Write the canonical tables of one source; returns {table: path}."""
    out = settings.tables_dir
    path = path or default_path(source, settings)
    written: dict[str, Path] = {}
    if source == "x_education":
        leads, labels = x_education.load(
            path, settings.data.x_education_anchor_date, settings.data.x_education_span_days
        )
        written[tables.LEADS.name] = tables.write_table(leads, tables.LEADS, out)
        written[tables.LEAD_LABELS.name] = tables.write_table(labels, tables.LEAD_LABELS, out)
    elif source == "amlsim":
        customers, labels, transactions = amlsim.load(
            path,
            settings.data.amlsim_anchor_date,
            settings.data.unlabeled_share,
            settings.data.seed,
        )
        for frame, spec in (
            (customers, tables.CUSTOMERS),
            (labels, tables.CUSTOMER_LABELS),
            (transactions, tables.TRANSACTIONS),
        ):
            written[spec.name] = tables.write_table(frame, spec, out)
    else:
        cfg = settings.synthetic
        written.update(
            synthetic.generate(
                out,
                customers=cfg.customers,
                leads=cfg.leads,
                transactions_per_customer=cfg.transactions_per_customer,
                start=date.fromisoformat(cfg.start_date),
                days=cfg.days,
                seed=settings.data.seed,
                unlabeled_share=settings.data.unlabeled_share,
                drift=drift,
                chunk_customers=cfg.chunk_customers,
                progress=progress,
            )
        )
    for name, file in written.items():
        progress(f"wrote {name}: {file}")
    tables.record_sources(out, list(written), source)
    if tables.TRANSACTIONS.name in written:
        with step(progress, "computing windowed transaction snapshots"):
            snapshots, rows = aggregates.build_snapshots(
                out, settings.feature_store.windows_days, settings.feature_store.night_hours
            )
        written["customer_transaction_snapshots"] = snapshots
        progress(f"wrote {rows:,} snapshot rows: {snapshots}")
    return written
