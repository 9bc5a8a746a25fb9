"""Terminal output: progress bars (Rich) that disappear with ``quiet`` or when nothing needs
reporting, and file names made safe to print."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


def printable(text) -> str:
    """``text`` with what cannot be written as UTF-8 escaped: a file name that is not valid
    UTF-8 reaches Python as lone surrogates (``\\udce9``), and printing those raises.

    Examples
    --------
    >>> printable("caf\\udce9.jpg")
    'caf\\\\udce9.jpg'
    """
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


@contextmanager
def progress_bar(title: str, total: float | None, quiet: bool = False):
    """Yield an ``advance(n=1)`` function that moves a progress bar on stderr.

    When the block ends without an exception the bar is shown complete, whatever the steps
    added up to (a video's last sample is taken before its end); a bar stopped by an
    exception stays where it was.
    """
    if quiet or total == 0:
        yield lambda n=1: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as progress:
        task = progress.add_task(printable(title), total=total)
        yield lambda n=1: progress.advance(task, n)
        done = total if total is not None else progress.tasks[0].completed
        progress.update(task, total=done, completed=done)
