"""Large synthetic frame tables from the DBCs, for benchmarks (decode, evaluate, report, ...).

``restbus_frames(10_000_000)`` gives a frame table of the full restbus: every DBC message at its
``GenMsgCycleTime`` (event messages once a second), with a phase per message, sorted by time.
Payloads are cantools encodings of random physical values inside each signal's DBC range
(multiplexed messages walk through their multiplexer values), alive counters count, CRC8 bytes are
valid: the log is one a healthy vehicle could have sent, so checks on it pass. Everything is
vectorized; 10 M frames take a few seconds and about 1 GB while being built.

    from benchmarks._synthetic import restbus_frames, write_segments
    table = restbus_frames(10_000_000, seed=1)
    write_segments(table, Path("/tmp/run/frames"))
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dbc import DbcSet  # noqa: E402
from bench.e2e import CRC8_TABLE, counter_modulus, crc_byte_index  # noqa: E402
from bench.frames import FRAME_SCHEMA  # noqa: E402
from bench.record import SegmentWriter  # noqa: E402

TEMPLATES_PER_MESSAGE = 64
EVENT_PERIOD_S = 1.0


@dataclass(frozen=True)
class Stream:
    """One message on the bus: its period and the payload templates it cycles through."""

    message: object  # cantools Message
    period: float
    templates: np.ndarray  # (templates, length) uint8


def restbus_streams(dbcs: DbcSet, seed: int = 0) -> list[Stream]:
    rng = random.Random(seed)
    streams = []
    for message in dbcs.messages:
        period = DbcSet.cycle_time_s(message) or EVENT_PERIOD_S
        templates = np.array(
            [list(_encode_random(message, rng, i)) for i in range(TEMPLATES_PER_MESSAGE)],
            dtype=np.uint8,
        )
        streams.append(Stream(message, period, templates))
    return streams


def _encode_random(message, rng: random.Random, index: int) -> bytes:
    values = {}
    muxes = {s.name: s for s in message.signals if s.is_multiplexer}
    selected = {}
    for name in muxes:
        ids = sorted(
            {i for s in message.signals if s.multiplexer_signal == name for i in s.multiplexer_ids}
        )
        selected[name] = ids[index % len(ids)]
    for signal in message.signals:
        if signal.name in selected:
            values[signal.name] = selected[signal.name]
            continue
        if signal.multiplexer_signal and selected.get(signal.multiplexer_signal) not in (
            signal.multiplexer_ids or []
        ):
            continue
        low = signal.minimum if signal.minimum is not None else 0
        high = signal.maximum if signal.maximum is not None else low
        raw = rng.uniform(low, high)
        values[signal.name] = round((raw - signal.offset) / signal.scale) * signal.scale + (
            signal.offset
        )
        if signal.choices:
            values[signal.name] = rng.choice(sorted(signal.choices))
    return message.encode(values, strict=False)


def restbus_frames(
    n_frames: int,
    dbcs: DbcSet | None = None,
    *,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    channel: str = "0",
) -> pa.Table:
    """About ``n_frames`` frames (exactly that many) of the restbus, sorted by timestamp."""
    dbcs = dbcs or DbcSet.load()
    streams = restbus_streams(dbcs, seed)
    rate = sum(1.0 / s.period for s in streams)
    duration = n_frames / rate
    rng = np.random.default_rng(seed)

    times, stream_of, sequence = [], [], []
    for index, stream in enumerate(streams):
        count = int(np.ceil(duration / stream.period)) + 1
        phase = rng.uniform(0, stream.period)
        jitter = rng.normal(0, stream.period * 0.002, count)
        times.append(start + phase + np.arange(count) * stream.period + jitter)
        stream_of.append(np.full(count, index, dtype=np.int16))
        sequence.append(np.arange(count, dtype=np.int64))
    timestamps = np.concatenate(times)
    order = np.argsort(timestamps, kind="stable")[:n_frames]
    timestamps = timestamps[order]
    stream_of = np.concatenate(stream_of)[order]
    sequence = np.concatenate(sequence)[order]
    return _frame_table(streams, timestamps, stream_of, sequence, channel)


def restbus_chunks(
    n_frames: int,
    dbcs: DbcSet | None = None,
    *,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    chunk_frames: int = 1_000_000,
    channel: str = "0",
) -> Iterator[pa.Table]:
    """``n_frames`` frames of the restbus as tables of about ``chunk_frames``, in time order,
    never holding more than one chunk: for logs of 100 M frames. Each frame's jitter is a
    function of its message and number alone, so chunks meet without a step back in time."""
    dbcs = dbcs or DbcSet.load()
    streams = restbus_streams(dbcs, seed)
    rate = sum(1.0 / s.period for s in streams)
    span = chunk_frames / rate
    phases = np.random.default_rng(seed).uniform(0, [s.period for s in streams])
    left, k = n_frames, 0
    while left > 0:
        low, high = start + k * span, start + (k + 1) * span
        times, stream_of, sequence = [], [], []
        for index, stream in enumerate(streams):
            first = max(int(np.floor((low - start - phases[index]) / stream.period)) - 2, 0)
            last = int(np.ceil((high - start - phases[index]) / stream.period)) + 2
            numbers = np.arange(first, last, dtype=np.int64)
            t = start + phases[index] + numbers * stream.period
            t = t + _jitter(seed, index, numbers, stream.period * 0.002)
            inside = (t >= low) & (t < high) if k else t < high
            times.append(t[inside])
            stream_of.append(np.full(int(inside.sum()), index, dtype=np.int16))
            sequence.append(numbers[inside])
        timestamps = np.concatenate(times)
        order = np.argsort(timestamps, kind="stable")[:left]
        left -= order.size
        k += 1
        yield _frame_table(
            streams,
            timestamps[order],
            np.concatenate(stream_of)[order],
            np.concatenate(sequence)[order],
            channel,
        )


_JITTER_BLOCK = 4096


def _jitter(seed: int, stream: int, numbers: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian jitter per frame number, the same whichever chunk asks for it."""
    out = np.empty(numbers.size)
    if not numbers.size:
        return out
    blocks = numbers // _JITTER_BLOCK
    for block in np.unique(blocks):
        rows = blocks == block
        values = np.random.default_rng([seed, stream, int(block)]).normal(0, sigma, _JITTER_BLOCK)
        out[rows] = values[numbers[rows] % _JITTER_BLOCK]
    return out


def _frame_table(
    streams: list[Stream],
    timestamps: np.ndarray,
    stream_of: np.ndarray,
    sequence: np.ndarray,
    channel: str,
) -> pa.Table:
    n_frames = timestamps.size
    lengths = np.array([s.message.length for s in streams], dtype=np.int32)[stream_of]
    offsets = np.zeros(n_frames + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.empty(int(offsets[-1]), dtype=np.uint8)
    ids = np.empty(n_frames, dtype=np.uint32)
    extended = np.empty(n_frames, dtype=bool)
    fd = np.empty(n_frames, dtype=bool)
    for index, stream in enumerate(streams):
        rows = np.flatnonzero(stream_of == index)
        message = stream.message
        ids[rows] = message.frame_id
        extended[rows] = message.is_extended_frame
        fd[rows] = message.is_fd
        payload = stream.templates[sequence[rows] % len(stream.templates)]
        _count_and_seal(message, payload, sequence[rows])
        width = message.length
        values[offsets[rows][:, None] + np.arange(width)] = payload

    data = pa.Array.from_buffers(
        pa.binary(), n_frames, [None, pa.py_buffer(offsets), pa.py_buffer(values)]
    )
    columns = {
        "timestamp": pa.array(timestamps),
        "channel": _repeat(channel, n_frames),
        "arbitration_id": pa.array(ids),
        "is_extended_id": pa.array(extended),
        "is_remote_frame": pa.array(np.zeros(n_frames, dtype=bool)),
        "is_error_frame": pa.array(np.zeros(n_frames, dtype=bool)),
        "is_fd": pa.array(fd),
        "bitrate_switch": pa.array(fd),
        "dlc": pa.array(lengths.astype(np.uint8)),
        "data": data,
        "direction": _repeat("rx", n_frames),
    }
    return pa.Table.from_pydict(columns, schema=FRAME_SCHEMA)


def _repeat(value: str, count: int) -> pa.Array:
    # a one-entry dictionary decoded to plain strings: no Python list of `count` strings
    indices = pa.array(np.zeros(count, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([value])).cast(pa.string())


def _count_and_seal(message, payload: np.ndarray, sequence: np.ndarray) -> None:
    """Alive counter = frame number modulo its range; CRC8 J1850 over the other bytes."""
    modulus = counter_modulus(message)
    if modulus is not None:
        signal = message.get_signal_by_name("AliveCounter")
        if signal.byte_order == "little_endian":
            byte, bit = divmod(signal.start, 8)
        else:  # Motorola start is the MSB; a nibble inside one byte
            byte, msb = divmod(signal.start, 8)
            bit = msb - signal.length + 1
        mask = np.uint8(((1 << signal.length) - 1) << bit)
        counter = ((sequence % modulus) << bit).astype(np.uint8)
        payload[:, byte] = (payload[:, byte] & ~mask) | counter
    crc_at = crc_byte_index(message)
    if crc_at is not None:
        crc = np.full(len(payload), 0xFF, dtype=np.uint8)
        for column in range(payload.shape[1]):
            if column != crc_at:
                crc = CRC8_TABLE[crc ^ payload[:, column]]
        payload[:, crc_at] = crc ^ np.uint8(0xFF)


def write_segments(table: pa.Table, frames_dir: Path, max_frames: int = 200_000) -> list[Path]:
    """Write ``table`` as a recorder would: ``frames_dir/part-NNNNN.parquet``."""
    with SegmentWriter(
        frames_dir, max_frames=max_frames, max_seconds=1e9, fsync=False, journal=False
    ) as writer:
        for start in range(0, table.num_rows, max_frames):
            writer.write_table(table.slice(start, max_frames))
    return writer.segments
