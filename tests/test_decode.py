"""The vectorized decoder against cantools, on every message of the shipped DBCs."""

from __future__ import annotations

import math
import random

import cantools
import numpy as np
import pyarrow as pa
import pytest

from bench.decode import decode_frames, read_signal_tables
from bench.errors import InputError

FRAMES_PER_MESSAGE = 400


def frame_table(rows: list[dict]) -> pa.Table:
    """A frame table from dicts with at least arbitration_id and data."""
    return pa.table(
        {
            "timestamp": pa.array([float(r.get("timestamp", i)) for i, r in enumerate(rows)]),
            "arbitration_id": pa.array([r["arbitration_id"] for r in rows], pa.uint32()),
            "is_extended_id": pa.array([r.get("is_extended_id", False) for r in rows]),
            "is_remote_frame": pa.array([r.get("is_remote_frame", False) for r in rows]),
            "is_error_frame": pa.array([r.get("is_error_frame", False) for r in rows]),
            "dlc": pa.array([len(r["data"]) for r in rows], pa.uint8()),
            "data": pa.array([bytes(r["data"]) for r in rows], pa.binary()),
        }
    )


def assert_same_value(ours, theirs, where: str) -> None:
    if isinstance(theirs, float) and math.isnan(theirs):
        assert isinstance(ours, float) and math.isnan(ours), where
        return
    assert ours == theirs, f"{where}: ours {ours!r} != cantools {theirs!r}"
    # an integer from cantools must stay an integer (exact), a float a float
    assert isinstance(ours, int) == isinstance(theirs, int), f"{where}: {ours!r} vs {theirs!r}"


def compare_with_cantools(message, rows: list[dict], decoded) -> dict[str, int]:
    """Every decoded row equals cantools; returns what cantools refused, by reason."""
    table = decoded.messages[message.name].to_pylist()
    refused = {"short": 0, "mux": 0}
    position = 0
    for frame in rows:
        data = bytes(frame["data"])
        try:
            expected = message.decode(
                data, decode_choices=False, scaling=True, allow_truncated=False
            )
        except cantools.database.DecodeError as exc:
            if len(data) < message.length:
                refused["short"] += 1
                continue  # short frames are counted, not decoded
            assert "multiplexer" in str(exc)
            refused["mux"] += 1
            got = table[position]
            position += 1
            # a multiplexer value the DBC does not list: plain signals decoded, the rest null.
            # cantools refuses the whole frame, so compare with the frame made valid.
            selectors = {s.name: s for s in message.signals if s.is_multiplexer}
            valid = _set_signals(message, bytearray(data), {n: 0 for n in selectors})
            expected = message.decode(bytes(valid), decode_choices=False, scaling=True)
            for signal in message.signals:
                if signal.name in selectors:
                    raw = int.from_bytes(data[: message.length], "little")
                    assert got[signal.name] == (raw >> signal.start) & ((1 << signal.length) - 1)
                elif signal.multiplexer_signal is None:
                    assert_same_value(got[signal.name], expected[signal.name], signal.name)
                else:
                    assert got[signal.name] is None
            continue
        got = table[position]
        position += 1
        assert got["timestamp"] == frame["timestamp"]
        for signal in message.signals:
            where = f"{message.name}.{signal.name} data={data.hex()}"
            if signal.name in expected:
                assert_same_value(got[signal.name], expected[signal.name], where)
            else:
                assert got[signal.name] is None, where
    assert position == len(table)
    return refused


def random_frames(message, rng: random.Random, count: int) -> list[dict]:
    """Random payloads; multiplexers mostly valid; some frames short, some longer (FD)."""
    mux_values = {}
    for signal in message.signals:
        if signal.is_multiplexer:
            ids = {
                i
                for s in message.signals
                if s.multiplexer_signal == signal.name
                for i in (s.multiplexer_ids or [])
            }
            mux_values[signal.name] = sorted(ids)
    rows = []
    for i in range(count):
        data = bytearray(rng.getrandbits(8) for _ in range(message.length))
        if mux_values and rng.random() < 0.9:
            values = {name: rng.choice(ids) for name, ids in mux_values.items()}
            data = _set_signals(message, data, values)
        roll = rng.random()
        if roll < 0.05:
            data = data[: rng.randrange(0, message.length)]
        elif roll < 0.10:
            data = data + bytearray(rng.getrandbits(8) for _ in range(rng.randrange(1, 8)))
        rows.append(
            {
                "timestamp": i * 0.01 + rng.random() * 1e-3,
                "arbitration_id": message.frame_id,
                "is_extended_id": message.is_extended_frame,
                "data": bytes(data),
            }
        )
    return rows


def _set_signals(message, data: bytearray, values: dict[str, int]) -> bytearray:
    """Write raw ``values`` into their bit fields (little- or big-endian), keeping other bits."""
    bits = int.from_bytes(data, "little")
    for name, value in values.items():
        signal = message.get_signal_by_name(name)
        assert signal.byte_order == "little_endian", "the shipped multiplexers are Intel"
        mask = ((1 << signal.length) - 1) << signal.start
        bits = (bits & ~mask) | ((value << signal.start) & mask)
    return bytearray(bits.to_bytes(len(data), "little"))


def test_every_shipped_message_matches_cantools(dbcs):
    rng = random.Random(1234)
    all_rows = []
    per_message = {}
    for message in dbcs.messages:
        rows = random_frames(message, rng, FRAMES_PER_MESSAGE)
        per_message[message.name] = rows
        all_rows.extend(rows)
    # interleave messages as on a bus: the decoder must keep each message's frame order
    all_rows.sort(key=lambda r: r["timestamp"])
    decoded = decode_frames(frame_table(all_rows), dbcs)
    assert decoded.stats.total_frames == len(all_rows)
    for message in dbcs.messages:
        refused = compare_with_cantools(message, per_message[message.name], decoded)
        stats = decoded.stats.messages[message.name]
        assert stats.frames == FRAMES_PER_MESSAGE
        assert stats.short == refused["short"] > 0
        assert stats.mux_unknown == refused["mux"]
        assert decoded.messages[message.name].num_rows == stats.decoded
    assert decoded.stats.messages["BMS_ModuleData"].mux_unknown > 0
    assert decoded.stats.unknown_ids == {}


def test_extreme_payloads_match_cantools(dbcs):
    """All-zero and all-one payloads hit the sign and range limits of every signal."""
    for message in dbcs.messages:
        rows = [
            {
                "timestamp": 0.0,
                "arbitration_id": message.frame_id,
                "is_extended_id": message.is_extended_frame,
                "data": bytes([fill]) * message.length,
            }
            for fill in (0x00, 0xFF, 0x80, 0x7F, 0x55, 0xAA)
        ]
        decoded = decode_frames(frame_table(rows), dbcs, only={message.name})
        compare_with_cantools(message, rows, decoded)


def test_signal_columns_are_typed_and_complete(dbcs):
    decoded = decode_frames(frame_table([]), dbcs)
    for message in dbcs.messages:
        table = decoded.messages[message.name]
        assert table.num_rows == 0
        assert table.column_names == ["timestamp", *(s.name for s in message.signals)]
    table = decoded.messages["BMS_PackStatus"]
    assert table.schema.field("PackVoltage").type == pa.float64()
    assert table.schema.field("AliveCounter").type == pa.int64()
    assert decoded.messages["BMS_Temps"].schema.field("CoolantInletTemp").type == pa.int64()


def test_multiplexed_signals_are_null_where_not_carried(dbcs):
    identity = dbcs.message("BMS_Identity")
    rows = []
    for page, signals in (
        (0, {"SwMajor": 3}),
        (1, {"CellsInSeries": 192}),
        (2, {"SerialNumber": 7}),
    ):
        data = identity.encode(
            {
                "InfoPage": page,
                **{
                    s.name: 0
                    for s in identity.signals
                    if s.multiplexer_ids and page in s.multiplexer_ids
                },
                **signals,
            }
        )
        rows.append({"arbitration_id": identity.frame_id, "data": data})
    table = decode_frames(frame_table(rows), dbcs).messages["BMS_Identity"].to_pydict()
    assert table["InfoPage"] == [0, 1, 2]
    assert table["SwMajor"] == [3, None, None]
    assert table["CellsInSeries"] == [None, 192, None]
    assert table["SerialNumber"] == [None, None, 7]


def test_extended_multiplexing_with_a_range_of_values(dbcs):
    module = dbcs.message("BMS_ModuleData")
    rows = [
        {
            "arbitration_id": module.frame_id,
            "data": module.encode(
                {s.name: (i if s.is_multiplexer else 0) for s in module.signals}
                | {"CellVolt16": 3.25, "ModuleTemp4": 20}
            ),
        }
        for i in range(12)
    ]
    table = decode_frames(frame_table(rows), dbcs).messages["BMS_ModuleData"].to_pydict()
    assert table["ModuleIndex"] == list(range(12))
    assert table["CellVolt16"] == [3.25] * 12
    assert table["ModuleTemp4"] == [20] * 12


def test_error_remote_unknown_and_wrong_id_kind_are_counted(dbcs):
    status = dbcs.message("BMS_Status")
    energy = dbcs.message("BMS_Energy")
    good = bytes(8)
    rows = [
        {"arbitration_id": status.frame_id, "data": good},
        {"arbitration_id": status.frame_id, "data": b"", "is_remote_frame": True},
        {"arbitration_id": 0, "data": good, "is_error_frame": True},
        {"arbitration_id": 0x7FF, "data": good},
        {"arbitration_id": 0x7FF, "data": good},
        # a standard frame with an extended message's id is not that message
        {"arbitration_id": energy.frame_id, "data": good},
        # an extended frame with a standard message's id is not that message either
        {"arbitration_id": status.frame_id, "data": good, "is_extended_id": True},
        {"arbitration_id": energy.frame_id, "data": good, "is_extended_id": True},
        {"arbitration_id": status.frame_id, "data": good[:3]},
    ]
    decoded = decode_frames(frame_table(rows), dbcs)
    stats = decoded.stats
    assert stats.total_frames == len(rows)
    assert (stats.error_frames, stats.remote_frames) == (1, 1)
    assert stats.unknown_ids == {0x7FF: 2, energy.frame_id: 1, status.frame_id: 1}
    assert stats.messages["BMS_Status"].frames == 2
    assert stats.messages["BMS_Status"].short == 1
    assert stats.messages["BMS_Energy"].frames == 1
    assert decoded.messages["BMS_Status"].num_rows == 1
    assert decoded.messages["BMS_Energy"].num_rows == 1
    assert stats.to_dict()["unknown_ids"]["0x7FF"] == 2


def test_minimal_columns_and_chunked_input(dbcs):
    status = dbcs.message("BMS_PackStatus")
    rows = [
        {
            "arbitration_id": status.frame_id,
            "timestamp": i,
            "data": status.encode(
                {
                    "PackVoltage": 700 + i / 10,
                    "PackCurrent": -5.5,
                    "SOC": 50,
                    "MainContactorsClosed": 1,
                    "AliveCounter": i % 16,
                    "CRC": 0,
                }
            ),
        }
        for i in range(100)
    ]
    table = frame_table(rows).select(
        ["timestamp", "arbitration_id", "is_extended_id", "dlc", "data"]
    )
    chunked = pa.concat_tables([table.slice(0, 33), table.slice(33, 40), table.slice(73)])
    decoded = decode_frames(chunked, dbcs)
    got = decoded.messages["BMS_PackStatus"].to_pydict()
    assert got["AliveCounter"] == [i % 16 for i in range(100)]
    assert got["PackCurrent"] == [-5.5] * 100
    assert got["timestamp"] == [float(i) for i in range(100)]


def test_sliced_data_column_and_last_frame_at_buffer_end(dbcs):
    """Windows read 8 bytes: a 1-byte message at the very end of the buffer must still work."""
    contactors = dbcs.message("BMS_Contactors")
    rows = [{"arbitration_id": contactors.frame_id, "data": bytes([i & 0x1F])} for i in range(40)]
    table = frame_table(rows).slice(5, 30)
    got = decode_frames(table, dbcs).messages["BMS_Contactors"].to_pydict()
    assert got["MainPositive"] == [i & 1 for i in range(5, 35)]
    assert got["DcChargeNegative"] == [(i >> 4) & 1 for i in range(5, 35)]


def test_missing_column_is_an_input_error(dbcs):
    with pytest.raises(InputError, match="data"):
        decode_frames(
            pa.table(
                {
                    "timestamp": [0.0],
                    "arbitration_id": pa.array([1], pa.uint32()),
                    "is_extended_id": [False],
                }
            ),
            dbcs,
        )


def test_choices_and_signal_tables_round_trip(dbcs, tmp_path):
    status = dbcs.message("BMS_Status")
    data = status.encode({s.name: 0 for s in status.signals} | {"HvState": 2})
    decoded = decode_frames(frame_table([{"arbitration_id": status.frame_id, "data": data}]), dbcs)
    assert decoded.choices("BMS_Status.HvState")[2] == "READY"
    assert decoded.choices("BMS_PackStatus.SOC") == {}
    assert decoded.column("BMS_Status.HvState").to_pylist() == [2]
    written = decoded.write_signal_tables(tmp_path / "signals")
    assert {p.stem for p in written} == {m.name for m in dbcs.messages}
    tables = read_signal_tables(tmp_path / "signals")
    for name, table in decoded.messages.items():
        assert tables[name].equals(table)
    assert not list((tmp_path / "signals").glob("*.tmp"))


def test_large_random_log_matches_per_message_numpy_reference(dbcs):
    """A bigger mixed log decodes to the same values as a small-batch decode (no cross-talk)."""
    rng = np.random.default_rng(7)
    messages = dbcs.messages
    rows = []
    for i in range(3000):
        message = messages[int(rng.integers(len(messages)))]
        rows.append(
            {
                "timestamp": i,
                "arbitration_id": message.frame_id,
                "is_extended_id": message.is_extended_frame,
                "data": rng.integers(0, 256, message.length, dtype=np.uint8).tobytes(),
            }
        )
    table = frame_table(rows)
    whole = decode_frames(table, dbcs)
    pieces = [decode_frames(table.slice(i, 500), dbcs) for i in range(0, 3000, 500)]
    for message in messages:
        joined = pa.concat_tables([p.messages[message.name] for p in pieces])
        assert joined.equals(whole.messages[message.name])


def test_batches_large_binary_and_null_payloads(dbcs, monkeypatch):
    """Small decode batches, 64-bit offsets and null payloads give the same tables."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(500):
        message = dbcs.messages[i % len(dbcs.messages)]
        rows.append(
            {
                "timestamp": i,
                "arbitration_id": message.frame_id,
                "is_extended_id": message.is_extended_frame,
                "data": rng.integers(0, 256, message.length, dtype=np.uint8).tobytes(),
            }
        )
    table = frame_table(rows)
    whole = decode_frames(table, dbcs)
    monkeypatch.setattr("bench.decode.BATCH_FRAMES", 7)
    data = table.column("data").cast(pa.large_binary())
    batched = decode_frames(
        table.set_column(table.schema.get_field_index("data"), "data", data), dbcs
    )
    for message in dbcs.messages:
        assert batched.messages[message.name].equals(whole.messages[message.name])
    assert batched.stats == whole.stats
    nulls = table.set_column(
        table.schema.get_field_index("data"), "data", pa.array([None] * table.num_rows, pa.binary())
    )
    stats = decode_frames(nulls, dbcs).stats
    assert stats.short_frames == table.num_rows  # a null payload is an empty, short frame


def test_only_selected_messages_are_decoded_but_all_are_counted(dbcs):
    status, temps = dbcs.message("BMS_Status"), dbcs.message("BMS_Temps")
    rows = [{"arbitration_id": m.frame_id, "data": bytes(m.length)} for m in (status, temps, temps)]
    rows.append({"arbitration_id": 0x7AB, "data": bytes(8)})
    decoded = decode_frames(frame_table(rows), dbcs, only={"BMS_Temps"})
    assert list(decoded.messages) == ["BMS_Temps"]
    assert decoded.messages["BMS_Temps"].num_rows == 2
    assert decoded.stats.messages["BMS_Status"].frames == 1
    assert decoded.stats.unknown_ids == {0x7AB: 1}


def test_signal_tables_are_written_for_speed_and_read_everywhere(dbcs, tmp_path):
    """Floats BYTE_STREAM_SPLIT, integers dictionary, zstd (``signal_table_options``): what both
    writers use, and what DuckDB (``bench runs``) and pyarrow read back value for value."""
    import duckdb
    import pyarrow.parquet as pq

    from bench.decode import BackgroundWriter, SignalTableWriter

    status = dbcs.message("BMS_PackStatus")
    rows = [
        {"timestamp": 0.01 * i, "arbitration_id": status.frame_id,
         "data": status.encode({s.name: 0 for s in status.signals} | {"SOC": i % 100})}
        for i in range(500)
    ]  # fmt: skip
    decoded = decode_frames(frame_table(rows), dbcs)
    whole = decoded.write_signal_tables(tmp_path / "whole")
    streamed = BackgroundWriter(SignalTableWriter(tmp_path / "streamed"))
    streamed.write(decoded)
    paths = {p.name: p for p in whole} | {"s-" + p.name: p for p in streamed.close(decoded.stats)}
    for path in paths.values():
        table = decoded.messages[path.stem]
        assert pq.read_table(path).replace_schema_metadata(None).equals(table)
        if not table.num_rows:
            continue  # an empty message's file has its columns and no pages to encode
        column_chunks = pq.ParquetFile(path).metadata.row_group(0)
        for i, field in enumerate(table.schema):
            chunk = column_chunks.column(i)
            assert chunk.compression == "ZSTD"
            if pa.types.is_floating(field.type):
                assert "BYTE_STREAM_SPLIT" in chunk.encodings, (path.name, field.name)
            else:
                assert any("DICTIONARY" in e for e in chunk.encodings), (path.name, field.name)
    pack = paths["BMS_PackStatus.parquet"]
    [(soc, timestamp)] = duckdb.sql(f"SELECT sum(SOC), max(timestamp) FROM '{pack}'").fetchall()
    assert soc == sum(i % 100 for i in range(500)) and timestamp == pytest.approx(4.99)
