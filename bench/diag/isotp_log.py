"""ISO-TP (ISO 15765-2) messages reassembled from recorded frames, by their recorded times.

Each frame is parsed by can-isotp's own :class:`isotp.protocol.PDU` (single, first, consecutive
and flow-control frames; classic CAN and CAN FD, escape sequences for single frames > 8 bytes and
first frames > 4095 bytes). Only the receive state machine around it is written here, because
can-isotp's :class:`~isotp.TransportLayerLogic` cannot judge a *recorded* log:

* its timeouts (N_Cr) run on the wall clock (``isotp.tools.Timer`` reads
  ``time.perf_counter_ns``), so feeding an archived log gives results that depend on how fast
  the machine replays it — a log must judge the same on every machine, days later;
* it hands completed payloads over a queue without the times of their first and last frames,
  which the exchanges (request/response times, P2*) need;
* a message still incomplete when the log ends, or broken by a wrong sequence number, is only
  private state or a logged warning there, while here it must become an exchange with a reason.

The state machine follows can-isotp's receiver rule for rule (tests/test_diag_isotp.py feeds
random frame sequences to both and compares the payloads): a single or first frame while a
message is in progress interrupts it; a consecutive frame with the wrong sequence number aborts
it; a consecutive frame while idle is ignored; a consecutive frame whose RX_DL differs from the
first frame's and would not complete the message is ignored; a first frame with an RX_DL that
is not a CAN (FD) length is refused. Flow-control frames belong to the other direction's
sender and are skipped. N_Cr (the time between two consecutive frames) is judged on the
recorded timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isotp.can_message import CanMessage
from isotp.protocol import PDU

N_CR = 1.0
"""ISO 15765-2 N_Cr, seconds: the longest wait for the next consecutive frame (can-isotp's
``rx_consecutive_frame_timeout`` default, 1000 ms)."""

_RX_DL = (8, 12, 16, 20, 24, 32, 48, 64)


@dataclass(frozen=True)
class Frame:
    """One recorded CAN frame of a diagnostic id (seconds, bus clock)."""

    time: float
    arbitration_id: int
    is_extended_id: bool
    data: bytes
    is_fd: bool = False
    seq: int = 0  # position in the log (frames with equal timestamps keep their recorded order)


@dataclass(frozen=True)
class IsoTpMessage:
    """One ISO-TP message on one CAN id.

    ``start``: time of its single or first frame; ``end``: time of the frame that completed it
    (or the last one that arrived). ``payload``: the whole message, or the bytes that arrived
    before it broke. ``length``: the length its first frame announced. ``problem``: None when it
    is complete and well formed, else why not (one line). ``first``/``last``: the log positions
    (:attr:`Frame.seq`) of its first and last frame, which order messages with equal times (a
    lockstep bus puts a response and the next request on the same 10 ms tick).
    """

    arbitration_id: int
    is_extended_id: bool
    start: float
    end: float
    payload: bytes
    length: int
    frames: int
    problem: str | None = None
    first: int = 0
    last: int = 0

    @property
    def complete(self) -> bool:
        return self.problem is None

    @property
    def start_key(self) -> tuple[float, int]:
        return (self.start, self.first)

    @property
    def end_key(self) -> tuple[float, int]:
        return (self.end, self.last)


@dataclass
class _Receiving:
    start: float
    last: float
    first_seq: int
    last_seq: int
    length: int
    rx_dl: int
    buffer: bytearray
    seq: int = 0
    frames: int = 1


@dataclass
class Reassembler:
    """The receive side of one CAN id, fed frames in time order (:meth:`feed`, :meth:`close`).

    ``n_cr``: seconds allowed between consecutive frames. ``stray``: consecutive frames that
    arrived with no message in progress (ignored, as can-isotp ignores them).
    """

    arbitration_id: int
    is_extended_id: bool
    n_cr: float = N_CR
    stray: int = 0
    _rx: _Receiving | None = field(default=None, repr=False)

    def feed(self, frame: Frame) -> list[IsoTpMessage]:
        """Messages this frame completes, breaks or interrupts (usually none or one)."""
        out: list[IsoTpMessage] = []
        rx = self._rx
        if rx is not None and frame.time - rx.last > self.n_cr:
            out.append(self._broken(rx, f"no consecutive frame within N_Cr ({self.n_cr:g} s)"))
            rx = self._rx = None
        try:
            pdu = PDU(
                CanMessage(
                    frame.arbitration_id,
                    len(frame.data),
                    frame.data,
                    frame.is_extended_id,
                    frame.is_fd,
                )
            )
        except ValueError as exc:
            if rx is not None:  # can-isotp stops receiving on an invalid frame
                out.append(self._broken(rx, f"invalid ISO-TP frame at t = {frame.time:.6f} s"))
                self._rx = None
            out.append(self._single(frame, b"", 0, f"invalid ISO-TP frame: {exc}"))
            return out
        if pdu.type == PDU.Type.FLOW_CONTROL:
            return out  # the other direction's sender reads it
        if pdu.type == PDU.Type.SINGLE_FRAME:
            if pdu.can_dl > 8 and not pdu.escape_sequence:
                out.append(self._single(frame, b"", pdu.length or 0, _NO_ESCAPE))
                return out  # can-isotp ignores it; a message in progress goes on
            if rx is not None:
                out.append(self._broken(rx, "interrupted by a new single frame"))
                self._rx = None
            out.append(self._single(frame, bytes(pdu.data), len(pdu.data), None))
            return out
        if pdu.type == PDU.Type.FIRST_FRAME:
            if rx is not None:
                out.append(self._broken(rx, "interrupted by a new first frame"))
                self._rx = None
            assert pdu.length is not None
            if pdu.rx_dl not in _RX_DL:
                out.append(
                    self._single(
                        frame,
                        b"",
                        pdu.length,
                        f"first frame with RX_DL {pdu.rx_dl}, not a CAN frame length",
                    )
                )
                return out
            self._rx = _Receiving(
                frame.time,
                frame.time,
                frame.seq,
                frame.seq,
                pdu.length,
                pdu.rx_dl,
                bytearray(pdu.data),
            )
            return out
        # consecutive frame
        if rx is None:
            self.stray += 1
            return out
        expected = (rx.seq + 1) & 0xF
        if pdu.seqnum != expected:
            out.append(
                self._broken(
                    rx,
                    f"wrong sequence number {pdu.seqnum:#x} (expected "
                    f"{expected:#x}) at t = {frame.time:.6f} s",
                ),
            )
            self._rx = None
            return out
        missing = rx.length - len(rx.buffer)
        if pdu.rx_dl != rx.rx_dl and pdu.rx_dl < missing:
            return out  # can-isotp ignores a frame changing RX_DL mid-message
        rx.seq, rx.last, rx.last_seq, rx.frames = pdu.seqnum, frame.time, frame.seq, rx.frames + 1
        rx.buffer.extend(pdu.data[:missing])
        if len(rx.buffer) >= rx.length:
            out.append(self._done(rx, None))
            self._rx = None
        return out

    def close(self, log_end: float) -> list[IsoTpMessage]:
        """The end of the log: a message still in progress is incomplete."""
        rx, self._rx = self._rx, None
        if rx is None:
            return []
        return [self._broken(rx, f"the log ends at t = {log_end:.6f} s before it completed")]

    def _broken(self, rx: _Receiving, why: str) -> IsoTpMessage:
        got = f"{len(rx.buffer)} of {rx.length} bytes"
        return self._done(rx, f"truncated ISO-TP message ({got}): {why}")

    def _done(self, rx: _Receiving, problem: str | None) -> IsoTpMessage:
        return IsoTpMessage(
            self.arbitration_id,
            self.is_extended_id,
            rx.start,
            rx.last,
            bytes(rx.buffer),
            rx.length,
            rx.frames,
            problem,
            rx.first_seq,
            rx.last_seq,
        )

    def _single(self, frame: Frame, data: bytes, length: int, problem: str | None) -> IsoTpMessage:
        return IsoTpMessage(
            self.arbitration_id,
            self.is_extended_id,
            frame.time,
            frame.time,
            data,
            length,
            1,
            problem,
            frame.seq,
            frame.seq,
        )


_NO_ESCAPE = "single frame longer than 8 bytes without the escape sequence (byte 0 must be 0)"


def reassemble(
    frames: Iterable[Frame], *, log_end: float | None = None, n_cr: float = N_CR
) -> list[IsoTpMessage]:
    """Every ISO-TP message in ``frames`` (time-ordered), per CAN id, sorted by start time.

    ``log_end``: when the recording stopped (default: the last frame); a message in progress
    then is reported incomplete. Never raises on bad data: problems are in ``problem``.
    """
    machines: dict[tuple[int, bool], Reassembler] = {}
    messages: list[IsoTpMessage] = []
    last = float("-inf")
    for frame in frames:
        key = (frame.arbitration_id, frame.is_extended_id)
        machine = machines.get(key)
        if machine is None:
            machine = machines[key] = Reassembler(*key, n_cr=n_cr)
        messages += machine.feed(frame)
        last = max(last, frame.time)
    end = last if log_end is None else max(log_end, last)
    for machine in machines.values():
        messages += machine.close(end)
    messages.sort(key=lambda m: (m.start_key, m.end_key))
    return messages


def select_frames(table: pa.Table, ids: Iterable[tuple[int, bool]]) -> Iterator[Frame]:
    """Data frames of ``table`` (a frame table, :mod:`bench.frames`) on the given
    ``(arbitration_id, is_extended_id)`` pairs, in time order (stable: ties keep log order).

    One vectorized pass over the id column selects them; only the selected frames (diagnostic
    traffic: a few hundred in a run of millions) become Python objects.
    """
    wanted = sorted(set(ids))
    if not wanted or table.num_rows == 0:
        return iter(())
    mask = pc.is_in(
        table.column("arbitration_id"), value_set=pa.array([i for i, _ in wanted], pa.uint32())
    )
    rows = pc.indices_nonzero(pc.fill_null(mask, False))  # the whole log: one pass over its ids
    picked = table.take(rows)  # a take of the few rows, not a filter of every column
    for flag in ("is_error_frame", "is_remote_frame"):  # on the few picked rows only
        if flag in picked.column_names and picked.num_rows:
            picked = picked.filter(pc.invert(pc.fill_null(picked.column(flag), False)))
    if picked.num_rows == 0:
        return iter(())
    times = np.asarray(picked.column("timestamp").to_numpy(), np.float64)
    order = np.argsort(times, kind="stable")
    ids_col = picked.column("arbitration_id").to_pylist()
    ext = picked.column("is_extended_id").fill_null(False).to_pylist()
    data = picked.column("data").to_pylist()
    fd = (
        picked.column("is_fd").fill_null(False).to_pylist()
        if "is_fd" in picked.column_names
        else [False] * picked.num_rows
    )
    keys = set(wanted)
    return (
        Frame(float(times[i]), ids_col[i], bool(ext[i]), bytes(data[i] or b""), bool(fd[i]), seq)
        for seq, i in enumerate(order.tolist())
        if (ids_col[i], bool(ext[i])) in keys
    )


__all__ = ["N_CR", "Frame", "IsoTpMessage", "Reassembler", "reassemble", "select_frames"]
