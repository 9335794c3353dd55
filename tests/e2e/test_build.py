"""The bento: champions imported from MLflow, code and Feast definitions included, Dockerfile
generated (this machine has no Docker engine, so the image itself is not built)."""

from __future__ import annotations

import yaml

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
