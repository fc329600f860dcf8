"""What a person sees while a plan runs.

On a terminal: a rich display refreshed a few times a second — current step, simulated and wall
time, warp factor, frames per second, key signals and the checks closest to their limits.
Anywhere else (CI, nightly, a pipe): plain timestamped lines, one per event plus a status line
every few seconds, so a log file reads well. Every line also goes to ``run.log`` in the run
directory, whatever the output is.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


@dataclass
class Snapshot:
    """The state of a run at one moment, as the live view shows it."""

    plan: str
    step: str = "-"
    step_index: int = 0
    step_count: int = 0
    sim_time: float = 0.0
    wall_time: float = 0.0
    frames_rx: int = 0
    frames_tx: int = 0
    frames_per_s: float = 0.0
    signals: dict[str, tuple[float, str]] = field(default_factory=dict)  # name -> (value, unit)
    near_limits: list[tuple[str, str]] = field(default_factory=list)  # (check, "57.1 of max 60")

    @property
    def warp(self) -> float:
        return self.sim_time / self.wall_time if self.wall_time > 0 else 0.0


class NullStream:
    """A stream that drops everything: for library callers and tests that want no live output
    (``run.log`` in the run directory still gets every line)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _clock() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _fmt(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.4g}"


class LiveView:
    """Rich on a terminal, plain lines elsewhere; always mirrored to a log file."""

    STATUS_EVERY_S = 5.0

    def __init__(self, log_path: Path | None = None, *, stream: IO[str] | None = None,
                 force_plain: bool = False) -> None:  # fmt: skip
        self._stream = stream or sys.stdout
        self._console = Console(file=self._stream)
        self.rich = self._console.is_terminal and not force_plain
        self._log = log_path.open("a", encoding="utf-8") if log_path else None
        self.log_failure: str | None = None
        """Why the log file stopped being written (``path: reason``), if it did."""
        self._live: Live | None = None
        self._last_status = 0.0
        self._events: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> LiveView:
        if self.rich:
            self._live = Live(console=self._console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        self._drop_log()

    # -- output ----------------------------------------------------------------------------------

    def event(self, text: str, sim_time: float | None = None) -> None:
        """A line worth keeping: step start/end, stimulus, abort, warning."""
        stamp = f"[t={sim_time:10.3f} s] " if sim_time is not None else ""
        line = f"{_clock()} {stamp}{text}"
        self._write_log(line)
        if self.rich:
            self._events = [*self._events[-7:], f"{stamp}{text}"]
        else:
            print(line, file=self._stream, flush=True)

    def status(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Show the current state; plain output prints it only every few seconds."""
        now = time.monotonic()
        if self.rich and self._live is not None:
            self._live.update(self._render(snapshot))
            return
        if force or now - self._last_status >= self.STATUS_EVERY_S:
            self._last_status = now
            self.event(self._status_line(snapshot), snapshot.sim_time)

    def _write_log(self, line: str) -> None:
        if self._log is None:
            return
        try:
            self._log.write(line + "\n")
            self._log.flush()
        except OSError as exc:
            # Disk full, read-only, directory gone: the run goes on to its safe end, and the
            # terminal still gets every line. Said once, on the terminal.
            self.log_failure = f"{self._log.name}: {exc.strerror or exc}"
            self._drop_log()
            print(f"log file not written from here on: {self.log_failure}", file=self._stream)

    def _drop_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            with suppress(OSError):  # the unflushed tail is what could not be written
                log.close()

    @staticmethod
    def _status_line(s: Snapshot) -> str:
        signals = ", ".join(f"{name}={_fmt(v)}{unit and ' ' + unit}" for name, (v, unit)
                            in list(s.signals.items())[:4])  # fmt: skip
        return (
            f"step {s.step_index}/{s.step_count} {s.step} | wall {s.wall_time:.1f} s | "
            f"x{s.warp:.0f} | {s.frames_per_s:,.0f} frames/s | "
            f"rx {s.frames_rx:,} tx {s.frames_tx:,}" + (f" | {signals}" if signals else "")
        )

    def _render(self, s: Snapshot) -> Panel:
        head = Table.grid(padding=(0, 2))
        head.add_row(
            Text(f"step {s.step_index}/{s.step_count}", style="bold"),
            Text(s.step, style="bold cyan"),
            f"sim {s.sim_time:,.1f} s",
            f"wall {s.wall_time:,.1f} s",
            f"x{s.warp:,.0f}",
            f"{s.frames_per_s:,.0f} frames/s",
            f"rx {s.frames_rx:,} · tx {s.frames_tx:,}",
        )
        signals = Table(title="signals", show_header=False, box=None, title_justify="left")
        for name, (value, unit) in s.signals.items():
            signals.add_row(name, Text(_fmt(value), style="bold"), unit)
        limits = Table(title="closest to limits", show_header=False, box=None,
                       title_justify="left")  # fmt: skip
        for check, text in s.near_limits[:6]:
            limits.add_row(Text(check, style="yellow"), text)
        events = Text("\n".join(self._events), style="dim")
        return Panel(Group(head, signals, limits, events), title=f"bench · {s.plan}")
