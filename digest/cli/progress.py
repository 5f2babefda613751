"""The progress bar every long command shows: done of total, rate, and time left
(and a spinner for work that has no count, such as planning).

Drawn on stderr, only on a terminal and only when there is work, so a log or a
pipe gets no bar residue; it clears itself when done (the command's own
summary line follows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rate(ProgressColumn):
    """Items per second, once rich has measured a speed."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        shown = f"{speed:,.0f}/s" if speed >= 10 else f"{speed:.1f}/s"
        return Text(shown, style="progress.data.speed")


@contextmanager
def working(label: str) -> Iterator[None]:
    """A spinner with `label` and the time taken, for work with no count to show (a
    planning pass scores every due subscriber before it can say how many digests it
    made); on stderr, only on a terminal, gone when done."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Progress(
        SpinnerColumn(), TextColumn(label), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        progress.add_task(label, total=None)
        yield


def progress_bar(label: str, *, hidden: bool = False) -> Progress:
    """A transient bar labelled `label`; `hidden` (or no terminal) draws nothing."""
    console = Console(stderr=True)
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=hidden or not console.is_terminal,
    )
