"""The bento: champions imported from MLflow, code and Feast definitions included, Dockerfile
generated (this machine has no Docker engine, so the image itself is not built)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from core.settings import PROJECT_ROOT
from service import server
from service.packaging import MODEL_FILE, bentoml_home
from service.run import build


def test_bento_build_has_models_code_and_dockerfile(trained_settings):
    bento = build(trained_settings)
    assert (bento / "env" / "docker" / "Dockerfile").is_file()
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    tags = [model["tag"] for svc in manifest["services"] for model in svc["models"]]
    assert {tag.split(":")[0] for tag in tags} == {"lead_scoring", "customer_risk"}
    store = bentoml_home(trained_settings) / "models"
    for tag in tags:  # the champions imported from MLflow, packed at containerize/export time
        name, version = tag.split(":")
        assert (store / name / version / MODEL_FILE).is_file()
    src = bento / "src"
    for path in (
        "service/service.py",
        "features/definitions.py",
        "feature_store.yaml",
        "core/scoring.py",
        "monitoring/profiler.py",
    ):
        assert (src / path).is_file(), path
    for absent in ("tests", "data", "training", "loadtest", "leadrisk"):  # serving code only
        assert not (src / absent).exists(), absent
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "bentoml" in requirements and "feast" in requirements
    assert "mlflow==" not in requirements and "locust==" not in requirements


def test_plain_bentoml_commands_work_from_the_project_root(trained_settings, trained_env, tmp_path):
    """After the champions are imported, `bentoml models list` and `bentoml serve` need no
    variable of their own: they use BentoML's default store (here under a throwaway HOME)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADRISK_", "BENTOML_"))}
    env |= {k: v for k, v in trained_env.items() if k != "LEADRISK_SERVICE__BENTOML_HOME"}
    env |= {"HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "true"}
    subprocess.run(
        [sys.executable, "-m", "service.packaging"], cwd=PROJECT_ROOT, env=env, check=True
    )
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    listed = subprocess.run(
        [bentoml, "models", "list", "-o", "json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert {m["tag"].split(":")[0] for m in json.loads(listed)} >= {"lead_scoring", "customer_risk"}
    assert (tmp_path / "home" / "bentoml" / "models" / "customer_risk").is_dir()

    port = server.free_port()
    process = subprocess.Popen(
        [bentoml, "serve", "--port", str(port)],  # the service of bentofile.yaml
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(url, process)
        scored = requests.post(f"{url}/score_customer", json={"customer_id": 1}, timeout=30)
        assert scored.status_code in (200, 404), scored.text  # scored, or an unknown id
    finally:
        server.stop(process)
