"""Progress bars (Rich) that disappear with ``quiet`` or when nothing needs reporting."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


@contextmanager
def progress_bar(title: str, total: int | None, quiet: bool = False):
    """Yield an ``advance(n=1)`` function that moves a progress bar on stderr."""
    if quiet or total == 0:
        yield lambda n=1: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as progress:
        task = progress.add_task(title, total=total)
        yield lambda n=1: progress.advance(task, n)
