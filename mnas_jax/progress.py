"""Progress bars for long loops: drawn by rich on stderr, as plain lines, or nothing at all.

A leaf module (imports nothing else of the project), so that every package draws its progress
the same way. Results go to stdout; progress never does. A disabled bar (the CLI's ``--quiet``)
draws nothing and does not import rich. When stderr is no terminal (a log file, ``nohup``, a job
scheduler), a live bar would show nothing until the end, so progress comes as plain lines
instead: one when a loop starts, then at most one every ``LINE_EVERY_S`` seconds, and the last.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

StepCallback = Callable[[int, int, "float | None"], None]
LINE_EVERY_S = 30.0  # plain-line progress: seconds between two lines


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
        self._lines: dict[str, Any] | None = None  # plain-line state when stderr is no terminal

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        if not sys.stderr.isatty():
            self._lines = {"description": self.title, "completed": 0, "total": self.total, "note": "",
                           "start": time.monotonic(), "printed": None}
            self._line(force=True)
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
        if self._lines is not None:
            self._lines["completed"] += 1
            if description is not None:
                self._lines["description"] = description
            self._line()
        if self._bar is not None:
            fields = {} if description is None else {"description": description}
            self._bar.update(self._task, advance=1, **fields)

    def update(self, completed: int, total: int | None = None, *, description: str | None = None,
               note: str | None = None) -> None:
        """Set the count done (and the total, once known), the title shown and the note."""
        if self._lines is not None:
            state = {"completed": completed, "total": total, "description": description, "note": note}
            self._lines.update({k: v for k, v in state.items() if v is not None})
            self._line()
        if self._bar is not None:
            fields: dict[str, Any] = {"completed": completed}
            if total is not None:
                fields["total"] = total
            if description is not None:
                fields["description"] = description
            if note is not None:
                fields["note"] = note
            self._bar.update(self._task, **fields)

    def _line(self, *, force: bool = False) -> None:
        """Print the state as one line, if forced, at the end, or ``LINE_EVERY_S`` after the last."""
        st = self._lines
        assert st is not None
        now = time.monotonic()
        done = st["total"] is not None and st["completed"] >= st["total"]
        shown = (st["description"], st["completed"], st["note"])
        if st["printed"] is not None and (shown == st["printed"][0]
                                          or not (force or done or now - st["printed"][1] >= LINE_EVERY_S)):
            return
        elapsed = now - st["start"]
        count = f"{st['completed']}/{st['total']}" if st["total"] is not None else f"{st['completed']}"
        eta = ""
        if st["total"] and 0 < st["completed"] < st["total"]:
            eta = f", ~{elapsed / st['completed'] * (st['total'] - st['completed']):.0f} s left"
        note = f"  {st['note']}" if st["note"] else ""
        print(f"{st['description']}: {count} ({elapsed:.0f} s{eta}){note}", file=sys.stderr, flush=True)
        st["printed"] = (shown, now)

    def __exit__(self, *exc: object) -> None:
        if self._lines is not None:
            self._line(force=True)
            self._lines = None
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
