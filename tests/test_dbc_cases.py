"""The DBC cases of ../shared/cases/dbc (copied to tests/data/dbc) and their kinds.

Each file stands for a kind of DBC that real tools load and bench used to refuse or misread:
wide (> 64-bit) signals, a multiplexed signal whose switch is not declared ``M``, a float signal
of a length no IEEE type has, overlapping signals. The right answer is cantools 45
``load_file(strict=False)`` + ``decode_message`` (the cases' README).
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import cantools
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import BaseConversion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.dbc import DbcSet
from bench.dbc_layout import strict_problems
from bench.decode import decode_frames
from bench.errors import InputError
from tests.conftest import DBC_DIR
from tests.dbc_corpus import Outcome, check_file, compare_message, corpus_files

CASES = Path(__file__).parent / "data" / "dbc"
WIDE = CASES / "wide-signal-72-bit.dbc"
MUX = CASES / "mux-signal-without-switch.dbc"
FLOAT8 = CASES / "float-signal-8-bit.dbc"
OVERLAP = CASES / "overlapping-signals.dbc"


def frames(*rows: tuple[int, str], extended: bool = False) -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array([0.01 * i for i in range(len(rows))]),
            "arbitration_id": pa.array([r[0] for r in rows], pa.uint32()),
            "is_extended_id": [extended] * len(rows),
            "data": pa.array([bytes.fromhex(r[1]) for r in rows], pa.binary()),
        }
    )


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def warning_lines(dbcs: DbcSet) -> list[str]:
    return [str(w) for w in dbcs.warnings]


# -- wide signals ---------------------------------------------------------------------------------


def test_wide_signal_decodes_exactly_as_cantools():
    dbcs = DbcSet.load([WIDE])
    payload = "0102030405060708090a0b0c0d0e0f10"
    table = decode_frames(frames((0x64, payload)), dbcs).messages["Wide"]
    assert table.schema.field("Wide72").type == pa.decimal128(38, 0)
    row = table.to_pylist()[0]
    assert row["Wide72"] == 166599134359138271745 and row["Tail"] == 10  # the README's answer
    reference = cantools.database.load_file(str(WIDE), strict=False).get_message_by_name("Wide")
    assert reference.decode(bytes.fromhex(payload), decode_choices=False) == {
        "Wide72": int(row["Wide72"]),
        "Tail": row["Tail"],
    }
    (line,) = warning_lines(dbcs)
    assert "wide-signal-72-bit.dbc: message Wide: signal Wide72 has 72 bits" in line


@st.composite
def wide_messages(draw) -> Message:
    """A message with one signal of 65..128 bits (and a plain byte), maybe multiplexed."""
    length = draw(st.sampled_from([12, 16, 20, 24, 32]))
    bits = draw(st.integers(65, min(128, 8 * length - 16)))
    order = draw(st.sampled_from(["little_endian", "big_endian"]))
    # bytes 0..1 hold the switch and a plain signal; the wide one starts at byte 2
    first = 16 + draw(st.integers(0, 8 * length - 16 - bits))
    start = first if order == "little_endian" else 8 * (first // 8) + 7 - first % 8
    scale = draw(st.sampled_from([1, 3, -2, 0.5, 1e-3]))
    offset = draw(st.sampled_from([0, -7, 2.5]))
    multiplexed = draw(st.booleans())
    signals = [
        Signal("Plain", 8, 8, "little_endian"),
        Signal(
            "Wide",
            start,
            bits,
            order,
            is_signed=draw(st.booleans()),
            conversion=BaseConversion.factory(scale, offset),
            multiplexer_signal="Mux" if multiplexed else None,
            multiplexer_ids=[1] if multiplexed else None,
        ),
    ]
    if multiplexed:
        signals.insert(0, Signal("Mux", 0, 2, "little_endian", is_multiplexer=True))
    return Message(0x123, "W", length, signals, is_fd=True, strict=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=wide_messages(), data=st.data())
def test_wide_signals_equal_cantools(message: Message, data) -> None:
    dbcs = DbcSet([(Path("wide.dbc"), Database(messages=[message]))])
    payloads = data.draw(
        st.lists(st.binary(min_size=message.length, max_size=message.length), min_size=1)
    )
    table = frames(*[(0x123, p.hex()) for p in payloads])
    decoded = decode_frames(table, dbcs)
    rows = decoded.messages["W"].to_pylist()
    unknown = 0
    for payload, row in zip(payloads, rows, strict=True):
        try:
            expected = message.decode(payload, decode_choices=False)
        except cantools.database.DecodeError:
            unknown += 1  # Mux = 0, 2, 3: no signals for those values
            continue
        for name in ("Plain", "Wide", "Mux"):
            ours = row.get(name)
            if name not in expected:
                assert ours is None, name
            elif isinstance(ours, Decimal):
                assert isinstance(expected[name], int) and ours == expected[name]
            else:
                assert ours == expected[name] and type(ours) is type(expected[name]), name
    assert decoded.stats.messages["W"].mux_unknown == unknown


def test_wider_than_any_decimal_is_one_undecodable_message():
    huge = Signal("Huge", 0, 300, "little_endian", is_signed=False)
    other = Message(0x10, "Fine", 8, [Signal("A", 0, 8, "little_endian")])
    message = Message(0x20, "Huge", 64, [huge], is_fd=True)
    dbcs = DbcSet([(Path("huge.dbc"), Database(messages=[message, other]))])
    assert any("Huge" in line and "76 digits" in line for line in warning_lines(dbcs))
    decoded = decode_frames(frames((0x20, "ff" * 64), (0x10, "05" * 8)), dbcs)
    assert decoded.stats.messages["Huge"].undecodable == 1
    assert decoded.messages["Fine"].column("A").to_pylist() == [5]


# -- multiplexing ---------------------------------------------------------------------------------


def test_switch_not_declared_m_follows_cantools_with_a_warning():
    dbcs = DbcSet.load([MUX])
    (line,) = warning_lines(dbcs)
    assert "mux-signal-without-switch.dbc: message Msg: signal Value" in line
    assert "not declared a multiplexer switch (M)" in line
    reference = cantools.database.load_file(str(MUX), strict=False).get_message_by_name("Msg")
    payloads = ["5b62000000000000", "1b00000000000000", "9b00000000000000", "db00000000000000"]
    decoded = decode_frames(frames(*[(100, p) for p in payloads]), dbcs)
    rows = decoded.messages["Msg"].to_pylist()
    for payload, row in zip(payloads, rows, strict=True):
        expected = reference.decode(bytes.fromhex(payload), decode_choices=False)
        assert {k: v for k, v in row.items() if v is not None and k != "timestamp"} == expected
    assert rows[0] == {"timestamp": 0.0, "Sel": 1, "Value": None}  # cantools: only Sel = 1
    assert decoded.stats.messages["Msg"].mux_unknown == 0  # no multiplexer, no unknown value


def test_multiplexer_values_named_only_in_val_are_known():
    text = """VERSION ""
BO_ 100 M: 2 X
 SG_ Sw M : 0|3@1+ (1,0) [0|7] "" X
 SG_ A m1 : 8|8@1+ (1,0) [0|255] "" X
VAL_ 100 Sw 1 "ONE" 4 "FOUR_NO_SIGNALS" ;
"""
    database = cantools.database.load_string(text, database_format="dbc", strict=False)
    dbcs = DbcSet([(Path("val.dbc"), database)])
    decoded = decode_frames(frames((100, "0107"), (100, "0407"), (100, "0507")), dbcs)
    assert decoded.messages["M"].to_pylist() == [
        {"timestamp": 0.0, "Sw": 1, "A": 7},
        {"timestamp": 0.01, "Sw": 4, "A": None},
        {"timestamp": 0.02, "Sw": 5, "A": None},
    ]
    assert decoded.stats.messages["M"].mux_unknown == 1  # 5 only: 4 is named in VAL_


def test_marked_signal_with_several_switches_is_plain_with_a_warning(tmp_path):
    """Two ``M`` switches and no SG_MUL_VAL_: cantools decodes ``m1`` signals in every frame."""
    path = tmp_path / "two-switches.dbc"
    path.write_text(
        """VERSION ""
BO_ 2147484672 M: 4 X
 SG_ SwA M : 0|4@1+ (1,0) [0|7] "" X
 SG_ SwB M : 4|4@1+ (1,0) [0|7] "" X
 SG_ A m1 : 8|8@1+ (1,0) [0|255] "" X
 SG_ Plain : 16|8@1+ (1,0) [0|255] "" X
"""
    )
    dbcs = DbcSet.load([path])
    (line,) = warning_lines(dbcs)
    assert "message M: signal A is marked multiplexed but the message has 2 switches" in line
    decoded = decode_frames(frames((0x400, "2105060000"[:8]), extended=True), dbcs)
    reference = cantools.database.load_file(str(path), strict=False).get_message_by_name("M")
    row = decoded.messages["M"].to_pylist()[0]
    del row["timestamp"]
    assert row == reference.decode(bytes.fromhex("21050600"), decode_choices=False)


# -- undecodable messages -------------------------------------------------------------------------


def test_float_signal_of_8_bits_affects_only_its_message():
    dbcs = DbcSet.load([FLOAT8])
    (line,) = warning_lines(dbcs)
    assert "message Odd: cannot be decoded: signal F8 is an IEEE float of 8 bits" in line
    decoded = decode_frames(frames((100, "05" * 8), (200, "00" * 8), (200, "01" * 8)), dbcs)
    assert decoded.messages["Good"].column("G").to_pylist() == [5]
    assert decoded.messages["Odd"].num_rows == 0
    assert decoded.stats.messages["Odd"].undecodable == 2
    assert "F8" in decoded.stats.undecoded["Odd"]
    # and with no frame of it in the log, everything else decodes too
    alone = decode_frames(frames((100, "07" * 8)), dbcs)
    assert alone.messages["Good"].column("G").to_pylist() == [7]


def test_undecodable_signal_in_one_branch_drops_only_the_frames_carrying_it(tmp_path):
    """cantools raises only on frames whose switch selects the 8-bit float: so does bench."""
    path = tmp_path / "branch.dbc"
    path.write_text(
        """VERSION ""
BO_ 100 M: 8 X
 SG_ Sel M : 0|2@1+ (1,0) [0|3] "" X
 SG_ A m1 : 8|8@1+ (1,0) [0|255] "" X
 SG_ F8 m2 : 16|8@1+ (1,0) [0|0] "" X
 SG_ Plain : 56|8@1+ (1,0) [0|255] "" X
SIG_VALTYPE_ 100 F8 : 1;
"""
    )
    dbcs = DbcSet.load([path])
    (line,) = warning_lines(dbcs)
    assert "message M: cannot be decoded: signal F8 is an IEEE float of 8 bits" in line
    assert "when Sel is 2" in line
    decoded = decode_frames(
        frames((100, "0107000000000009"), (100, "0207000000000009"), (100, "0307000000000009")),
        dbcs,
    )
    assert decoded.messages["M"].to_pylist() == [
        {"timestamp": 0.0, "Sel": 1, "A": 7, "F8": None, "Plain": 9},
        # Sel = 3 selects nothing the DBC lists: plain signals decode, counted as mux_unknown
        {"timestamp": 0.02, "Sel": 3, "A": None, "F8": None, "Plain": 9},
    ]
    stats = decoded.stats.messages["M"]
    assert (stats.undecodable, stats.mux_unknown) == (1, 1)
    assert "when Sel is 2" in decoded.stats.undecoded["M"]
    outcome = check_file(path, per_branch=32)  # the corpus comparison, on this file
    assert outcome.loaded and outcome.values > 32


PLAN = """\
name: DBC case
dbc: [{dbc}]
steps:
  - {{name: all, duration: 1s}}
checks:
  - {{name: Good in range, signal: {signal}, max: 1000}}
"""


def _log(path: Path, rows: list[tuple[int, str]]) -> Path:
    data = [bytes.fromhex(h) for _, h in rows]
    pq.write_table(
        pa.table(
            {
                "timestamp": pa.array([0.01 * i for i in range(len(rows))]),
                "arbitration_id": pa.array([r[0] for r in rows], pa.uint32()),
                "is_extended_id": [False] * len(rows),
                "is_fd": [len(d) > 8 for d in data],
                "dlc": pa.array([len(d) for d in data], pa.uint8()),
                "data": pa.array(data, pa.binary()),
            }
        ),
        path,
    )
    return path


def test_evaluate_names_undecoded_messages_in_the_bus_section(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(dbc=FLOAT8, signal="Good.G"))
    log = _log(tmp_path / "log.parquet", [(100, "05" * 8), (200, "00" * 8)] * 3)
    out = tmp_path / "out"
    result = bench("evaluate", str(log), "--plan", str(plan), "--out", str(out))
    assert result.returncode == 0, result.stderr
    bus = json.loads((out / "summary.json").read_text())["bus"]
    assert bus["undecoded_messages"]["Odd"]["frames"] == 3
    assert "8 bits" in bus["undecoded_messages"]["Odd"]["reason"]
    assert bus["messages"]["Good"]["frames"] == 3


def test_evaluate_a_log_with_a_wide_signal(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(dbc=WIDE, signal="Wide.Tail"))
    log = _log(tmp_path / "log.parquet", [(0x64, "0102030405060708090a0b0c0d0e0f10")] * 3)
    out = tmp_path / "out"
    result = bench("evaluate", str(log), "--plan", str(plan), "--out", str(out))
    assert result.returncode == 0, result.stderr
    wide = pq.read_table(out / "signals" / "Wide.parquet")
    assert wide.column("Wide72").to_pylist() == [Decimal(166599134359138271745)] * 3


def test_sending_a_message_with_an_8_bit_float_is_refused_before_the_run(tmp_path):
    from bench.plan.loader import load

    plan = tmp_path / "send.yaml"
    plan.write_text(
        f"""name: send odd
dbc: [{FLOAT8}]
steps:
  - {{name: idle, duration: 1s, send: {{message: Odd, signals: {{F8: 1}}, every: 100ms}}}}
checks:
  - {{name: Good, signal: Good.G, max: 1000}}
"""
    )
    (error,) = load(plan).errors
    assert error.startswith(f"{plan}:4:") and "Odd cannot be sent: F8 is an IEEE float" in error


# -- overlapping signals and strict mode ----------------------------------------------------------


def test_overlapping_signals_load_with_a_warning_and_decode_like_cantools():
    dbcs = DbcSet.load([OVERLAP])
    (warning,) = dbcs.warnings
    assert warning.strict and warning.signals == ("Low", "High")
    assert "overlapping-signals.dbc: message Msg: signals Low, High overlap" in str(warning)
    decoded = decode_frames(frames((100, "03410d37ffffffff")), dbcs)
    assert decoded.messages["Msg"].to_pylist() == [{"timestamp": 0.0, "Low": 0, "High": 1}]
    with pytest.raises(InputError, match=r"signals Low, High overlap .*refused by strict"):
        DbcSet.load([OVERLAP], strict=True)


@pytest.mark.parametrize("path", [WIDE, MUX, FLOAT8, OVERLAP], ids=lambda p: p.stem)
def test_bench_dbc_prints_warnings_and_strict_refuses_only_strict_problems(path):
    result = bench("dbc", "--json", "--dbc", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"bench: warning: {path}: message ") for line in lines)
    assert len(json.loads(result.stdout)["warnings"]) == len(lines)
    strict = bench("dbc", "--strict", "--dbc", str(path))
    assert "Traceback" not in strict.stderr
    if path == OVERLAP:
        assert strict.returncode == 2
        assert strict.stderr.strip().splitlines()[-1].startswith(f"bench: error: {path}: message")
    else:
        assert strict.returncode == 0, strict.stderr


def test_bench_validate_prints_the_dbc_warnings(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(dbc=OVERLAP, signal="Msg.Low"))
    result = bench("validate", str(plan))
    assert result.returncode == 0, result.stderr
    assert f"bench: warning: {OVERLAP}: message Msg: signals Low, High overlap" in result.stderr


def _all_dbcs() -> list[Path]:
    return [*sorted(DBC_DIR.glob("*.dbc")), *sorted(CASES.glob("*.dbc")), *corpus_files()]


def test_strict_problems_are_exactly_what_cantools_strict_refuses():
    """The collected strict-mode problems flag a message iff cantools' strict refresh raises,
    and the first one names the signals cantools names."""
    checked = 0
    for path in _all_dbcs():
        try:
            database = cantools.database.load_file(str(path), strict=False)
        except cantools.database.Error:
            continue
        for message in database.messages:
            ours = strict_problems(message)
            try:
                message.refresh(strict=True)
                theirs = None
            except cantools.database.Error as exc:
                theirs = str(exc)
            assert bool(ours) == bool(theirs), f"{path}: {message.name}: {ours} vs {theirs}"
            if ours:
                assert all(f" {name} " in theirs for name in ours[0][0]), (ours, theirs)
            checked += 1
    assert checked > 10


@st.composite
def loose_layouts(draw, fitting: bool = False) -> Message:
    """Signals anywhere: overlapping, past the end (unless ``fitting``), 8-bit IEEE floats, in
    multiplexer branches (cantools non-strict)."""
    size = draw(st.sampled_from([1, 2, 3, 8]))
    signals = []

    def place(length: int) -> tuple[int, str]:
        order = draw(st.sampled_from(["little_endian", "big_endian"]))
        if not fitting:
            return draw(st.integers(0, 8 * size - 1)), order
        first = draw(st.integers(0, 8 * size - length))  # LSB (Intel) or MSB (network order)
        if order == "little_endian":
            return first, order
        return 8 * (first // 8) + 7 - first % 8, order

    multiplexed = draw(st.booleans())
    if multiplexed:
        start, order = place(2)
        signals.append(Signal("Mux", start, 2, order, is_multiplexer=True))
    for index in range(draw(st.integers(1, 5))):
        odd_float = draw(st.integers(0, 6)) == 0  # an 8-bit IEEE float: no such type
        length = 8 if odd_float else draw(st.integers(1, min(12, 8 * size)))
        start, order = place(length)
        signals.append(
            Signal(
                f"S{index}",
                start,
                length,
                order,
                conversion=BaseConversion.factory(1, 0, None, is_float=odd_float),
                multiplexer_signal="Mux" if multiplexed and draw(st.booleans()) else None,
                multiplexer_ids=draw(st.lists(st.integers(0, 3), min_size=1, unique=True)),
            )
        )
    for signal in signals:
        if signal.multiplexer_signal is None:
            signal.multiplexer_ids = None
    return Message(0x42, "Loose", size, signals, strict=False)


@settings(max_examples=300, deadline=None)
@given(message=loose_layouts())
def test_strict_problems_equal_cantools_strict_on_random_layouts(message: Message) -> None:
    ours = strict_problems(message)
    try:
        message.refresh(strict=True)
        theirs = None
    except cantools.database.Error as exc:
        theirs = str(exc)
    assert bool(ours) == bool(theirs), (ours, theirs)
    if ours:  # the first problem is the one cantools names
        assert all(f" {name} " in theirs for name in ours[0][0]), (ours, theirs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=loose_layouts(), data=st.data())
def test_loose_layouts_decode_like_cantools(message: Message, data) -> None:
    """Overlaps, 8-bit floats and signals outside the message (also in multiplexer branches):
    where cantools unpacks a frame bench agrees; where it cannot, bench has no row for a frame
    carrying an undecodable signal and otherwise agrees with cantools on each signal alone."""
    dbcs = DbcSet([(Path("loose.dbc"), Database(messages=[message], strict=False))])
    payloads = data.draw(
        st.lists(st.binary(min_size=message.length, max_size=message.length), min_size=1)
    )
    decoded = decode_frames(frames(*[(0x42, p.hex()) for p in payloads]), dbcs)
    timed = [(0.01 * i, p) for i, p in enumerate(payloads)]
    compare_message(message, timed, decoded, Outcome(loaded=True), require_hits=False)
