"""The restbus: every message an ECU sends, from the DBC, at its cycle time or on change.

One :class:`Transmitter` per message. The DBC decides everything about a frame: id, length,
CAN FD, extended id, cycle time (``GenMsgCycleTime``), send type (``GenMsgSendType``; ``Event``
messages go out on change, no closer than ``GenMsgDelayTime``), multiplexer values (a multiplexed
message sends one multiplexer value per frame, in turn). The ECU model only supplies signal
values by name; cantools encodes them (through :class:`bench.e2e.Protector`, which fills the alive
counter and the CRC8).

Why the payload cache: most signals hold still between frames (a parked car; the identity pages;
a pack at rest), so the transmitter first converts the values to the raw integers the DBC would
carry and re-encodes through cantools only when those change. The cached payload is the exact
bytes cantools produced for the same raw values, so the cache cannot change the frame stream.
Protected messages carry a fresh counter in every frame and are always encoded by the Protector.

Frame and signal faults (:mod:`virtual_bus.faults`) are applied here, as the last step before the
bus, so each produces only its own symptom.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import can
from cantools.database.can import Message

from bench.e2e import COUNTER_SIGNAL, Protector, counter_modulus, crc_byte_index

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
        return {c.name: raw[c.name] for c in self._codecs if c.name in raw}

    def values(self, t: float, mux: int | None) -> dict[str, float]:
        """The values of this frame: signal faults applied, clamped to the DBC ranges."""
        values = self.model_values(mux)
        for index, fault in enumerate(self.faults):
            name = fault.signal
            if name is None or name not in values:
                continue
            if not fault.active(t):
                self._stuck.pop(index, None)
            elif fault.kind == "stuck":
                values[name] = self._stuck.setdefault(index, values[name])
            elif fault.kind == "offset":
                values[name] += float(fault.value)
            elif fault.kind == "noise":
                values[name] += self.rng.gauss(0.0, float(fault.value))
        for codec in self._codecs:
            value = values.get(codec.name)
            if value is not None:
                # A real ECU saturates; cantools would otherwise wrap the raw bits.
                values[codec.name] = min(codec.maximum, max(codec.minimum, value))
        if self._mux is not None:
            values[self._mux] = mux
        return values

    def _raw_key(self, values: Mapping[str, float]) -> tuple[int, ...]:
        """The raw integers the DBC would carry: equal keys give byte-identical payloads."""
        return tuple(
            round((values[c.name] - c.offset) / c.scale) if c.name in values else -(2**62)
            for c in self._codecs
        )

    def encode(self, t: float, mux: int | None) -> bytes:
        values = self.values(t, mux)
        if self._protected:
            return self._protector.encode(values)
        key = self._raw_key(values)
        cached = self._cache.get(mux)
        if cached is not None and cached[0] == key:
            return cached[1]
        payload = self._protector.encode(values)
        self._cache[mux] = (key, payload)
        return payload

    # -- transmission -----------------------------------------------------------------------------

    def fire(self, due_us: int, t: float, timestamp: float) -> int | None:
        """Send the frame due at ``due_us``; return when the next one is due (None: on change)."""
        period = self.period_us
        stretched = period
        stopped = False
        for fault in self.faults:
            if fault.signal is None and fault.active(t):
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

    def _transmit(self, t: float, timestamp: float) -> None:
        mux = self._mux_values[self._mux_pos] if self._mux_values else None
        if self._mux_values:
            self._mux_pos = (self._mux_pos + 1) % len(self._mux_values)
        data = self.encode(t, mux)
        dlc = len(data)
        for fault in self.faults:
            if fault.signal is not None or not fault.active(t):
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
        frame = can.Message(
            timestamp=timestamp,
            arbitration_id=self.message.frame_id,
            is_extended_id=self.message.is_extended_frame,
            is_fd=self.message.is_fd,
            bitrate_switch=self.message.is_fd,
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
    return can.Message(
        timestamp=timestamp,
        arbitration_id=0,
        is_error_frame=True,
        dlc=0,
        data=b"",
        channel=channel,
        check=False,
    )


__all__ = ["COUNTER_SIGNAL", "FrameSink", "Source", "Transmitter", "error_frame"]
