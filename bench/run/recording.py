"""The run's recording: frames (:class:`~bench.record.SegmentWriter`) and events
(:class:`~bench.record.EventLog`), and what happens when the storage under them fails.

A write can fail mid-run for reasons of the disk, not of the run: full (ENOSPC), read-only
(EROFS, a remount after a disk error), the run directory removed (ENOENT), a failing device
(EIO). The first failure raises :class:`StorageFault` once, so the executor stops the run and
sends the safe state; from then on nothing here raises: frames and events stay in memory and
every later write is a retry. :meth:`Recording.close` makes a last attempt where the files can
still go (the run directory made again if it was removed, the partial segment that filled the
disk deleted) and returns what it could not save, for the log and stderr. Closed segments are
never touched, so the frames already on disk stay intact.

A full disk leaves no room even for the events file that says why the run ended. So a run
claims :data:`RESERVE_BYTES` up front (``.space-reserve`` in the run directory, a ballast file
as databases keep) and gives it back when storage fails, before the last attempt: the abort and
``run_end`` events then fit, and the open segment's journal keeps its frames for recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from operator import attrgetter
from pathlib import Path
from typing import Any

import can
import pyarrow as pa

from ..errors import HarnessError, one_line
from ..record import TMP_SUFFIX, EventLog, SegmentWriter
from ..rundir import EVENTS_FILE, FRAMES_DIR

RESERVE_FILE = ".space-reserve"
RESERVE_BYTES = 64 * 1024
"""Room kept back for the events file (a few kB) and its temporary copy on a full disk."""

STORAGE_ERRORS = (OSError, HarnessError, pa.ArrowException)
"""What a failed write surfaces as: the recorder's one-line HarnessError, or the OSError itself."""


class StorageFault(HarnessError):
    """A write to the run directory failed; the message names the path and the reason."""


class Recording:
    """Frames and events of one run directory; see the module docstring for storage faults.

    ``restore_inputs(run_dir)`` writes the plan and DBC copies again (after the run directory
    was removed), so a directory made again on close can still be evaluated.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        max_frames: int,
        max_seconds: float,
        restore_inputs: Callable[[Path], Any],
    ) -> None:
        self.run_dir = run_dir
        self._max_frames = max_frames
        self._max_seconds = max_seconds
        self._restore_inputs = restore_inputs
        self._reserve = run_dir / RESERVE_FILE
        with suppress(OSError):  # no room for it at the start: the first write will say so
            self._reserve.write_bytes(b"\0" * RESERVE_BYTES)
        self.frames = self._segment_writer()
        self.events = EventLog(run_dir / EVENTS_FILE)
        self.fault: str | None = None
        """The first write failure (path: reason), once there was one."""
        self.strict = True
        self._held: list[list[can.Message]] = []
        """Raise the first failure (during the steps); the abort path turns this off."""

    def _segment_writer(self) -> SegmentWriter:
        return SegmentWriter(
            self.run_dir / FRAMES_DIR,
            max_frames=self._max_frames,
            max_seconds=self._max_seconds,
            journal_every_s=0.0,  # the pump hands frames over every JOURNAL_EVERY_S
        )

    # -- writing ---------------------------------------------------------------------------------

    def write_frames(self, frames: Sequence[can.Message]) -> None:
        """Hand frames over in arrival order, ``is_rx`` marking received ones (the writer closes
        segments as they fill)."""
        if self.fault is not None:
            # The writer would retry its failed segment on every call and drop the rest of
            # the batch when it fails again: hold them here for the last attempt on close.
            self._held.append(list(frames))
            return
        try:
            self.frames.write_messages(in_time_order(frames))
            self.frames.poll()
            self.events.poll()
        except STORAGE_ERRORS as exc:
            self._failed(exc)

    def event(self, t: float, kind: str, name: str, detail: dict[str, Any] | None = None) -> None:
        """Add an event; verdict events (step, abort) go to disk at once."""
        try:
            self.events.add(t, kind, name, detail)
        except STORAGE_ERRORS as exc:  # the event is kept in memory: a later flush retries
            self._failed(exc)

    def flush_frames(self) -> None:
        """Close the open segment now (the end of the steps: what is recorded goes to disk)."""
        try:
            self.frames.flush()
        except STORAGE_ERRORS as exc:
            self._failed(exc)

    def flush_events(self) -> None:
        try:
            self.events.flush()
        except STORAGE_ERRORS as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        first = self.fault is None
        if first:
            self.fault = describe_fault(exc)
        if first and self.strict:
            raise StorageFault(self.fault) from None

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Last attempt to write everything; returns one line per thing that was lost.

        Never raises. Frames still in memory that cannot be written are dropped (counted), so the
        small events file, which says why the run ended, gets the space they would have taken.
        """
        lost: list[str] = []
        events_first = self.fault is not None
        if events_first:
            # The small events file (why the run ended) goes first into the room the partial
            # segment left: the open segment's journal keeps its frames for recovery anyway.
            self._make_room()
            lost += self._close_events()
        held = sum(len(frames) for frames in self._held)
        try:
            for frames in self._held:
                self.frames.write_messages(in_time_order(frames))
            self._held = []
            self.frames.close()
        except STORAGE_ERRORS as exc:
            pending = self.frames.pending_frames + (held if self._held else 0)
            self._held = []
            lost.append(f"{pending:,} frames not written: {describe_fault(exc)}")
            self._drop_unwritten()
            if not self.frames.segments:  # none on disk: an empty one says "zero frames"
                with suppress(*STORAGE_ERRORS):
                    self.frames = self._segment_writer()
                    self.frames.close()
                self._drop_unwritten()
        if not events_first:
            lost += self._close_events()
        with suppress(OSError):
            self._reserve.unlink(missing_ok=True)
        return lost

    def _close_events(self) -> list[str]:
        try:
            self.events.close()
        except STORAGE_ERRORS as exc:
            return [f"events not written: {describe_fault(exc)}"]
        return []

    def _make_room(self) -> None:
        """The run directory back (if removed, with its inputs) and partial segments gone."""
        frames_dir = self.run_dir / FRAMES_DIR
        with suppress(Exception):  # read-only or full: close() says what is lost
            if not self.run_dir.is_dir():
                self.run_dir.mkdir(parents=True)
                self._restore_inputs(self.run_dir)
            frames_dir.mkdir(exist_ok=True)
        self._drop_partial_files(frames_dir)
        with suppress(OSError):
            self._reserve.unlink(missing_ok=True)  # the ballast: room for the events

    def _drop_unwritten(self) -> None:
        # A new writer numbers after the segments on disk; the old one's memory is released.
        self._drop_partial_files(self.run_dir / FRAMES_DIR)

    @staticmethod
    def _drop_partial_files(frames_dir: Path) -> None:
        # A segment whose write failed leaves part-NNNNN.parquet.tmp, holding the space it took.
        with suppress(OSError):
            for tmp in frames_dir.glob(f"*{TMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)


def in_time_order(frames: Sequence[can.Message]) -> list[can.Message]:
    """Frames in timestamp order, equal timestamps in arrival order (a stable sort): a segment's
    rows go forward in time, as a reader expects, and the same run gives the same rows."""
    return sorted(frames, key=attrgetter("timestamp"))


def describe_fault(exc: BaseException) -> str:
    """``path: reason`` in one line, from an OSError or the recorder's HarnessError."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or one_line(str(exc))}"
    return one_line(str(exc))
