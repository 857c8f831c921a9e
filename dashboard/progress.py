"""A rich progress bar for long file scans: files done of total, files/s and time remaining.

Drawn on the given console (the CLI passes its stderr console, so stdout stays clean for JSON)
and not drawn at all when disabled (``--json``). The scan reports progress as
``callback(files_done, files_total)``, which is what :func:`file_progress` yields.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class FilesPerSecondColumn(ProgressColumn):
    """Throughput in files (or another unit) per second: TransferSpeedColumn for counts."""

    def __init__(self, unit: str = "files") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The current speed, or the average once the task has finished."""
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"– {self.unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


@contextlib.contextmanager
def file_progress(
    console: Console,
    *,
    disable: bool = False,
    description: str = "Reading headers",
    unit: str = "files",
) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``(done, total)`` callback that drives a progress bar while the block runs.

    The bar appears at the first call (once the files are listed), so input errors found
    before the scan starts are not preceded by an empty bar.
    """
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        FilesPerSecondColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )
    tasks: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not tasks:
            progress.start()
            tasks.append(progress.add_task(description, total=total))
        progress.update(tasks[0], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            progress.stop()
