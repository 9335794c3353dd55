"""What the CLI prints: leadrisk's own progress and results. The libraries' warnings and log lines
(ibis and SQLAlchemy deprecations, MLflow's INFO lines, its pip and schema hints) show only with
``leadrisk --verbose``."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from core.settings import PROJECT_ROOT

LIBRARY_LOGGERS = ("mlflow", "alembic", "feast", "bentoml", "urllib3", "git", "matplotlib")


def quiet_libraries() -> None:
    """Show only the warnings raised in leadrisk's own code, and the libraries' log lines from
    ERROR up, in this process and the ones it starts. Libraries add warning filters of their own
    when imported, so warnings are sorted where they are shown, by the file that raised them."""
    show = warnings.showwarning

    def show_project_warnings(message, category, filename, lineno, file=None, line=None):
        if _in_project(filename):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_project_warnings
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    for name in (*LIBRARY_LOGGERS, "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _in_project(filename: str) -> bool:
    path = Path(filename).resolve()
    return path.is_relative_to(PROJECT_ROOT) and not path.is_relative_to(PROJECT_ROOT / ".venv")
