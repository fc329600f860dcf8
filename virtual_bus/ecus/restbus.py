"""The restbus: every message an ECU sends, from the DBC, at its cycle time or on change.

One :class:`Transmitter` per message. The DBC decides everything about a frame: id, length,
CAN FD, extended id, cycle time (``GenMsgCycleTime``), send type (``GenMsgSendType``; ``Event``
messages go out on change, no closer than ``GenMsgDelayTime``), multiplexer values (a multiplexed
message sends one multiplexer value per frame, in turn). The ECU model only supplies signal
values by name; cantools encodes them (through :class:`bench.e2e.Protector`, which fills the alive
counter and the CRC8).

Why the payload cache (profiled: cantools encoding was about a third of the vehicle's CPU time per
frame, python-can's copy into the receiver's queue another third): most signals hold still between
frames (a parked car, the identity pages, a pack at rest), so the transmitter first converts the
values to the raw integers the DBC would carry (``round((value - offset) / scale)``, cantools' own
rule) and re-encodes through cantools only when those change. The cached payload is the exact
bytes cantools produced for the same raw values, so the cache cannot change the frame stream.
Protected messages carry a fresh alive counter in every frame: their cached payload is cantools'
encoding with counter 0, the counter is OR-ed in from a table cantools encoded once per counter
value (signals never overlap, unused bits are zero), and the CRC is sealed as
:func:`bench.e2e.seal` does: bit for bit what :class:`~bench.e2e.Protector` produces (tested).
Messages with float signals, or with both a multiplexer and a counter, take the plain Protector
path.

Frame and signal faults (:mod:`virtual_bus.faults`) are applied here, as the last step before the
bus, so each produces only its own symptom.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import can
from cantools.database.can import Message

from bench.can_frame import Frame
from bench.e2e import (
    COUNTER_SIGNAL,
    CRC_SIGNAL,
    Protector,
    counter_modulus,
    crc8_j1850,
    crc_byte_index,
)

from ..faults import FaultSpec

Source = Callable[[int | None], Mapping[str, float]]
FrameSink = Callable[[can.Message], None]


@dataclass
class _SignalCodec:
    name: str
    minimum: float
    maximum: float
    scale: float
    offset: float


def multiplexer_values(message: Message) -> tuple[str | None, list[int]]:
    """The multiplexer signal of ``message`` and the values it takes (DBC order), or (None, [])."""
    mux = next((s.name for s in message.signals if s.is_multiplexer), None)
    if mux is None:
        return None, []
    ids: set[int] = set()
    for signal in message.signals:
        if signal.multiplexer_signal == mux and signal.multiplexer_ids:
            ids.update(signal.multiplexer_ids)
    return mux, sorted(ids)


@dataclass
class Transmitter:
    """Sends one message: encodes the model's values, applies faults, stamps and transmits."""

    message: Message
    source: Source
    period_us: int | None
    send: Callable[[can.Message], None]
    faults: list[FaultSpec] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    delay_us: int = 0
    channel: str | None = None
    sent: int = 0
    last_sent_us: int | None = None
    _protector: Protector = field(init=False)
    _codecs: list[_SignalCodec] = field(init=False)
    _mux: str | None = field(init=False)
    _mux_values: list[int] = field(init=False)
    _mux_pos: int = field(init=False, default=0)
    _cache: dict[int | None, tuple[tuple[int, ...], bytes]] = field(init=False)
    _protected: bool = field(init=False)
    _crc_index: int | None = field(init=False)
    _stuck: dict[int, float] = field(init=False)
    _last_event_key: tuple | None = field(init=False, default=None)
    _last_event_values: dict[str, float] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._protector = Protector(self.message)
        self._crc_index = crc_byte_index(self.message)
        self._protected = counter_modulus(self.message) is not None or self._crc_index is not None
        self._codecs = [
            _SignalCodec(
                s.name,
                s.minimum if s.minimum is not None else float("-inf"),
                s.maximum if s.maximum is not None else float("inf"),
                s.scale,
                s.offset,
            )
            for s in self.message.signals
            if not s.is_multiplexer
        ]
        self._mux, self._mux_values = multiplexer_values(self.message)
        self._cache = {}
        self._stuck = {}
        # cantools computes some Message properties on every access; a frame needs them each time.
        self._frame_id = self.message.frame_id
        self._is_extended = self.message.is_extended_frame
        self._is_fd = self.message.is_fd
        self._signal_faults = [(i, f) for i, f in enumerate(self.faults) if f.signal is not None]
        self._frame_faults = [f for f in self.faults if f.signal is None]
        self._clamps = tuple((c.name, c.minimum, c.maximum) for c in self._codecs)
        # Plain tuples for the per-frame loops (attribute lookups were a third of their time).
        self._names = tuple(c.name for c in self._codecs)
        self._scaling = tuple((c.name, c.offset, c.scale) for c in self._codecs)
        self._cacheable = not any(s.is_float for s in self.message.signals)
        self._modulus = counter_modulus(self.message)
        self._defaults = {
            s.name: (s.initial if s.initial is not None else 0) for s in self.message.signals
        }
        self._counter_masks: list[int] | None = None
        if self._protected and self._mux is None and self._cacheable:
            self._counter_masks = self._encode_counter_masks()

    def _encode_counter_masks(self) -> list[int]:
        """The bits of each alive counter value, as cantools encodes them with all else zero."""
        if self._modulus is None:
            return [0]
        zeros = {s.name: 0 for s in self.message.signals}
        return [
            int.from_bytes(
                self.message.encode(
                    {**zeros, COUNTER_SIGNAL: value}, scaling=False, strict=False, padding=False
                ),
                "little",
            )
            for value in range(self._modulus)
        ]

    @property
    def is_event(self) -> bool:
        return self.period_us is None

    @property
    def protector(self) -> Protector:
        return self._protector

    # -- values -----------------------------------------------------------------------------------

    def model_values(self, mux: int | None) -> dict[str, float]:
        """The model's values for the signals this message has in the DBC."""
        raw = self.source(mux)
        return {name: raw[name] for name in self._names if name in raw}

    def values(self, t: float, mux: int | None) -> dict[str, float]:
        """The values of this frame: signal faults applied, clamped to the DBC ranges."""
        values = self.model_values(mux)
        for index, fault in self._signal_faults:
            name = fault.signal
            if name not in values:
                continue
            if not fault.active(t):
                self._stuck.pop(index, None)
            elif fault.kind == "stuck":
                values[name] = self._stuck.setdefault(index, values[name])
            elif fault.kind == "offset":
                values[name] += float(fault.value)
            elif fault.kind == "noise":
                values[name] += self.rng.gauss(0.0, float(fault.value))
        for name, low, high in self._clamps:
            value = values.get(name)
            # A real ECU saturates; cantools would otherwise wrap the raw bits.
            if value is not None and (value < low or value > high):
                values[name] = low if value < low else high
        if self._mux is not None:
            values[self._mux] = mux
        return values

    def _raw_key(self, values: Mapping[str, float]) -> tuple[int, ...]:
        """The raw integers the DBC would carry: equal keys give byte-identical payloads."""
        return tuple(
            round((values[name] - offset) / scale) if name in values else -(2**62)
            for name, offset, scale in self._scaling
        )

    def encode(self, t: float, mux: int | None) -> bytes:
        """The payload of the next frame (advances the alive counter)."""
        values = self.values(t, mux)
        masks = self._counter_masks
        if not self._cacheable or (self._protected and masks is None):
            return self._protector.encode(values)
        key = self._raw_key(values)
        cached = self._cache.get(mux)
        if cached is not None and cached[0] == key:
            payload = cached[1]
        else:
            if masks is None:
                payload = self._protector.encode(values)
            else:
                signals = {**self._defaults, **values, CRC_SIGNAL: 0}
                if self._modulus is not None:
                    signals[COUNTER_SIGNAL] = 0
                payload = self.message.encode(signals, scaling=True, strict=False, padding=False)
            self._cache[mux] = (key, payload)
        if masks is None:
            return payload
        protector = self._protector
        counter = protector.counter
        if self._modulus is not None:
            protector.counter = (counter + 1) % self._modulus
        data = (int.from_bytes(payload, "little") | masks[counter]).to_bytes(len(payload), "little")
        index = self._crc_index
        if index is None:
            return data
        # bench.e2e.seal, without its per-call lookup of the CRC signal
        crc = crc8_j1850(data[:index] + data[index + 1 :])
        return data[:index] + bytes((crc,)) + data[index + 1 :]

    # -- transmission -----------------------------------------------------------------------------

    def fire(self, due_us: int, t: float, timestamp: float) -> int | None:
        """Send the frame due at ``due_us``; return when the next one is due (None: on change)."""
        period = self.period_us
        stretched = period
        stopped = False
        for fault in self._frame_faults:
            if fault.active(t):
                if fault.kind == "stop":
                    stopped = True
                elif fault.kind == "stretch" and period is not None:
                    stretched = round(period * float(fault.value))
        if not stopped:
            self._transmit(t, timestamp)
            self.last_sent_us = due_us
        elif self._mux_values:
            self._mux_pos = (self._mux_pos + 1) % len(self._mux_values)
        return None if stretched is None else due_us + max(1, stretched)

    @property
    def kernel_cycle_length(self) -> int:
        """Frames in one full cycle of alive counter and multiplexer values (lcm of both)."""
        return math.lcm(len(self._mux_values) or 1, self._modulus or 1)

    def cycle_frames(self, t: float, timestamp: float) -> list[can.Message]:
        """The frames a cyclic send task repeats: counter 0, 1, … and every multiplexer value.

        Frame ``i`` carries counter ``i mod modulus`` and multiplexer value ``i mod n``, with the
        values of now. Replacing a task's frames by a fresh list of the same length keeps the
        kernel's place in it, so the counter on the bus runs on without a jump (the BCM keeps its
        current frame index unless told TX_RESET_MULTI_IDX). Signal faults apply; frame faults are
        for the Python scheduler (a message with one is never handed to the kernel).
        """
        saved = self._mux_pos, self._protector.counter
        self._mux_pos, self._protector.counter = 0, 0
        try:
            return [self._frame(t, timestamp) for _ in range(self.kernel_cycle_length)]
        finally:
            self._mux_pos, self._protector.counter = saved

    def _frame(self, t: float, timestamp: float, data: bytes | None = None) -> Frame:
        if data is None:
            mux = self._mux_values[self._mux_pos] if self._mux_values else None
            if self._mux_values:
                self._mux_pos = (self._mux_pos + 1) % len(self._mux_values)
            data = self.encode(t, mux)
        return Frame(
            timestamp=timestamp,
            arbitration_id=self._frame_id,
            is_extended_id=self._is_extended,
            is_fd=self._is_fd,
            bitrate_switch=self._is_fd,
            dlc=len(data),
            data=data,
            channel=self.channel,
            check=False,
        )

    @property
    def has_frame_faults(self) -> bool:
        return bool(self._frame_faults)

    def _transmit(self, t: float, timestamp: float) -> None:
        mux = self._mux_values[self._mux_pos] if self._mux_values else None
        if self._mux_values:
            self._mux_pos = (self._mux_pos + 1) % len(self._mux_values)
        data = self.encode(t, mux)
        dlc = len(data)
        for fault in self._frame_faults:
            if not fault.active(t):
                continue
            kind = fault.kind
            if kind == "counter_skip":
                modulus = counter_modulus(self.message) or 1
                self._protector.counter = (self._protector.counter + int(fault.value)) % modulus
            elif kind == "bad_crc" and self._crc_index is not None:
                mutable = bytearray(data)
                mutable[self._crc_index] ^= 0xFF
                data = bytes(mutable)
            elif kind == "dlc":
                dlc = int(fault.value)
                data = data[:dlc] + bytes(max(0, dlc - len(data)))
            elif kind == "error_frames":
                self.send(error_frame(timestamp, self.channel))
        frame = Frame(
            timestamp=timestamp,
            arbitration_id=self._frame_id,
            is_extended_id=self._is_extended,
            is_fd=self._is_fd,
            bitrate_switch=self._is_fd,
            dlc=dlc,
            data=data,
            channel=self.channel,
            check=False,
        )
        self.send(frame)
        self.sent += 1

    # -- event messages ---------------------------------------------------------------------------

    def changed(self) -> bool:
        """For event messages: have the values changed since the last transmission was decided?"""
        values = self.model_values(None)
        if values == self._last_event_values:  # cheap exact test first: called every step
            return False
        self._last_event_values = values
        key = self._raw_key(values)
        if key == self._last_event_key:
            return False
        self._last_event_key = key
        return True


def error_frame(timestamp: float, channel: str | None) -> can.Message:
    """An error frame as python-can represents one (``is_error_frame``, no data)."""
    return Frame(
        timestamp=timestamp,
        arbitration_id=0,
        is_error_frame=True,
        dlc=0,
        data=b"",
        channel=channel,
        check=False,
    )


__all__ = ["COUNTER_SIGNAL", "Frame", "FrameSink", "Source", "Transmitter", "error_frame"]
