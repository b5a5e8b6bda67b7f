"""Progress bars for long loops: drawn by rich on stderr, or nothing at all.

A leaf module (imports nothing else of the project), so that every package draws its progress
the same way. Results go to stdout; progress never does. A disabled bar (the CLI's ``--quiet``)
draws nothing and does not import rich.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

StepCallback = Callable[[int, int, "float | None"], None]


class Progress:
    """A context manager over one bar: title, bar, done/total, elapsed, remaining and a note.

    ``enabled=False`` or ``total == 0`` makes every method a no-op. ``transient`` clears the bar
    when the loop ends (for loops that run several times in a row).
    """

    def __init__(self, title: str, total: int | None, *, enabled: bool = True,
                 transient: bool = False) -> None:
        self.title, self.total, self.transient = title, total, transient
        self.enabled = enabled and total != 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.fields[note]}"), transient=self.transient,
                                 console=Console(stderr=True))
        self._bar.__enter__()
        self._task = self._bar.add_task(self.title, total=self.total, note="")
        return self

    def advance(self, description: str | None = None) -> None:
        """One more item done; ``description`` replaces the title shown (e.g. the item's name)."""
        if self._bar is not None:
            fields = {} if description is None else {"description": description}
            self._bar.update(self._task, advance=1, **fields)

    def update(self, completed: int, total: int | None = None, *, description: str | None = None,
               note: str | None = None) -> None:
        """Set the count done (and the total, once known), the title shown and the note."""
        if self._bar is not None:
            fields: dict[str, Any] = {"completed": completed}
            if total is not None:
                fields["total"] = total
            if description is not None:
                fields["description"] = description
            if note is not None:
                fields["note"] = note
            self._bar.update(self._task, **fields)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None


@contextmanager
def training_progress(label: str, *, enabled: bool = True) -> Iterator[StepCallback | None]:
    """A bar over a training run's steps: "compiling" until the first step, then training with
    the latest mean loss, then "evaluating"; yields the ``on_step(step, total, loss)`` callback
    that training takes, or None when disabled."""
    if not enabled:
        yield None
        return
    with Progress(f"{label}: compiling", None) as bar:

        def on_step(step: int, total: int, loss: float | None) -> None:
            bar.update(step, total, note=None if loss is None else f"loss {loss:.4f}",
                       description=f"{label}: {'evaluating' if step == total else 'training'}")

        yield on_step
