"""What a run is asked to do (:class:`RunOptions`) and what it gives back (:class:`RunResult`).

The state of a run in between lives in :mod:`bench.run.state`; why a run ends early is a
:class:`StopRun`, raised anywhere in the step loop and caught once by the executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import EXIT_ABORTED
from ..profile import BenchProfile
from ..rundir import DEFAULT_ROOT
from ..summary import Summary, exit_code


@dataclass
class RunOptions:
    """How to run a plan; None means: take it from the plan (then the defaults)."""

    interface: str | None = None
    channel: str | None = None
    bitrate: int | None = None
    realtime: bool = False
    seed: int | None = None
    inject: tuple[str, ...] = ()
    out_root: Path = DEFAULT_ROOT
    out_dir: Path | None = None
    tick_s: float = 0.01
    safe_hold_s: float = 1.0
    stream: IO[str] | None = None
    force_plain: bool = False
    handle_signals: bool = True
    max_segment_frames: int = 200_000
    max_segment_seconds: float = 10.0
    bench: BenchProfile | None = None
    chamber_poll_s: float = 1.0
    cyclic_tasks: bool = True
    """Hand constant periodic sends to python-can cyclic send tasks (the kernel's BCM on
    SocketCAN) in real time."""


class StopRun(Exception):
    """Unwinds the step loop; carries why the run stops early.

    ``kind``: ``abort`` (a live check), ``interrupt`` (a signal), ``timeout`` (a step with
    ``on_timeout: abort``), ``error`` (bus, instrument, harness) or ``storage`` (the recording
    could not be written: ``reason`` names the path and the OS's reason).
    """

    def __init__(self, kind: str, reason: str, check: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.check = check


@dataclass
class RunResult:
    """The run directory, its summary (None when it could not be evaluated) and why it stopped."""

    run_dir: Path
    summary: Summary | None
    stopped: StopRun | None = None
    problem: str | None = None
    """Why the directory was not evaluated (one line), when ``summary`` is None."""

    @property
    def exit_code(self) -> int:
        """0/1 from the verdict; 3 when aborted, stopped early or not evaluable.

        Never 2 (bad input) once the run has started: frames may have been sent.
        """
        if self.summary is None:
            return EXIT_ABORTED
        code = exit_code(self.summary.verdict)
        if self.stopped is not None and code in (0, 1):
            return EXIT_ABORTED
        return code
