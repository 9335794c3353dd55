"""The CLI shows leadrisk's own warnings, lines and progress, and hides what the libraries
warn, log and print unless --verbose."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

from core.progress import step
from core.settings import PROJECT_ROOT
from leadrisk import console

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


def _run_step(verbose: bool, fail: bool) -> tuple[str, str, BaseException | None]:
    """A step in which a library prints to stdout and stderr; returns what reached each."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        progress = console.ConsoleProgress(verbose)
        raised = None
        try:
            with step(progress, "materializing lead_profile") as advance:
                print("Materializing 1 feature views ...")
                print("Created version '1' of model 'lead_scoring'.", file=sys.stderr)
                advance(1)
                if fail:
                    raise RuntimeError("the store went away")
            progress("  lead_profile: 600 entities")
        except RuntimeError as caught:
            raised = caught
    return out.getvalue(), err.getvalue(), raised


def test_a_step_holds_back_what_libraries_print() -> None:
    out, err, raised = _run_step(verbose=False, fail=False)
    assert raised is None
    assert out == "materializing lead_profile ...\n  lead_profile: 600 entities\n"
    assert err == ""


def test_a_failed_step_shows_what_the_libraries_printed() -> None:
    _, err, raised = _run_step(verbose=False, fail=True)
    assert isinstance(raised, RuntimeError)
    assert "Materializing 1 feature views" in err and "Created version" in err


def test_verbose_steps_let_library_output_through() -> None:
    out, err, _ = _run_step(verbose=True, fail=False)
    assert "Materializing 1 feature views" in out and "Created version" in err


def test_a_plain_reporter_gets_one_line_per_step() -> None:
    lines: list[str] = []
    with step(lines.append, "computing snapshots", total=3) as advance:
        advance(3)
    assert lines == ["computing snapshots ..."]
