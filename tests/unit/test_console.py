"""The CLI shows leadrisk's own warnings and hides the libraries' unless --verbose."""

from __future__ import annotations

import subprocess
import sys

from core.settings import PROJECT_ROOT

SCRIPT = """
import sys, warnings
from leadrisk import console
if sys.argv[1] == "quiet":
    console.quiet_libraries()
library = sys.argv[2]
warnings.filterwarnings("always")  # as a library may set, after the CLI started
warnings.warn_explicit("from a library", DeprecationWarning, library, 1)
warnings.warn_explicit("from leadrisk", UserWarning, "{project}/core/settings.py", 1)
import logging; logging.getLogger("mlflow.store").warning("library log line")
"""


def _stderr(mode: str) -> str:
    library = next(p for p in sys.path if p.endswith("site-packages")) + "/ibis/__init__.py"
    code = SCRIPT.format(project=PROJECT_ROOT)
    return subprocess.run(
        [sys.executable, "-c", code, mode, library],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stderr


def test_quiet_keeps_only_leadrisk_warnings() -> None:
    quiet = _stderr("quiet")
    assert "from leadrisk" in quiet
    assert "from a library" not in quiet and "library log line" not in quiet


def test_verbose_shows_everything() -> None:
    verbose = _stderr("verbose")
    assert "from leadrisk" in verbose
    assert "from a library" in verbose and "library log line" in verbose
