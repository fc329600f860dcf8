"""Progress of a campaign: a rich progress bar on a terminal, one plain line per log otherwise.

Plain lines (CI logs, nightly mail, a pipe) are one per judged log, in the order they finish::

    [ 3/64] FAIL          drives__21.blf (1,000,000 frames, 2.1 s) -> out/drives__21.blf

On a terminal the bar shows logs done, the rate and the time left, and every log that did not
pass is printed above it as it finishes, so a failure is seen without waiting for the end.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from .task import LogResult


def _line(result: LogResult, done: int, total: int) -> str:
    width = len(str(total))
    head = f"[{done:>{width}}/{total}] {result.verdict.upper():<13} {result.label}"
    if result.status != "ok":
        return f"{head}: {result.error}"
    frames = f"{result.frames:,} frames, " if result.frames is not None else ""
    return f"{head} ({frames}{result.seconds:.1f} s) -> {result.run_dir}"


class CampaignProgress:
    """``with CampaignProgress(total) as progress: progress.done(result)``."""

    def __init__(self, total: int, console: Console | None = None, *, plain: bool = False) -> None:
        self.total = total
        self.count = 0
        self.console = console or Console()
        self.rich = self.console.is_terminal and not plain
        self.bad = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> CampaignProgress:
        if self.rich:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]judging logs"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[bad]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("logs", total=self.total, bad="")
        return self

    def done(self, result: LogResult) -> None:
        self.count += 1
        line = _line(result, self.count, self.total)
        if not self.rich:
            self.console.out(line, highlight=False)
            return
        if result.verdict not in ("pass", "marginal"):
            self.bad += 1
            style = "magenta" if result.status != "ok" else "red"
            from rich.text import Text

            self._bar.console.print(Text(line, style=style))
        self._bar.update(self._task, advance=1, bad=f"{self.bad} not passed" if self.bad else "")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
