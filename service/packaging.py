"""Import each registered model's champion and challenger from MLflow into the BentoML model
store, and record them in the release table (``monitoring/releases.py``).

Runs before ``bentoml serve`` / ``bentoml build`` and after every alias change the CLI makes, so a
running bento needs no MLflow server. The champions' tags are also written to
``serving_models.json`` in the data folder, which the service's class declares (inside a
container, where only the bento's own models exist, ``latest``); serving processes then follow
the release table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from core.kinds import MODEL_KINDS, ModelKind
from core.settings import ENV_PREFIX, PROJECT_ROOT, Settings, get_settings
from monitoring.releases import ReleaseStore

MODEL_FILE = "scoring_model.pkl"
SERVING_MODELS_FILE = "serving_models.json"
EFFECTIVE_SETTINGS = "effective_settings.yaml"
MISSING_CHAMPION_EXIT = 3


class MissingChampionError(RuntimeError):
    """A registered model has no champion to serve."""


def bentoml_home(settings: Settings) -> Path:
    """The BentoML store the champions are imported into (``service.bentoml_home``, else
    BentoML's own default, which plain ``bentoml`` commands use too)."""
    if settings.service.bentoml_home is not None:
        return settings.service.bentoml_home
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")


def imported_model_file(settings: Settings, tag: str) -> Path:
    """Where the import put the pickled ``ScoringModel`` of ``tag`` ("name:version")."""
    name, version = tag.split(":")
    return bentoml_home(settings) / "models" / name / version / MODEL_FILE


def use_bentoml_home(settings: Settings) -> None:
    """Point BentoML at that store (before bentoml is imported)."""
    os.environ.setdefault("BENTOML_HOME", str(bentoml_home(settings)))


def child_env(settings: Settings) -> dict[str, str]:
    """Environment of a BentoML child process: exactly these settings (as a YAML file), whatever
    the parent's own ``LEADRISK_*`` variables say, and this world's BentoML store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    effective = settings.data_dir / EFFECTIVE_SETTINGS
    effective.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    env[f"{ENV_PREFIX}CONFIG"] = str(effective)
    env["BENTOML_HOME"] = str(bentoml_home(settings))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return env


def import_champions(settings: Settings) -> dict[str, str]:
    """Copy each champion into this world's BentoML store, in a child process (BentoML's store
    location is fixed per process); returns name -> tag."""
    unchanged = _unchanged_import(settings)
    if unchanged is not None:
        return unchanged
    result = subprocess.run(
        [sys.executable, "-m", "service.packaging"],
        cwd=PROJECT_ROOT,
        env=child_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == MISSING_CHAMPION_EXIT:
        raise MissingChampionError(result.stderr.strip().splitlines()[-1])
    if result.returncode != 0:
        raise RuntimeError(f"importing champions failed:\n{result.stderr[-3000:]}")
    return json.loads((settings.data_dir / SERVING_MODELS_FILE).read_text())


def _unchanged_import(settings: Settings) -> dict[str, str] | None:
    """The last import's tags if nothing can have changed since: the embedded (SQLite) MLflow
    store has not been written after it and the imported models are still in the store. The
    import itself spends ~20 s importing MLflow and BentoML, on every server start otherwise."""
    tags_file = settings.data_dir / SERVING_MODELS_FILE
    prefix = "sqlite:///"
    if not settings.mlflow_uri.startswith(prefix) or not tags_file.exists():
        return None
    database = Path(settings.mlflow_uri.removeprefix(prefix))
    files = [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-journal")]
    written = [path.stat().st_mtime for path in files if path.exists()]
    if not written or max(written) >= tags_file.stat().st_mtime:
        return None
    tags = json.loads(tags_file.read_text())
    releases = ReleaseStore(settings.release_store_url).all()
    recorded = [releases.get(name) for name in tags]
    if any(r is None or r.champion != tags[r.model] for r in recorded):
        return None
    served = [tag for r in recorded for tag in (r.champion, r.challenger) if tag]
    if not all(imported_model_file(settings, tag).exists() for tag in served):
        return None
    return tags


def _import_champions(settings: Settings) -> dict[str, str]:
    """Copy each champion and challenger into the BentoML store (once per MLflow version) and
    record them in the release table; returns name -> champion tag."""
    use_bentoml_home(settings)
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    client = MlflowClient()
    releases = ReleaseStore(settings.release_store_url)
    tags = {}
    for kind in MODEL_KINDS.values():
        try:
            champion = client.get_model_version_by_alias(kind.registered_name, "champion")
        except MlflowException as err:
            raise MissingChampionError(
                f"{kind.registered_name} has no champion in {settings.mlflow_uri}: "
                f"run `leadrisk train {kind.key}` first"
            ) from err
        try:
            challenger = client.get_model_version_by_alias(kind.registered_name, "challenger")
        except MlflowException:
            challenger = None
        if challenger is not None and challenger.version == champion.version:
            challenger = None
        served = [_imported(kind, version) for version in (champion, challenger) if version]
        tags[kind.registered_name] = served[0]
        releases.set_models(kind.registered_name, served[0], (served[1:] or [None])[0])
    path = settings.data_dir / SERVING_MODELS_FILE
    path.write_text(json.dumps(tags, indent=2))
    return tags


def _imported(kind: ModelKind, version) -> str:
    """The BentoML tag of an MLflow model version, copied into the store once."""
    import bentoml
    import cloudpickle
    import mlflow

    tag = f"{kind.registered_name}:v{version.version}-{version.run_id[:12]}"
    try:
        bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        model = mlflow.sklearn.load_model(f"models:/{kind.registered_name}/{version.version}")
        labels = {"mlflow_version": str(version.version), "run_id": version.run_id}
        metadata = {"feature_service": kind.feature_service}
        with (
            bentoml.models.create(tag, labels=labels, metadata=metadata) as bento_model,
            open(bento_model.path_of(MODEL_FILE), "wb") as handle,
        ):
            cloudpickle.dump(model, handle)
    return tag


def main() -> None:
    try:
        _import_champions(get_settings())
    except MissingChampionError as err:
        print(err, file=sys.stderr)
        sys.exit(MISSING_CHAMPION_EXIT)


def serving_tags(settings: Settings) -> dict[str, str]:
    """Tags to serve: the imported champions, or ``latest`` inside a built bento."""
    path = settings.data_dir / SERVING_MODELS_FILE
    if path.exists():
        return json.loads(path.read_text())
    return {kind.registered_name: f"{kind.registered_name}:latest" for kind in MODEL_KINDS.values()}


if __name__ == "__main__":
    main()
