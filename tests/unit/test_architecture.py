"""The layers of pyproject.toml's import-linter contracts hold, and importing a module does no
work: the catalog, the service's settings and the store are built only when asked."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a dev dependency: uv sync installs it"
    return subprocess.run(
        [lint, "--no-cache", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )


def test_import_contracts_are_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_back_import_breaks_a_contract(tmp_path: Path) -> None:
    """The check is not vacuous: with the core placed above the service (a layer order the code
    does not follow), the service's real imports break it."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["core", "service"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "inverted"\ntype = "layers"\nlayers = ["core", "service"]\n'
    )
    result = lint_imports(str(config))
    assert result.returncode != 0
    assert "inverted BROKEN" in result.stdout


IMPORT_PROBE = """
import json, feast
import features.definitions as catalog
import features.store, training.train, monitoring.live, service.scorer, loadtest.runner
from core.settings import get_settings
print(json.dumps({
    "feast_objects": sum(isinstance(v, feast.FeatureService) for v in vars(catalog).values()),
    "settings_read": get_settings.cache_info().currsize,
}))
"""


@pytest.fixture(scope="module")
def imported() -> dict[str, int]:
    """Every stage imported in a fresh interpreter (one for both checks: imports are slow)."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_catalog_builds_nothing(imported: dict[str, int]) -> None:
    """Feast objects exist only when ``definitions(settings)`` is called (features/repo.py does
    that for the feast CLI)."""
    assert imported["feast_objects"] == 0


def test_importing_a_stage_reads_no_settings(imported: dict[str, int]) -> None:
    """Settings are read once, explicitly: importing the stages leaves the cache empty."""
    assert imported["settings_read"] == 0


def test_the_readme_diagram_draws_the_real_imports() -> None:
    """Every arrow of the README's Mermaid diagram is a package-level import, and every such
    import is an arrow."""
    import grimp

    packages = ["core", "features", "training", "monitoring", "service", "loadtest", "leadrisk"]
    graph = grimp.build_graph(*packages, cache_dir=None)
    imported = {
        (source, target)
        for source in packages
        for target in packages
        if source != target
        and any(
            graph.direct_import_exists(importer=a, imported=b)
            for a in graph.find_descendants(source) | {source}
            for b in graph.find_descendants(target) | {target}
        )
    }
    readme = (PROJECT_ROOT / "README.md").read_text()
    diagram = re.search(r"```mermaid\n(.*?)```", readme, re.S).group(1)
    drawn = {
        (source, target)
        for line in diagram.splitlines()
        if "-->" in line
        for source in [line.split("-->")[0].strip()]
        for target in re.split(r"\s*&\s*", line.split("-->")[1].strip())
    }
    names = {"cli": "leadrisk"}
    assert {(names.get(s, s), names.get(t, t)) for s, t in drawn} == imported
