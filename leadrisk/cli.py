"""``leadrisk``: one entry point, one subcommand group per stage. Commands stay thin."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from leadrisk.settings import get_settings


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group()
def main() -> None:
    """Lead scoring and customer risk: data, features, training, serving, monitoring."""


# --- data -----------------------------------------------------------------------------------
@main.group()
def data() -> None:
    """Canonical tables from the real datasets or the synthetic generator."""


@data.command("prepare")
@click.option("--source", type=click.Choice(["synthetic", "x_education", "amlsim"]), required=True)
@click.option("--path", type=click.Path(path_type=Path), default=None, help="Input file/folder.")
@click.option("--customers", type=int, default=None, help="Synthetic: number of customers.")
@click.option("--leads", type=int, default=None, help="Synthetic: number of leads.")
@click.option("--drift", default=None, help="Synthetic: 'feature=shift,...@YYYY-MM-DD'.")
def data_prepare(
    source: str, path: Path | None, customers: int | None, leads: int | None, drift: str | None
) -> None:
    """Write canonical parquet tables (and transaction snapshots) into the data folder."""
    from features.prepare import parse_drift, prepare
    from features.sources.csv_input import InputFileError
    from features.tables import TableError

    settings = get_settings()
    if customers is not None:
        settings.synthetic.customers = customers
    if leads is not None:
        settings.synthetic.leads = leads
    try:
        prepare(source, settings, path, drift=parse_drift(drift) if drift else None)
    except (InputFileError, TableError, FileNotFoundError, ValueError) as err:
        _fail(str(err))


# --- features -------------------------------------------------------------------------------
@main.group()
def features() -> None:
    """The Feast feature repository."""


@features.command("apply")
def features_apply() -> None:
    """Register entities, views and FeatureServices in the Feast registry."""
    from features import store

    settings = get_settings()
    names = store.apply(settings)
    click.echo(
        f"applied {len(names)} objects to project {settings.feature_store.project!r} "
        f"({settings.profile} profile): {', '.join(names)}"
    )


@features.command("materialize")
@click.option("--incremental", is_flag=True, help="Only what arrived since the last run.")
def features_materialize(incremental: bool) -> None:
    """Load the latest feature values into the online store."""
    from features import store

    summaries = store.materialize(get_settings(), incremental=incremental)
    total = sum(s.entities for s in summaries)
    click.echo(f"materialized {len(summaries)} views, {total:,} entity rows written")


def run_command(name: str, *args: str) -> None:
    """Invoke a leadrisk subcommand in-process (used by the quick start)."""
    main.main(args=[*name.split(), *args], standalone_mode=False)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _echo_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))
