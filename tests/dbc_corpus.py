"""Compare bench's DBC loading and decoding with cantools on real DBC files (helpers).

For one file: cantools ``load_file(strict=False)`` is the reference. A file cantools refuses must
be refused by bench with one line (InputError, exit 2). A file cantools loads must load in bench;
then every message is decoded on seeded random payloads — for every multiplexer value cantools
knows, payloads with the switches set to reach it, plus fully random ones (unknown values) — and
every signal value is compared with ``Message.decode(decode_choices=False, scaling=True)``.
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import cantools
import pyarrow as pa
from cantools.database.can import Message, Signal

from bench.dbc import DbcSet
from bench.dbc_layout import first_network_bit
from bench.decode import decode_frames
from bench.errors import InputError

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dbc"


def corpus_files() -> list[Path]:
    return sorted(CORPUS.rglob("*.dbc")) if CORPUS.is_dir() else []


@dataclass
class Outcome:
    loaded: bool
    values: int = 0  # signal values compared equal with cantools
    approx: int = 0  # of which documented float64-for-huge-int values (relative 1e-15)
    per_signal: int = 0  # of which against a one-signal cantools message (cantools cannot unpack)


def check_file(path: Path, per_branch: int, seed: int = 12) -> Outcome:
    try:
        reference = cantools.database.load_file(str(path), database_format="dbc", strict=False)
    except Exception:
        try:
            DbcSet.load([path])
        except InputError as exc:
            text = str(exc)
            assert str(path) in text and "\n" not in text, text
            return Outcome(loaded=False)
        raise AssertionError(f"{path}: cantools refuses it, bench loads it") from None
    dbcs = DbcSet.load([path])
    rng = random.Random(f"{seed}:{path.name}")
    payloads = {m.name: _payloads(m, rng, per_branch) for m in dbcs.messages}
    rows = [(m, p) for m in dbcs.messages for p in payloads[m.name]]
    table = pa.table(
        {
            "timestamp": pa.array([float(i) for i in range(len(rows))]),
            "arbitration_id": pa.array([m.frame_id for m, _ in rows], pa.uint32()),
            "is_extended_id": [m.is_extended_frame for m, _ in rows],
            "data": pa.array([p for _, p in rows], pa.binary()),
        }
    )
    decoded = decode_frames(table, dbcs)
    outcome = Outcome(loaded=True)
    for message in dbcs.messages:
        theirs = reference.get_message_by_name(message.name)
        timed = [(float(i), p) for i, (m, p) in enumerate(rows) if m.name == message.name]
        compare_message(theirs, timed, decoded, outcome)
    return outcome


def compare_message(
    message: Message,
    payloads: list[tuple[float, bytes]],
    decoded,
    outcome: Outcome,
    *,
    require_hits: bool = True,
) -> None:
    """``payloads``: (timestamp, payload) of the message's frames; rows are found by timestamp
    (frames bench cannot decode have no row)."""
    stats = decoded.stats.messages[message.name]
    table = {row["timestamp"]: row for row in decoded.messages[message.name].to_pylist()}
    assert stats.frames == len(payloads), message.name
    mux_unknown = undecodable = 0
    hits: set[tuple[str, int]] = set()
    for timestamp, payload in payloads:
        row = table.get(timestamp)
        try:
            expected = message.decode(payload, decode_choices=False, scaling=True)
        except cantools.database.DecodeError as exc:
            if "multiplexer" in str(exc):
                mux_unknown += 1
                assert row is not None, f"{message.name}: {payload.hex()}: unknown mux, no row"
                continue
            if row is None:  # bench cannot decode it either: counted, and a reason given
                assert message.name in decoded.stats.undecoded, message.name
                undecodable += 1
                continue
            expected, unknown = _per_signal(message, payload)
            mux_unknown += unknown
            outcome.per_signal += len(expected)
        assert row is not None, f"{message.name}: cantools decodes {payload.hex()}, bench not"
        for switch in _switches(message):
            if switch in expected:
                hits.add((switch, int(expected[switch])))
        for signal in message.signals:
            where = f"{message.name}.{signal.name} payload={payload.hex()}"
            if signal.name in expected:
                outcome.approx += _assert_same(row[signal.name], expected[signal.name], where)
                outcome.values += 1
            else:
                assert row[signal.name] is None, (
                    f"{where}: ours {row[signal.name]!r}, cantools none"
                )
    assert (stats.mux_unknown, stats.undecodable) == (mux_unknown, undecodable), message.name
    for switch, values in _known_values(message).items():
        if stats.undecodable or not require_hits:
            break  # some branch cannot be decoded: its values are not seen through cantools
        missing = {(switch, v) for v in values} - hits
        assert not missing, f"{message.name}: multiplexer values never hit: {sorted(missing)[:5]}"


def _per_signal(message: Message, payload: bytes) -> tuple[dict, bool]:
    """cantools on each signal alone, where it cannot unpack the message whole (same-order
    signals overlap), with cantools' multiplexing tree choosing which signals a frame carries;
    and whether a multiplexer value has no branch (cantools would raise on it)."""
    alone = _alone(message, payload)
    carried: dict = {}
    unknown = False

    def walk(tree: list) -> None:
        nonlocal unknown
        for node in tree:
            name = node if isinstance(node, str) else next(iter(node))
            assert name in alone, f"{message.name}: bench kept a frame carrying {name}"
            carried[name] = alone[name]
            if isinstance(node, str):
                continue
            (switch, children), *_ = node.items()
            value = int(alone[switch])
            if value in children:
                walk(children[value])
            else:
                unknown = True

    walk(message.signal_tree)
    return carried, unknown


def _alone(message: Message, payload: bytes) -> dict:
    values = {}
    for signal in message.signals:
        alone = Signal(
            signal.name,
            signal.start,
            signal.length,
            signal.byte_order,
            signal.is_signed,
            conversion=signal.conversion,
        )
        single = Message(
            message.frame_id,
            "Alone",
            message.length,
            [alone],
            is_extended_frame=message.is_extended_frame,
            strict=False,
        )
        # outside the message or an odd float: a frame carrying it has no row in bench
        with contextlib.suppress(cantools.database.DecodeError):
            values.update(single.decode(payload, decode_choices=False))
    return values


def _assert_same(ours, theirs, where: str) -> int:
    """Equal values of equal kind (int vs float, NaN is NaN); 1 for a documented approximation."""
    if isinstance(theirs, float) and math.isnan(theirs):
        assert isinstance(ours, float) and math.isnan(ours), where
        return 0
    if isinstance(ours, Decimal):
        assert isinstance(theirs, int) and ours == theirs, f"{where}: {ours!r} != {theirs!r}"
        return 0
    if isinstance(theirs, int) and isinstance(ours, float):
        # documented in bench/decode.py: an integer-scaled range beyond 64 bits is float64
        assert math.isclose(ours, theirs, rel_tol=1e-15), where
        return 1
    assert ours == theirs, f"{where}: ours {ours!r} != cantools {theirs!r}"
    assert isinstance(ours, int) == isinstance(theirs, int), f"{where}: {ours!r} vs {theirs!r}"
    return 0


# -- payloads -----------------------------------------------------------------------------------


def _payloads(message: Message, rng: random.Random, per_branch: int) -> list[bytes]:
    """Random payloads: ``per_branch`` for every multiplexer path cantools knows, and as many
    with every bit random (those also give multiplexer values the DBC does not list)."""
    by_name = {s.name: s for s in message.signals}
    out = []
    for assignment in [*_assignments(message.signal_tree), *[{}] * 1]:
        for _ in range(per_branch):
            payload = bytearray(rng.getrandbits(8) for _ in range(message.length))
            for switch, value in assignment.items():
                _put(payload, by_name[switch], _raw_of(by_name[switch], value))
            out.append(bytes(payload))
    return out


def _assignments(tree: list) -> list[dict[str, int]]:
    """Switch settings such that every (switch, value) branch of the tree is reached once."""
    levels = []
    for node in tree:
        if isinstance(node, dict):
            (switch, children), *_ = node.items()
            options = []
            for value, subtree in sorted(children.items()):
                options += [{switch: value, **sub} for sub in _assignments(subtree) or [{}]]
            levels.append(options)
    if not levels:
        return []
    # independent switches at one level: walk them side by side
    width = max(len(options) for options in levels)
    return [
        {k: v for options in levels for k, v in options[i % len(options)].items()}
        for i in range(width)
    ]


def _raw_of(signal: Signal, value: int) -> int:
    raw = round((value - signal.conversion.offset) / signal.conversion.scale)
    return raw & ((1 << signal.length) - 1)


def _put(payload: bytearray, signal: Signal, raw: int) -> None:
    """Write a raw value into its bits (a slow, plain reference independent of the decoder)."""
    for k in range(signal.length):
        if signal.byte_order == "little_endian":
            bit, value = signal.start + k, (raw >> k) & 1
            byte, shift = bit // 8, bit % 8
        else:
            network = first_network_bit(signal) + k
            value = (raw >> (signal.length - 1 - k)) & 1
            byte, shift = network // 8, 7 - network % 8
        payload[byte] = (payload[byte] & ~(1 << shift)) | (value << shift)


def _switches(message: Message) -> list[str]:
    return list(_known_values(message))


def _known_values(message: Message) -> dict[str, set[int]]:
    known: dict[str, set[int]] = {}

    def walk(tree: list) -> None:
        for node in tree:
            if isinstance(node, dict):
                (switch, children), *_ = node.items()
                known.setdefault(switch, set()).update(children)
                for subtree in children.values():
                    walk(subtree)

    walk(message.signal_tree)
    return known
