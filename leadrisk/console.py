"""What the CLI prints: leadrisk's own progress and results, long steps drawn as progress bars.
The libraries' warnings, log lines and printed notices (ibis and SQLAlchemy deprecations, MLflow's
INFO lines and registry notices, Feast's materialization output) show only with
``leadrisk --verbose``."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from core.progress import Advance
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


class ConsoleProgress:
    """The CLI's progress reporter (``core.progress``): leadrisk's lines on stdout, and each long
    step as a rich spinner or bar with its elapsed time on a terminal's stderr (a line in a log);
    the stage prints the step's result. Unless ``verbose``, what libraries print during a step
    (Feast's materialization lines and bars, MLflow's registry notices) is held back, and shown
    only when the step fails."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.out = sys.stdout
        self.err = sys.stderr
        self.console = Console(file=self.err)

    def __call__(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    @contextmanager
    def step(self, description: str, total: int | None) -> Iterator[Advance]:
        held = io.StringIO()
        with contextlib.ExitStack() as stack:
            if not self.verbose:
                stack.enter_context(contextlib.redirect_stdout(held))
                stack.enter_context(contextlib.redirect_stderr(held))
            try:
                with self._drawn(description, total) as advance:
                    yield advance
            except BaseException:
                stack.close()
                self.err.write(held.getvalue())
                raise

    @contextmanager
    def _drawn(self, description: str, total: int | None) -> Iterator[Advance]:
        if not self.console.is_terminal:
            self(f"{description} ...")
            yield lambda _=1: None
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn()]
        with Progress(
            *columns,
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            # quiet: what libraries print stays in the step's hold; verbose: above the bar
            redirect_stdout=self.verbose,
            redirect_stderr=self.verbose,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda done=1: bar.advance(task, done)
