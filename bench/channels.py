"""Which frames of a log are judged (channel, direction), and which messages come mixed.

A log often holds one message more than once: a logger recording two buses into one BLF/ASC/TRC/
MF4 file, a gateway forwarding a message to a second bus, the same bus captured on two channels,
the bench's own sends (``tx``) beside an ECU's ``rx`` of the same id. Judged as one stream, a
100 ms message looks like 50 ms, two interleaved alive counters look broken, or a dead ECU is
hidden by the other channel's copy. Two parts keep that from ever becoming a verdict:

* :class:`FrameSelection` — what the plan's ``judge:`` section (or ``bench evaluate --channel/
  --direction``) says is judged. Frames outside it are neither decoded nor judged; the count of
  those left out goes into ``summary.json`` (``bus.selection``).
* :class:`StreamMix` — per frame id, how many judged frames came on each (channel, direction),
  counted batch by batch (sums: the same for any batch size). A DBC message whose judged frames
  come on more than one channel or in both directions is *mixed*: its frame-timing checks
  (:data:`TIMING_KINDS`) are ``inconclusive`` with the reason and the remedy
  (:func:`mixed_result`), its signal-value checks stay judged, and ``bus.mixed_messages`` lists it.

Why inconclusive and not fail: a mixed stream says nothing about either sender — the 50 ms gaps
of two 100 ms copies are not a timing fault of the ECU, and a copy that keeps coming can hide one
that stopped. Neither a pass nor a fail would be a promise the log backs; the remedy (choose the
channel) is one option away, so the verdict says what to do instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DIRECTIONS = ("rx", "tx")
#: Check kinds that read a message's frame times or the order of its frames: judged only on one
#: stream (one channel, one direction).
TIMING_KINDS = frozenset({"cycle_time", "timeout", "counter", "crc"})
#: ``bench evaluate --channel all``: judge every channel (undo the plan's or a stored choice).
ALL = "all"


#: What a missing column or a null in it means (bench.frames.normalize's defaults).
_DEFAULTS: dict[str, tuple[Any, pa.DataType]] = {
    "channel": ("", pa.string()),
    "direction": ("rx", pa.string()),
    "is_extended_id": (False, pa.bool_()),
    "is_error_frame": (False, pa.bool_()),
    "is_remote_frame": (False, pa.bool_()),
}


def column(frames: pa.Table, name: str) -> Any:
    """Column ``name`` of a frame table, nulls (or the whole column, when a minimal table has
    none) read as :func:`bench.frames.normalize` fills them."""
    default, kind = _DEFAULTS[name]
    if name not in frames.column_names:
        return pc.fill_null(pa.nulls(frames.num_rows, kind), default)
    return pc.fill_null(frames.column(name), default)


def _only_value(strings: Any) -> str | None:
    """The one value of a non-empty string column, or None when it holds more than one
    (one vectorised comparison with its first value: cheaper than hashing every string)."""
    first = strings[0].as_py()
    return str(first) if pc.all(pc.equal(strings, first)).as_py() else None


@dataclass(frozen=True)
class FrameSelection:
    """The frames a plan's checks read: ``channels`` (as the frame table holds them, e.g. ``"0"``
    for a BLF/ASC's first CAN channel — python-can's numbering — or a bench profile's bus name;
    empty: every channel) and ``direction`` (``rx``/``tx``; None: both). ``origin`` says who
    chose it (``plan`` or ``bench evaluate``), for the summary."""

    channels: tuple[str, ...] = ()
    direction: Literal["rx", "tx"] | None = None
    origin: str = "plan"

    @property
    def active(self) -> bool:
        return bool(self.channels) or self.direction is not None

    @classmethod
    def of_plan(cls, plan: Any) -> FrameSelection:
        """The plan's ``judge:`` section (none: every frame)."""
        spec = getattr(plan, "judge", None)
        if spec is None:
            return cls()
        return cls(tuple(str(c) for c in spec.channels), spec.direction, "plan")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrameSelection:
        direction = data.get("direction")
        if direction not in (None, *DIRECTIONS):
            raise ValueError(f"direction must be rx or tx, got {direction!r}")
        channels = tuple(str(c) for c in data.get("channels") or ())
        return cls(channels, direction, str(data.get("origin") or "bench evaluate"))

    def to_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "direction": self.direction, "origin": self.origin}

    def describe(self) -> str:
        """``channel 0, 1, rx only`` — for notes and reasons."""
        parts = []
        if self.channels:
            parts.append(f"channel {', '.join(self.channels)}")
        if self.direction is not None:
            parts.append(f"{self.direction} only")
        return ", ".join(parts) or "every frame"

    def mask(self, frames: pa.Table) -> pa.ChunkedArray | None:
        """Rows of ``frames`` inside the selection (None: all of them)."""
        if not self.active or not frames.num_rows:
            return None
        keep: Any = None
        if self.channels:
            channel = column(frames, "channel")
            keep = pc.is_in(channel, value_set=pa.array(list(self.channels), pa.string()))
        if self.direction is not None:
            same = pc.equal(column(frames, "direction"), self.direction)
            keep = same if keep is None else pc.and_(keep, same)
        return keep

    def apply(self, frames: pa.Table) -> pa.Table:
        """``frames`` without the rows outside the selection (order kept)."""
        keep = self.mask(frames)
        return frames if keep is None else frames.filter(keep)


@dataclass
class StreamMix:
    """Frames per (frame id, extended, channel, direction), over every batch (:meth:`add`).

    Also the log's frames per channel before any selection (:meth:`add_seen`), so the summary can
    say which channels a log has and which a selection named in vain. Memory: one entry per
    distinct id × channel × direction."""

    counts: dict[tuple[int, bool, str, str], int] = field(default_factory=dict)
    seen_channels: dict[str, int] = field(default_factory=dict)
    seen: int = 0

    def add_seen(self, frames: pa.Table) -> None:
        """Count the channels of a batch as read (before the selection)."""
        self.seen += frames.num_rows
        if not frames.num_rows:
            return
        channels = column(frames, "channel")
        only = _only_value(channels)
        if only is not None:  # the usual batch: one channel, no hashing of strings
            self.seen_channels[only] = self.seen_channels.get(only, 0) + frames.num_rows
            return
        counts = pc.value_counts(channels)
        for item in counts.to_pylist():
            key = item["values"]
            self.seen_channels[key] = self.seen_channels.get(key, 0) + int(item["counts"])

    def add(self, frames: pa.Table) -> None:
        """Count the data frames of a judged batch per id, channel and direction."""
        if not frames.num_rows:
            return
        data = pc.invert(
            pc.or_(column(frames, "is_error_frame"), column(frames, "is_remote_frame"))
        )
        channels, directions = column(frames, "channel"), column(frames, "direction")
        channel, direction = _only_value(channels), _only_value(directions)
        if channel is not None and direction is not None:
            # the usual batch: one channel, one direction; count the integer ids alone
            ids = frames.column("arbitration_id").cast(pa.int64())
            extended = pc.multiply(column(frames, "is_extended_id").cast(pa.int64()), 1 << 32)
            keys = pc.filter(pc.add(ids, extended), data)
            counted = pc.value_counts(keys).flatten() if len(keys) else [pa.array([])] * 2
            for packed, n in zip(counted[0].to_pylist(), counted[1].to_pylist(), strict=True):
                key = (packed & 0xFFFFFFFF, bool(packed >> 32), channel, direction)
                self.counts[key] = self.counts.get(key, 0) + int(n)
            return
        table = pa.table(
            {
                "id": frames.column("arbitration_id"),
                "ext": column(frames, "is_extended_id"),
                "channel": channels,
                "direction": directions,
            }
        ).filter(data)
        if not table.num_rows:
            return
        grouped = table.group_by(["id", "ext", "channel", "direction"]).aggregate([("id", "count")])
        ids = grouped.column("id").to_numpy(zero_copy_only=False)
        exts = grouped.column("ext").to_pylist()
        names = grouped.column("channel").to_pylist()
        ways = grouped.column("direction").to_pylist()
        numbers = np.asarray(grouped.column("id_count").to_numpy(zero_copy_only=False))
        for i, e, c, d, n in zip(ids, exts, names, ways, numbers, strict=True):
            key = (int(i), bool(e), str(c), str(d))
            self.counts[key] = self.counts.get(key, 0) + int(n)

    def streams(self, dbcs: Any) -> dict[str, dict[tuple[str, str], int]]:
        """Per DBC message: judged frames per (channel, direction)."""
        out: dict[str, dict[tuple[str, str], int]] = {}
        for (frame_id, extended, channel, direction), count in sorted(self.counts.items()):
            message = dbcs.message_by_id(frame_id, extended)
            if message is None:
                continue
            per = out.setdefault(message.name, {})
            per[(channel, direction)] = per.get((channel, direction), 0) + count
        return out

    def mixed(self, dbcs: Any) -> dict[str, list[dict[str, Any]]]:
        """DBC messages whose judged frames come on more than one channel or in both
        directions: ``{message: [{"channel", "direction", "frames"}, …]}`` (sorted)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name, per in self.streams(dbcs).items():
            channels = {c for c, _ in per}
            directions = {d for _, d in per}
            if len(channels) > 1 or len(directions) > 1:
                out[name] = [
                    {"channel": c, "direction": d, "frames": n} for (c, d), n in sorted(per.items())
                ]
        return out


def channel_label(channel: str) -> str:
    return repr(channel) if channel else "(none)"


def mixed_reason(message: str, streams: Sequence[Mapping[str, Any]]) -> str:
    """One line: the message, its channels/directions with frame counts, and the remedy."""
    parts = ", ".join(
        f"channel {channel_label(s['channel'])} {s['direction']}: {s['frames']}" for s in streams
    )
    channels = {s["channel"] for s in streams}
    remedy = (
        "choose one with the plan's judge: channels: [...] or bench evaluate --channel C"
        if len(channels) > 1
        else "choose one with judge: direction: rx|tx or bench evaluate --direction rx|tx"
    )
    return f"{message} comes as more than one stream ({parts} frames); {remedy}"


def timing_messages(spec: Any) -> list[str]:
    """The messages whose frame stream a check of :data:`TIMING_KINDS` reads."""
    if spec.kind not in TIMING_KINDS:
        return []
    names: list[str] = []
    for _, kind, name in spec.references():
        message = name if kind == "message" else name.partition(".")[0]
        if message not in names:
            names.append(message)
    return names


def unmatched_channels(selection: FrameSelection, mix: StreamMix) -> list[str]:
    """The selection's channels on which the log has no frame."""
    return [c for c in selection.channels if c not in mix.seen_channels]


def selection_note(selection: FrameSelection, mix: StreamMix, judged: int) -> list[str]:
    """Notes for ``summary.skipped``: frames left out, channels that matched nothing."""
    if not selection.active:
        return []
    seen = ", ".join(f"{channel_label(c)}: {n}" for c, n in sorted(mix.seen_channels.items()))
    notes = [
        f"frames outside judge: {selection.describe()} ({selection.origin}): "
        f"{mix.seen - judged} of {mix.seen} not judged"
    ]
    missing = unmatched_channels(selection, mix)
    if missing:
        notes.append(
            f"judge: channel {', '.join(map(channel_label, missing))} has no frame in this log "
            f"(its channels: {seen or 'none'})"
        )
    return notes


def bus_entries(
    selection: FrameSelection, mix: StreamMix, judged: int, dbcs: Any
) -> dict[str, Any]:
    """What ``summary.json``'s ``bus`` section says of channels: frames per channel as read,
    the selection and what it left out, the mixed messages."""
    entries: dict[str, Any] = {
        "channels": {c: n for c, n in sorted(mix.seen_channels.items())},
        "mixed_messages": mix.mixed(dbcs),
    }
    if selection.active:
        entries["selection"] = selection.to_dict() | {
            "frames_left_out": mix.seen - judged,
            "channels_without_frames": unmatched_channels(selection, mix),
        }
    return entries


def parse_cli(channels: Iterable[str], direction: str | None) -> FrameSelection | None:
    """``bench evaluate --channel C… --direction D``: None when neither was given; ``--channel
    all`` alone judges every channel."""
    chosen = [c for c in channels]
    if not chosen and direction is None:
        return None
    if ALL in chosen:
        chosen = []
    return FrameSelection(tuple(chosen), direction, "bench evaluate")  # type: ignore[arg-type]


__all__ = [
    "ALL",
    "DIRECTIONS",
    "TIMING_KINDS",
    "FrameSelection",
    "StreamMix",
    "bus_entries",
    "mixed_reason",
    "parse_cli",
    "selection_note",
    "timing_messages",
    "unmatched_channels",
]
