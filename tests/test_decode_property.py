"""Property test: the vectorized decoder equals cantools on random signal layouts and payloads.

Layouts: random message length (classic and CAN FD), Intel and Motorola signals of 1..64 bits at
random free positions, signed or not, IEEE float signals, integer and float scales and offsets
(as Python ints and floats, because cantools' result type depends on them), value tables, and
multiplexers, including a nested (extended) multiplexer and a switch not declared ``M``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cantools
import pyarrow as pa
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import BaseConversion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.dbc import DbcSet
from bench.decode import decode_frames

LENGTHS = [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64]
SCALES = [1, 2, -3, 10, 1.0, 0.1, 0.5, 0.001, -0.25, 3.0, 1e-7]
OFFSETS = [0, -40, 1000, 0.0, 0.5, -273.15, 1e6]


def network_bits(byte_order: str, start: int, length: int) -> set[int]:
    """Bits a field occupies, as network bit numbers (byte * 8 + 7 - bit), for overlap checks."""
    if byte_order == "little_endian":
        return {8 * (i // 8) + 7 - i % 8 for i in range(start, start + length)}
    first = 8 * (start // 8) + 7 - start % 8
    return set(range(first, first + length))


def fits(byte_order: str, start: int, length: int, size: int) -> bool:
    if byte_order == "little_endian":
        return start + length <= size * 8
    return 8 * (start // 8) + 7 - start % 8 + length <= size * 8


@st.composite
def signal_layouts(draw) -> Message:
    size = draw(st.sampled_from(LENGTHS))
    used: set[int] = set()
    signals: list[Signal] = []

    def place(name: str, length: int, byte_order: str) -> int | None:
        starts = [
            s
            for s in range(size * 8)
            if fits(byte_order, s, length, size) and not network_bits(byte_order, s, length) & used
        ]
        if not starts:
            return None
        start = draw(st.sampled_from(starts))
        used.update(network_bits(byte_order, start, length))
        return start

    mux_levels = draw(st.integers(0, 2))  # 0: plain, 1: multiplexed, 2: nested multiplexer
    selectors: list[tuple[str, list[int]]] = []
    for level in range(mux_levels):
        length = draw(st.integers(1, 4))
        order = draw(st.sampled_from(["little_endian", "big_endian"]))
        start = place(f"Mux{level}", length, order)
        if start is None:
            break
        values = list(range(1 << length))
        parent = selectors[-1] if selectors else None
        signals.append(
            Signal(
                f"Mux{level}",
                start,
                length,
                order,
                is_multiplexer=True,
                multiplexer_signal=parent[0] if parent else None,
                multiplexer_ids=draw(st.lists(st.sampled_from(parent[1]), min_size=1, unique=True))
                if parent
                else None,
            )
        )
        selectors.append((f"Mux{level}", values))
    if draw(st.integers(0, 4)) == 0:
        # a switch not declared M (the DBC says `m1` but the switch has no `M`): cantools never
        # decodes the signals it carries; bench must agree
        order = draw(st.sampled_from(["little_endian", "big_endian"]))
        start = place("Fake", 2, order)
        if start is not None:
            signals.append(Signal("Fake", start, 2, order))
            selectors.append(("Fake", [0, 1, 2, 3]))

    for index in range(draw(st.integers(1, 6))):
        is_float = draw(st.booleans().map(lambda b: b and draw(st.integers(0, 4)) == 0))
        length = draw(st.sampled_from([32, 64])) if is_float else draw(st.integers(1, 64))
        order = draw(st.sampled_from(["little_endian", "big_endian"]))
        start = place(f"S{index}", length, order)
        if start is None:
            continue
        scale, offset = draw(st.sampled_from(SCALES)), draw(st.sampled_from(OFFSETS))
        choices = {0: "ZERO", 1: "ONE"} if draw(st.integers(0, 5)) == 0 else None
        mux_name, mux_ids = None, None
        if selectors and draw(st.booleans()):
            mux_name, values = draw(st.sampled_from(selectors))
            mux_ids = draw(st.lists(st.sampled_from(values), min_size=1, unique=True))
        signals.append(
            Signal(
                f"S{index}",
                start,
                length,
                order,
                is_signed=draw(st.booleans()) and not is_float,
                conversion=BaseConversion.factory(scale, offset, choices, is_float),
                multiplexer_signal=mux_name,
                multiplexer_ids=mux_ids,
            )
        )
    return Message(0x123, "Random", size, signals, is_fd=size > 8, strict=True)


def assert_same(ours, theirs, where: str) -> None:
    if isinstance(theirs, float) and math.isnan(theirs):
        assert isinstance(ours, float) and math.isnan(ours), where
    elif isinstance(theirs, int) and isinstance(ours, float):
        # documented: an integer-scaled range beyond 64 bits comes back as float64
        assert math.isclose(ours, theirs, rel_tol=1e-15), where
    else:
        assert ours == theirs, f"{where}: ours {ours!r} != cantools {theirs!r}"
        assert isinstance(ours, int) == isinstance(theirs, int), where


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=signal_layouts(), data=st.data())
def test_decoder_equals_cantools(message: Message, data) -> None:
    dbcs = DbcSet([(Path("random.dbc"), Database(messages=[message]))])
    payloads = data.draw(
        st.lists(
            st.binary(min_size=message.length, max_size=message.length + 4)
            | st.binary(max_size=message.length),  # short frames
            min_size=1,
            max_size=20,
        )
    )
    table = pa.table(
        {
            "timestamp": pa.array([float(i) for i in range(len(payloads))]),
            "arbitration_id": pa.array([message.frame_id] * len(payloads), pa.uint32()),
            "is_extended_id": [False] * len(payloads),
            "data": pa.array(payloads, pa.binary()),
        }
    )
    decoded = decode_frames(table, dbcs)
    rows = decoded.messages["Random"].to_pylist()
    stats = decoded.stats.messages["Random"]
    position, short, mux_unknown = 0, 0, 0
    for payload in payloads:
        if len(payload) < message.length:
            short += 1
            continue
        got = rows[position]
        position += 1
        try:
            expected = message.decode(
                payload, decode_choices=False, scaling=True, allow_truncated=False
            )
        except cantools.database.DecodeError:
            mux_unknown += 1  # a multiplexer value without signals; see test_decode.py
            continue
        for signal in message.signals:
            where = f"{signal} payload={payload.hex()}"
            if signal.name in expected:
                assert_same(got[signal.name], expected[signal.name], where)
            else:
                assert got[signal.name] is None, where
    assert position == len(rows)
    assert (stats.frames, stats.short, stats.mux_unknown) == (len(payloads), short, mux_unknown)
