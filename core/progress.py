"""How the stages report progress: ``Report`` takes a line of text; a reporter that can also draw
long steps (the CLI's, ``leadrisk/console.py``) has a ``step`` method, which ``step`` uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Report = Callable[[str], None]
Advance = Callable[[int], None]  # a step's progress: how many more of its ``total`` are done


class StepReporter(Protocol):
    def __call__(self, message: str) -> None: ...

    def step(self, description: str, total: int | None) -> AbstractContextManager[Advance]: ...


@contextmanager
def step(progress: Report, description: str, total: int | None = None) -> Iterator[Advance]:
    """Run a long step under ``progress``: drawn by a reporter that has ``step`` (a bar with a
    ``total``, else a spinner), announced as one line by any other."""
    draw = getattr(progress, "step", None)
    if draw is None:
        progress(f"{description} ...")
        yield _ignore
        return
    with draw(description, total) as advance:
        yield advance


def _ignore(_: int = 1) -> None:
    return None
