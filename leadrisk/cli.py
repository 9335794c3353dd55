"""``leadrisk``: one entry point, one subcommand group per stage. Commands stay thin."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from core.kinds import MODEL_KINDS
from core.settings import Settings, get_settings
from features.prepare import SOURCES
from leadrisk import console

MODEL_KIND = click.Choice(list(MODEL_KINDS))  # "lead" or "risk"


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group()
@click.option("--verbose", "-v", is_flag=True, help="Also show the libraries' warnings and logs.")
def main(verbose: bool) -> None:
    """Lead scoring and customer risk: data, features, training, serving, monitoring."""
    if not verbose:
        console.quiet_libraries()


def _progress() -> console.ConsoleProgress:
    """The reporter of long steps, quiet about the libraries unless ``--verbose``."""
    verbose = click.get_current_context().find_root().params.get("verbose", False)
    return console.ConsoleProgress(verbose)


# --- data -----------------------------------------------------------------------------------
@main.group()
def data() -> None:
    """Canonical tables from the real datasets or the synthetic generator."""


@data.command("prepare")
@click.option("--source", type=click.Choice(SOURCES), required=True)
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
        prepare(
            source,
            settings,
            path,
            drift=parse_drift(drift) if drift else None,
            progress=_progress(),
        )
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

    summaries = store.materialize(get_settings(), incremental=incremental, progress=_progress())
    total = sum(s.entities for s in summaries)
    click.echo(f"materialized {len(summaries)} views, {total:,} entity rows written")


# --- training and registry ------------------------------------------------------------------
@main.command("train")
@click.argument("model", type=MODEL_KIND)
@click.option(
    "--source", default=None, help="Data source recorded as lineage (default: what prepared it)."
)
def train_model(model: str, source: str | None) -> None:
    """Train, evaluate and register a model; print the run summary."""
    from training.summary import print_summary
    from training.train import train

    settings = get_settings()
    report = train(
        model, settings, progress=_progress(), source=source or _data_source(settings, model)
    )
    print_summary(report, settings)


def _data_source(settings: Settings, model: str) -> str:
    """The source ``leadrisk data prepare`` recorded for the model's entity table."""
    from features import tables

    spec = tables.TABLES[MODEL_KINDS[model].entity_table]
    return tables.source_of(spec, settings.tables_dir)


@main.group()
def models() -> None:
    """Registered model versions and their aliases."""


def _model_name(model: str) -> str:
    return MODEL_KINDS[model].registered_name


@models.command("list")
def models_list() -> None:
    """Versions of both models, their aliases and held-out metrics."""
    from training import registry

    client = registry.connect(get_settings())
    for kind in MODEL_KINDS.values():
        name = kind.registered_name
        click.echo(name)
        for row in registry.list_versions(client, name):
            aliases = ",".join(row["aliases"]) or "-"
            click.echo(
                f"  v{row['version']:<4} {aliases:<20} roc_auc={row['test_roc_auc']} "
                f"pr_auc={row['test_pr_auc']} created={row['created']:%Y-%m-%d %H:%M}"
            )


@models.command("promote")
@click.argument("model", type=MODEL_KIND)
@click.argument("version")
@click.option("--reason", required=True, help="Why, for the audit trail.")
def models_promote(model: str, version: str, reason: str) -> None:
    """Make VERSION the champion."""
    from mlflow.exceptions import MlflowException

    from training import registry

    client = registry.connect(get_settings())
    try:
        entry = registry.promote(client, _model_name(model), version, reason)
    except MlflowException as err:
        _fail(f"{_model_name(model)} v{version}: {err.message}")
    _echo_json(entry)
    _sync_serving(required=False)


@models.command("rollback")
@click.argument("model", type=MODEL_KIND)
@click.option("--reason", default="manual rollback", help="Why, for the audit trail.")
def models_rollback(model: str, reason: str) -> None:
    """Restore the previous champion."""
    from training import registry

    client = registry.connect(get_settings())
    try:
        entry = registry.rollback(client, _model_name(model), reason)
    except registry.RegistryError as err:
        _fail(str(err))
    _echo_json(entry)
    _sync_serving(required=False)


def _sync_serving(required: bool = True) -> None:
    """Hand the registry's champions and challengers to the serving processes. Not
    ``required`` (after an alias change), a model with no champion yet means no service can be
    running: that is said, not failed."""
    from service.packaging import MissingChampionError, import_champions

    settings = get_settings()
    try:
        import_champions(settings)
    except MissingChampionError as err:
        if required:
            _fail(str(err))
        click.echo(f"serving not updated: {err}", err=True)
        return
    click.echo(
        f"release table updated: serving processes follow within "
        f"{settings.service.registry_poll_s:g}s",
        err=True,
    )


# --- releases ---------------------------------------------------------------------------------
@main.group()
def release() -> None:
    """Champion and challenger side by side: shadow and A/B tests (docs/releases.md)."""


@release.command("sync")
def release_sync() -> None:
    """Import the registry's champions and challengers for serving and record them."""
    _sync_serving()
    _release_status(None)


@release.command("start")
@click.argument("model", type=MODEL_KIND)
@click.option("--mode", type=click.Choice(["shadow", "ab"]), required=True)
@click.option("--share", type=float, default=0.1, show_default=True, help="ab: challenger share.")
def release_start(model: str, mode: str, share: float) -> None:
    """Start a shadow or A/B test of MODEL's challenger against its champion."""
    from monitoring.releases import ReleaseError, ReleaseStore

    _sync_serving()
    store = ReleaseStore(get_settings().release_store_url)
    try:
        started = store.start(_model_name(model), mode, share)  # type: ignore[arg-type]
    except ReleaseError as err:
        _fail(str(err))
    click.echo(f"started {started.mode} test of {started.challenger} against {started.champion}")


@release.command("stop")
@click.argument("model", type=MODEL_KIND)
@click.option("--reason", default="stopped by hand", help="Why, for the audit trail.")
def release_stop(model: str, reason: str) -> None:
    """The kill switch: all of MODEL's traffic back to its champion at once."""
    from monitoring.releases import ReleaseError, ReleaseStore

    try:
        ReleaseStore(get_settings().release_store_url).stop(_model_name(model), reason)
    except ReleaseError as err:
        _fail(str(err))
    click.echo(f"stopped: {reason}")


@release.command("compare")
@click.argument("model", type=MODEL_KIND)
def release_compare(model: str) -> None:
    """The verdict on MODEL's current or last test: shadow agreement, or A/B conversion."""
    from monitoring.release_verdict import release_verdict

    try:
        _echo_json(release_verdict(get_settings(), _model_name(model)))
    except ValueError as err:
        _fail(str(err))


@release.command("promote")
@click.argument("model", type=MODEL_KIND)
@click.option("--reason", required=True, help="Why, for the audit trail.")
def release_promote(model: str, reason: str) -> None:
    """Promote MODEL's challenger on its test's verdict: the verdict is logged to the
    challenger's MLflow run and quoted in the audit trail; the test ends."""
    from monitoring.release_verdict import release_verdict, summary
    from monitoring.releases import ReleaseError, ReleaseStore
    from training import registry

    settings = get_settings()
    name = _model_name(model)
    try:
        verdict = release_verdict(settings, name)
    except ValueError as err:
        _fail(str(err))
    client = registry.connect(settings)
    version = verdict["challenger"]
    run_id = client.get_model_version(name, version).run_id
    client.log_dict(run_id, verdict, f"release/verdict_{verdict['since'][:19]}.json")
    entry = registry.promote(client, name, version, f"{reason}; verdict: {summary(verdict)}")
    with contextlib.suppress(ReleaseError):
        ReleaseStore(settings.release_store_url).stop(name, f"promoted v{version}", "promoted")
    _echo_json(entry)
    _sync_serving()


@release.command("status")
@click.argument("model", type=MODEL_KIND, required=False)
def release_status(model: str | None) -> None:
    """Each model's champion, challenger, mode and recent release events."""
    _release_status(model)


def _release_status(model: str | None) -> None:
    from monitoring.releases import ReleaseStore

    store = ReleaseStore(get_settings().release_store_url)
    names = [_model_name(model)] if model else [k.registered_name for k in MODEL_KINDS.values()]
    for name in names:
        current = store.get(name)
        if current is None:
            click.echo(f"{name}: not served yet")
            continue
        share = f" {current.share:.0%} to the challenger" if current.mode == "ab" else ""
        click.echo(
            f"{name}: champion {current.champion}, challenger {current.challenger or '-'}, "
            f"mode {current.mode}{share} (revision {current.revision})"
        )
        for event in store.events(name)[-5:]:
            click.echo(f"  {event['at']}  {event['event']}: {json.dumps(event['detail'])}")


@models.command("audit")
@click.argument("model", type=MODEL_KIND)
def models_audit(model: str) -> None:
    """Every alias change: when, from which version to which, and why."""
    from training import registry

    client = registry.connect(get_settings())
    _echo_json(registry.audit_trail(client, _model_name(model)))


@main.group()
def risk() -> None:
    """Customer-risk outputs for compliance."""


@risk.command("offboard")
@click.option("--out", type=click.Path(path_type=Path), default=None, help=".csv or .parquet")
def risk_offboard(out: Path | None) -> None:
    """Score the unlabeled cohort and write the off-boarding list."""
    from training.offboard import offboarding_list
    from training.registry import RegistryError

    try:
        offboarding_list(get_settings(), out)
    except RegistryError as err:
        _fail(str(err))


@risk.command("segments")
def risk_segments() -> None:
    """Segment profile: size, suspension rate and typical values per segment."""
    from training.offboard import segment_profile

    settings = get_settings()
    profile = segment_profile(settings)
    out = settings.reports_dir / "segment_profile.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    profile.to_csv(out)
    click.echo(profile.to_string())
    click.echo(f"wrote {out}")


# --- the quick start --------------------------------------------------------------------------
@main.command("quickstart")
@click.option("--serve/--no-serve", default=True, help="End with the service running.")
def quickstart(serve: bool) -> None:
    """The main job on the embedded default: data, features, models, outputs, then serve."""
    from features.prepare import real_data_available

    settings = get_settings()
    if real_data_available(settings):
        sources = ["x_education", "amlsim"]
    else:
        click.echo("real datasets not found beside the project: using the synthetic generator")
        sources = ["synthetic"]
    for source in sources:
        run_command("data prepare", "--source", source)
    run_command("features apply")
    run_command("features materialize")
    for model in MODEL_KINDS:
        run_command("train", model)
    run_command("risk offboard")
    run_command("risk segments")
    if serve:
        run_command("serve")


def run_command(name: str, *args: str) -> None:
    """Invoke a leadrisk subcommand in-process (used by the quick start)."""
    click.echo(f"\n$ leadrisk {name} {' '.join(args)}".rstrip())
    verbose = click.get_current_context().find_root().params.get("verbose", False)
    main.main(
        args=[*(["--verbose"] if verbose else []), *name.split(), *args], standalone_mode=False
    )


def _echo_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


# --- monitoring -----------------------------------------------------------------------------
@main.group()
def monitor() -> None:
    """Drift reports, alert checks and live KPIs."""


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@monitor.command("drift")
@click.option("--model", type=MODEL_KIND, required=True)
@click.option("--since", default=None, help="ISO time (UTC if no zone).")
@click.option("--until", default=None, help="ISO time (UTC if no zone).")
def monitor_drift(model: str, since: str | None, until: str | None) -> None:
    """Compare served traffic with the training reference; write HTML and JSON reports."""
    from monitoring import drift
    from monitoring.live import NoTrafficError, drift_for
    from training.registry import RegistryError

    try:
        report, html, data = drift_for(get_settings(), model, _when(since), _when(until))
    except (NoTrafficError, RegistryError) as err:
        _fail(str(err))
    drifted = drift.drifted_features(report)
    click.echo(
        f"{report.model}: {report.current_rows:,} requests vs {report.reference_rows:,} "
        f"training rows; drifted features ({len(drifted)}/{len(report.features)}): "
        f"{', '.join(drifted) or 'none'}; score PSI {report.prediction.psi}"
    )
    click.echo(f"report: {html}\njson:   {data}")


@monitor.command("check")
@click.option("--url", default=None, help="Service URL for latency and errors (/metrics).")
def monitor_check(url: str | None) -> None:
    """Evaluate every alert rule once (schedule it with cron); exits 1 when an alert fires."""
    from monitoring.live import check

    facts, fired = check(get_settings(), url)
    _echo_json({"facts": facts, "alerts": [a.payload() for a in fired]})
    if fired:
        sys.exit(1)


@monitor.command("kpis")
@click.option("--model", type=MODEL_KIND, required=True)
def monitor_kpis(model: str) -> None:
    """Live KPIs from feedback: rates by band, ROC-AUC, precision/recall, calibration."""
    from monitoring.live import live_kpis

    _echo_json(live_kpis(get_settings(), model))


@main.command("diagnose")
@click.argument("model", type=MODEL_KIND)
@click.option("--url", default=None, help="Service URL, to compare the served version.")
def diagnose(model: str, url: str | None) -> None:
    """A verdict with evidence: is it the integration, the data or the model?"""
    from monitoring.live import diagnose as run_diagnosis
    from training.registry import RegistryError

    try:
        click.echo(run_diagnosis(get_settings(), model, url).render())
    except RegistryError as err:
        _fail(str(err))


# --- serving --------------------------------------------------------------------------------
@main.command("serve")
@click.option("--port", type=int, default=None)
def serve(port: int | None) -> None:
    """Import the champions into BentoML and run the service (Ctrl-C stops it)."""
    from service.packaging import MissingChampionError
    from service.run import serve as run_service

    try:
        sys.exit(run_service(get_settings(), port))
    except MissingChampionError as err:
        _fail(str(err))


@main.command("build")
def build() -> None:
    """Build the bento (champions included); prints its folder and generated Dockerfile."""
    from service.packaging import MissingChampionError
    from service.run import build as build_bento

    try:
        path = build_bento(get_settings())
    except MissingChampionError as err:
        _fail(str(err))
    dockerfile = path / "env" / "docker" / "Dockerfile"
    state = "exists" if dockerfile.exists() else "MISSING"
    click.echo(f"bento: {path}\nDockerfile: {dockerfile} ({state})")
    click.echo("containerize on a machine with Docker: bentoml containerize leadrisk:latest")


@main.command("openapi")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the document here (docs/openapi.json is the published one); default: stdout.",
)
def openapi_command(output: Path | None) -> None:
    """The service's OpenAPI document for the current settings (what /docs.json serves)."""
    from service.openapi import document_bytes

    document = document_bytes(get_settings())
    if output is None:
        sys.stdout.buffer.write(document)
        return
    output.write_bytes(document)
    click.echo(f"wrote {output}")


# --- load tests -------------------------------------------------------------------------------
@main.group()
def loadtest() -> None:
    """Locust staircase runs (nominal rate up to 10x) against leadrisk or the Flask baseline."""


def _load_profiles() -> list[str]:
    from core.settings import LoadTestSettings

    return LoadTestSettings.profile_names()


def _load_targets() -> tuple[str, ...]:
    from loadtest import TARGETS

    return TARGETS


@loadtest.command("run")
@click.option("--profile", type=click.Choice(_load_profiles()), default="ten_x")
@click.option("--target", type=click.Choice(_load_targets()), default="leadrisk")
@click.option("--url", default=None, help="Load an already running service instead of one started.")
@click.option(
    "--feedback/--no-feedback",
    default=None,
    help="POST /feedback in the mix; default: only to a service the load test starts (its "
    "feedback stays in the run folder), never to --url.",
)
def loadtest_run(profile: str, target: str, url: str | None, feedback: bool | None) -> None:
    """One staircase; exits 1 when any step misses the SLO (p95, p99, failures)."""
    from loadtest.runner import LoadTestError, caveats, run
    from loadtest.summary import format_steps

    try:
        result = run(get_settings(), profile, target, url, feedback=feedback)
    except LoadTestError as err:
        _fail(str(err))
    click.echo(format_steps(result.summary))
    for caveat in caveats(result.summary):
        click.echo(f"warning: {caveat}: these numbers are not clean")
    click.echo(f"max sustainable: {result.summary['max_sustainable_rps']} req/s")
    click.echo(f"wrote {result.out_dir} (summary.json, chart.png, locust_*.csv)")
    sys.exit(0 if result.slo_met else 1)


@loadtest.command("compare")
@click.option("--profile", type=click.Choice(_load_profiles()), default="ten_x")
def loadtest_compare(profile: str) -> None:
    """Baseline vs leadrisk unbatched vs batched; exits 1 when batched leadrisk misses the SLO."""
    from loadtest.runner import LATEST_COMPARE, LoadTestError, caveats, compare, format_compare
    from loadtest.summary import format_steps

    try:
        combined, path = compare(get_settings(), profile)
    except LoadTestError as err:
        _fail(str(err))
    for name, summary in combined["runs"].items():
        click.echo(f"\n{name}: {summary['out_dir']}")
        click.echo(format_steps(summary))
        for caveat in caveats(summary):
            click.echo(f"  warning: {caveat}: these numbers are not clean")
    click.echo(f"\n{format_compare(combined)}")
    click.echo(f"wrote {path} and {LATEST_COMPARE}")
    sys.exit(0 if combined["runs"]["leadrisk"]["slo_met"] else 1)
