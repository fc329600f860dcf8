"""End-to-end protection of safety-relevant messages: alive counter and CRC8.

Convention of the shipped DBCs (see the comments in ``dbc/*.dbc``): a protected message has a
signal named ``AliveCounter`` (incremented by one per transmission, wrapping at its range) and an
8-bit, byte-aligned signal named ``CRC``. The CRC is CRC8 SAE J1850 — polynomial 0x1D, initial
value 0xFF, final XOR 0xFF, no reflection (the AUTOSAR ``Crc_CalculateCRC8``) — over every payload
byte except the CRC byte itself, in byte order. Check value: ``crc8_j1850(b"123456789") == 0x4B``.

There is no maintained PyPI package for this one polynomial with a column (numpy) form, which the
`crc` check needs; a 256-entry table is all it takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from cantools.database.can import Message

COUNTER_SIGNAL = "AliveCounter"
CRC_SIGNAL = "CRC"
_POLY = 0x1D


def _make_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[byte] = crc
    return table


CRC8_TABLE = _make_table()
_TABLE_LIST = CRC8_TABLE.tolist()


def crc8_j1850(data: bytes | bytearray) -> int:
    """CRC8 SAE J1850 of ``data``."""
    crc = 0xFF
    for byte in data:
        crc = _TABLE_LIST[crc ^ byte]
    return crc ^ 0xFF


def crc8_j1850_columns(payloads: np.ndarray) -> np.ndarray:
    """CRC8 SAE J1850 of every row of a 2-D uint8 array (one frame per row), column by column."""
    payloads = np.asarray(payloads, dtype=np.uint8)
    crc = np.full(payloads.shape[0], 0xFF, dtype=np.uint8)
    for column in range(payloads.shape[1]):
        crc = CRC8_TABLE[crc ^ payloads[:, column]]
    return crc ^ np.uint8(0xFF)


def crc_byte_index(message: Message) -> int | None:
    """Byte position of the message's ``CRC`` signal; None without one or if it is not a byte."""
    try:
        signal = message.get_signal_by_name(CRC_SIGNAL)
    except KeyError:
        return None
    if signal.length != 8:
        return None
    # Intel: start bit is the LSB; Motorola (DBC numbering): start bit is the MSB. An aligned byte
    # has its start bit at 8*k (Intel) or 8*k + 7 (Motorola); both give byte k.
    if signal.byte_order == "little_endian" and signal.start % 8 == 0:
        return signal.start // 8
    if signal.byte_order == "big_endian" and signal.start % 8 == 7:
        return signal.start // 8
    return None


def counter_modulus(message: Message) -> int | None:
    """How many values the message's alive counter takes (16 for 4 bits), or None without one."""
    try:
        signal = message.get_signal_by_name(COUNTER_SIGNAL)
    except KeyError:
        return None
    return 1 << signal.length


def seal(message: Message, payload: bytes | bytearray) -> bytes:
    """Return ``payload`` with the CRC byte filled in (unchanged if the message has no CRC)."""
    index = crc_byte_index(message)
    if index is None:
        return bytes(payload)
    data = bytearray(payload)
    data[index] = crc8_j1850(data[:index] + data[index + 1 :])
    return bytes(data)


PAYLOAD_CACHE_SIZE = 256
"""Payloads a :class:`Protector` keeps (then it starts over): 16 counter values x a few commands."""


@dataclass
class Protector:
    """Encodes one message again and again, counting its alive counter and sealing its CRC.

    Used by everything that transmits: the runner's stimuli and the virtual vehicle's ECUs. Fault
    injection moves :attr:`counter` itself (a skipped counter) or edits the sealed payload.

    Why a payload cache: the bench sends the same command every 10 ms for minutes (VCU_Command
    during a warm-up), and cantools' encoding was most of the runner's cost per stimulus frame.
    A payload is a pure function of the counter and the values given, so it is kept under exactly
    those — each value with its type, so ``1``, ``1.0`` and ``True`` are separate entries — and
    handed out again. Messages with an IEEE float signal are never cached: ``-0.0 == 0.0`` but
    their bits differ. Unhashable values skip the cache.
    """

    message: Message
    counter: int = 0
    _modulus: int | None = field(init=False, default=None)
    _defaults: dict[str, float] = field(init=False, default_factory=dict)
    _crc_index: int | None = field(init=False, default=None)
    _cacheable: bool = field(init=False, default=False)
    _cache: dict[tuple, bytes] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._modulus = counter_modulus(self.message)
        # Looked up once: cantools finds a signal by name with a scan, and every frame needs it.
        self._crc_index = crc_byte_index(self.message)
        # cantools needs every signal; unspecified ones take the DBC's GenSigStartValue, else 0.
        self._defaults = {
            s.name: (s.initial if s.initial is not None else 0) for s in self.message.signals
        }
        self._cacheable = not any(s.is_float for s in self.message.signals)

    def encode(self, values: Mapping[str, float | int | str], *, advance: bool = True) -> bytes:
        """The payload with ``values`` (others at their DBC start values), the alive counter at
        :attr:`counter` (then counted on unless ``advance`` is False) and the CRC sealed."""
        counter = self.counter
        if self._modulus is not None and advance:
            self.counter = (counter + 1) % self._modulus
        if not self._cacheable:
            return self._encode(values, counter)
        key = (counter, *((name, type(v), v) for name, v in values.items()))
        try:
            cached = self._cache.get(key)
        except TypeError:  # an unhashable value
            return self._encode(values, counter)
        if cached is None:
            cached = self._encode(values, counter)
            if len(self._cache) >= PAYLOAD_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = cached
        return cached

    def _encode(self, values: Mapping[str, float | int | str], counter: int) -> bytes:
        signals = {**self._defaults, **values}
        if self._modulus is not None:
            signals[COUNTER_SIGNAL] = counter
        index = self._crc_index
        if index is not None:
            signals[CRC_SIGNAL] = 0
        data = bytes(self.message.encode(signals, scaling=True, strict=False, padding=False))
        if index is None:
            return data
        # seal(), with the index found once
        crc = crc8_j1850(data[:index] + data[index + 1 :])
        return data[:index] + bytes((crc,)) + data[index + 1 :]
