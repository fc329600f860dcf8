"""Vectorized decoder: frame table → one table per DBC message (DESIGN.md, "columns, not loops").

There is no per-frame Python on the hot path. The steps, all on whole numpy columns:

1. Classify every frame by ``(arbitration_id, is_extended_id)`` into a small integer code (one
   lookup table for 11-bit ids, a search over the few extended frames), with extra codes for
   unknown ids, error frames and remote frames; one stable radix sort of the codes gives each
   message's rows, in frame order.
2. Extract bit fields straight from the Arrow ``data`` buffer. Instead of first copying payloads
   into an ``(n, length)`` byte matrix, every signal reads one unaligned 8-byte *window* per frame
   through an overlapping ``uint64`` view of the buffer (``strides=(1,)``): one gather, a shift and
   a mask per signal, for both byte orders (Motorola windows are byte-swapped once and shared).
   That is several times faster than building the matrix and gives the same bits. Fields spanning
   nine bytes (long, unaligned signals) add one byte gather. Bytes past a field are never used, so
   frames longer than the message decode from their first ``length`` bytes, like cantools.
3. Apply cantools' own conversion rules so values compare *equal* to
   ``message.decode(data, decode_choices=False, scaling=True)``: integer scale and offset keep
   integers (computed modulo 2**64, exact whenever the result fits the 64-bit column), a float
   scale converts the raw value to float64 first, IEEE float signals are reinterpreted bits.

Frames shorter than their message are counted and skipped (cantools raises on them).
Multiplexing is cantools' signal tree (:func:`bench.dbc_layout.mux_layout`): multiplexed signals
are null in rows whose multiplexer value does not carry them, a signal in no tree (its switch is
not declared ``M``) is null everywhere, and a multiplexer value cantools knows no branch for
(neither a multiplexed signal nor a ``VAL_`` name; cantools raises) still decodes the plain signals
and is counted as ``mux_unknown``.

What no numpy column holds or no decoder can decode affects only its own message:

* a signal wider than 64 bits is decoded frame by frame by cantools (a one-signal message) into an
  exact decimal column (float64 where cantools gives floats); the rest of the message stays
  vectorized;
* a message with an IEEE float signal of a length other than 16/32/64 bits, or a signal outside
  the message (cantools raises on every frame), is not decoded: its frames are counted as
  ``undecodable``, ``DecodeStats.undecoded`` says why, and its table is empty. Where that signal
  is multiplexed, only the frames carrying it (cantools raises on exactly those) are counted and
  left out of the table.

The one known inexactness: an integer-scaled signal of at most 64 bits whose physical range does
not fit in 64 bits (e.g. a 64-bit raw value times 2) is returned as float64, nearest to cantools'
Python int.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from cantools.database.can import Message, Signal
from cantools.database.conversion import (
    BaseConversion,
    IdentityConversion,
    LinearConversion,
    LinearIntegerConversion,
)

from .dbc import DbcSet
from .dbc_layout import (
    MuxLayout,
    integer_range,
    mux_layout,
    undecodable_reason,
    undecodable_signals,
)
from .errors import InputError
from .rundir import TMP_SUFFIX, message_file

_U64 = np.uint64
_STD_ID_LIMIT = 0x800
_STATS_KEY = b"bench.decode_stats"


def signal_table_options(schema: pa.Schema) -> dict:
    """Parquet encodings of a ``signals/`` table, chosen per column kind.

    Floating columns (the timestamp and physical values) are written BYTE_STREAM_SPLIT: their
    bytes are regrouped by significance, which compresses measured values well, where a
    dictionary of distinct floats costs time and rarely pays (a signal sampled 1 M times has
    nearly 1 M distinct values). Integer columns (alive counters, CRCs, enumerations) keep the
    dictionary. zstd (Arrow's level 1) then compresses. On the benchmark's 1 M-frame restbus this
    writes the 17 tables in 0.08 CPU s and 1.8 MB against 0.14 s and 7.6 MB for Arrow's defaults
    (dictionary everywhere, snappy); both encodings are in the Parquet format since 2.8 (2019)
    and read by pyarrow, pandas, DuckDB and Spark alike.
    """
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    others = [f.name for f in schema if not pa.types.is_floating(f.type)]
    return {
        "compression": "zstd",
        "use_dictionary": others,
        "column_encoding": {name: "BYTE_STREAM_SPLIT" for name in floats},
    }


BATCH_FRAMES = 1 << 20


# -- results ---------------------------------------------------------------------------------------


@dataclass
class MessageStats:
    """Counts for one DBC message. ``frames`` = data frames with its id, short ones included."""

    frames: int = 0
    short: int = 0  # shorter than the DBC length: counted, not decoded
    long: int = 0  # longer than the DBC length: decoded from the first `length` bytes
    mux_unknown: int = 0  # a multiplexer value the DBC does not list: multiplexed signals null
    undecodable: int = 0  # frames of a message bench cannot decode (DecodeStats.undecoded: why)

    @property
    def decoded(self) -> int:
        return self.frames - self.short - self.undecodable


@dataclass
class DecodeStats:
    """What the decoder saw besides signal values; the ``bus`` check judges these."""

    total_frames: int = 0
    messages: dict[str, MessageStats] = field(default_factory=dict)
    # Keyed by arbitration id; an 11-bit and a 29-bit id with the same number add up.
    unknown_ids: dict[int, int] = field(default_factory=dict)
    error_frames: int = 0
    remote_frames: int = 0
    # Messages of the DBC set whose frames cannot be decoded, with the reason (dbc_layout).
    undecoded: dict[str, str] = field(default_factory=dict)
    # ISO-TP frames on a diagnostic ECU's request/response ids (in no DBC): diagnostics, not
    # unknown ids (bench.diag.log reassembles them).
    diagnostic_frames: int = 0

    @property
    def unknown_frames(self) -> int:
        return sum(self.unknown_ids.values())

    @property
    def short_frames(self) -> int:
        return sum(m.short for m in self.messages.values())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["unknown_ids"] = {f"0x{k:X}": v for k, v in sorted(self.unknown_ids.items())}
        return data

    def merge(self, other: DecodeStats) -> None:
        self.total_frames += other.total_frames
        self.error_frames += other.error_frames
        self.remote_frames += other.remote_frames
        self.diagnostic_frames += other.diagnostic_frames
        self.undecoded.update(other.undecoded)
        for key, count in other.unknown_ids.items():
            self.unknown_ids[key] = self.unknown_ids.get(key, 0) + count
        for name, theirs in other.messages.items():
            mine = self.messages.setdefault(name, MessageStats())
            mine.frames += theirs.frames
            mine.short += theirs.short
            mine.long += theirs.long
            mine.mux_unknown += theirs.mux_unknown
            mine.undecodable += theirs.undecodable


@dataclass
class DecodedLog:
    """One table per DBC message: ``timestamp`` + one column per signal, physical values.

    Choices stay numeric codes (labels via :meth:`choices`); multiplexed signals are null where the
    frame's multiplexer value does not carry them. Messages without frames have empty tables.
    """

    messages: dict[str, pa.Table]
    stats: DecodeStats
    dbcs: DbcSet | None = None

    def table(self, message: str) -> pa.Table:
        return self.messages[message]

    def column(self, reference: str) -> pa.ChunkedArray:
        """The column of ``Message.Signal``."""
        message, _, signal = reference.partition(".")
        return self.messages[message].column(signal)

    def choices(self, reference: str) -> dict[int, str]:
        """Value labels of ``Message.Signal`` (empty when the DBC defines none)."""
        if self.dbcs is None:
            raise KeyError(f"{reference}: no DBC set attached to this decoded log")
        choices = self.dbcs.signal(reference).signal.choices or {}
        return {int(k): str(v) for k, v in choices.items()}

    def write_signal_tables(self, signals_dir: Path) -> list[Path]:
        """Write ``signals/<Message>.parquet`` (every message, empty ones included)."""
        signals_dir.mkdir(parents=True, exist_ok=True)
        written = []
        stats = json.dumps(self.stats.to_dict(), sort_keys=True).encode()
        for name, table in sorted(self.messages.items()):
            path = signals_dir / message_file(name)
            tmp = path.with_name(path.name + TMP_SUFFIX)
            # the stats travel in the metadata so a signals/ directory alone tells what was skipped
            metadata = {**(table.schema.metadata or {}), _STATS_KEY: stats}
            pq.write_table(
                table.replace_schema_metadata(metadata), tmp, **signal_table_options(table.schema)
            )
            tmp.replace(path)
            written.append(path)
        return written


class SignalTableWriter:
    """``signals/<Message>.parquet`` written batch by batch (streaming evaluation).

    Each batch's :class:`DecodedLog` is appended (:meth:`write`); :meth:`close` adds the decoder's
    counts over all batches to every file's metadata and moves the files in place, so the result
    reads exactly as :meth:`DecodedLog.write_signal_tables` of the whole log (one row group per
    batch). :meth:`discard` removes what was written (the log turned out unreadable).
    """

    def __init__(self, signals_dir: Path) -> None:
        self.directory = Path(signals_dir)
        self._writers: dict[str, tuple[pq.ParquetWriter, Path]] = {}

    def write(self, decoded: DecodedLog) -> None:
        """Append one batch's tables (in this thread; :class:`BackgroundWriter` for another)."""
        if not self._writers:
            self.directory.mkdir(parents=True, exist_ok=True)
        for name, table in sorted(decoded.messages.items()):
            entry = self._writers.get(name)
            if entry is None:
                tmp = self.directory / (message_file(name) + TMP_SUFFIX)
                options = signal_table_options(table.schema)
                entry = (pq.ParquetWriter(tmp, table.schema, **options), tmp)
                self._writers[name] = entry
                if not table.num_rows:
                    entry[0].write_table(table)  # an empty message still has its columns
            if table.num_rows:
                schema = entry[0].schema
                entry[0].write_table(table if table.schema.equals(schema) else table.cast(schema))

    def close(self, stats: DecodeStats) -> list[Path]:
        """Finish every file with the counts of the whole log; returns the paths written."""
        metadata = {_STATS_KEY: json.dumps(stats.to_dict(), sort_keys=True).encode()}
        written = []
        for name in sorted(self._writers):
            writer, tmp = self._writers[name]
            writer.add_key_value_metadata(metadata)
            writer.close()
            del self._writers[name]  # closed: what is left for discard() is still open
            path = self.directory / message_file(name)
            tmp.replace(path)
            written.append(path)
        return written

    def discard(self) -> None:
        """Close and remove every file; a writer that cannot close (the disk is full) is
        dropped too, so none is left for the garbage collector to close again."""
        for writer, tmp in self._writers.values():
            try:
                writer.close()
            except (OSError, pa.ArrowException):
                pass  # what it could not write is being removed anyway
            finally:
                tmp.unlink(missing_ok=True)
        self._writers = {}


class BackgroundWriter:
    """A :class:`SignalTableWriter` in its own thread: Arrow's Parquet writer releases the GIL,
    so ``signals/`` is written on a second core while the next batch is decoded and judged. At
    most ``depth`` batches wait (memory stays bounded); an error of the writer is raised by the
    next :meth:`write` or by :meth:`close`."""

    def __init__(self, writer: SignalTableWriter, depth: int = 2) -> None:
        import queue
        import threading

        self.writer = writer
        self._queue: queue.Queue[DecodedLog | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-write-signals", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            decoded = self._queue.get()
            if decoded is None:
                return
            if self._error is None:
                try:
                    self.writer.write(decoded)
                except BaseException as exc:  # handed to the caller by write() or close()
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, decoded: DecodedLog) -> None:
        self._raise()
        self._queue.put(decoded)

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def close(self, stats: DecodeStats) -> list[Path]:
        self._stop()
        self._raise()
        return self.writer.close(stats)

    def discard(self) -> None:
        self._stop()
        self.writer.discard()


def read_signal_tables(signals_dir: Path) -> dict[str, pa.Table]:
    """Read what :meth:`DecodedLog.write_signal_tables` wrote, keyed by message name."""
    if not signals_dir.is_dir():
        raise InputError(f"{signals_dir}: no signals directory")
    tables = {}
    for path in sorted(signals_dir.glob("*.parquet")):
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{path}: unreadable signal table ({exc})") from None
        tables[path.stem] = table.replace_schema_metadata(None)
    return tables


# -- per-signal extraction plans ---------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """Where a signal's bits are relative to an 8-byte window starting at byte ``window``."""

    window: int  # first byte of the 8-byte window
    big_endian: bool
    shift: int  # LE: right shift of the LE window; BE: right shift of the BE window
    length: int
    extra_byte: bool  # field spans 9 bytes: one more byte after the window
    extra_bits: int  # BE: bits taken from the extra byte; LE: left shift of the extra byte

    @staticmethod
    def of(signal: Signal) -> _Field:
        length = signal.length
        if signal.byte_order == "little_endian":
            first_bit = signal.start  # LSB, bit i of the frame = bit i%8 of byte i//8
        else:
            # Motorola: start is the MSB in sawtooth numbering; make it a network bit number
            first_bit = 8 * (signal.start // 8) + 7 - signal.start % 8
        first_byte, last_byte = first_bit // 8, (first_bit + length - 1) // 8
        big = signal.byte_order != "little_endian"
        if last_byte - first_byte <= 7:
            # prefer windows on 8-byte boundaries: signals then share the same gathered window
            lowest = max(0, last_byte - 7)
            aligned = -(-lowest // 8) * 8
            window = aligned if aligned <= first_byte else first_byte
            offset = first_bit - 8 * window
            shift = offset if not big else 64 - offset - length
            return _Field(window, big, shift, length, False, 0)
        window = first_byte
        offset = first_bit - 8 * window
        if big:
            return _Field(window, True, 0, length, True, offset + length - 64)
        return _Field(window, False, offset, length, True, 64 - offset)


class _Windows:
    """Unaligned 8-byte windows of each row's payload, gathered once per window start."""

    def __init__(self, values: np.ndarray, starts: np.ndarray) -> None:
        self.values = values
        self.starts = starts
        self._le: dict[int, np.ndarray] = {}
        self._be: dict[int, np.ndarray] = {}
        size = values.size
        # element j of this view is the little-endian uint64 at byte j: one gather per window
        self._view = (
            np.ndarray(shape=(size - 7,), dtype="<u8", buffer=values, strides=(1,))
            if size >= 8
            else np.zeros(0, dtype="<u8")
        )

    def little(self, window: int) -> np.ndarray:
        words = self._le.get(window)
        if words is None:
            words = self._gather(self.starts + window)
            self._le[window] = words
        return words

    def big(self, window: int) -> np.ndarray:
        words = self._be.get(window)
        if words is None:
            words = self.little(window).byteswap()
            self._be[window] = words
        return words

    def byte(self, position: int) -> np.ndarray:
        return self.values[self.starts + position].astype(_U64)

    def _gather(self, positions: np.ndarray) -> np.ndarray:
        limit = self._view.size  # last position with 8 bytes after it, plus one
        # positions ascend (Arrow offsets are monotonic): only the last one can be out of range
        if positions.size == 0 or positions[-1] < limit:
            return self._view[positions]
        # rows near the end of the buffer: read them from a zero-padded copy of the tail
        clipped = np.minimum(positions, max(limit - 1, 0))
        words = self._view[clipped] if limit else np.zeros(positions.size, dtype="<u8")
        late = np.flatnonzero(positions >= limit)
        tail_start = max(int(positions[late].min()), 0)
        tail = np.zeros(self.values.size - tail_start + 8, dtype=np.uint8)
        tail[: self.values.size - tail_start] = self.values[tail_start:]
        tail_view = np.ndarray(shape=(tail.size - 7,), dtype="<u8", buffer=tail, strides=(1,))
        words[late] = tail_view[positions[late] - tail_start]
        return words


def _extract(windows: _Windows, spec: _Field) -> np.ndarray:
    """The raw, unsigned bit field of every row as uint64."""
    mask = _U64((1 << spec.length) - 1)
    if spec.big_endian:
        words = windows.big(spec.window)
        if spec.extra_byte:
            high = np.left_shift(words, _U64(spec.extra_bits))
            low = windows.byte(spec.window + 8) >> _U64(8 - spec.extra_bits)
            return (high | low) & mask
        return _shift_and_mask(words, spec.shift, mask)
    words = windows.little(spec.window)
    if spec.extra_byte:
        low = words >> _U64(spec.shift)
        high = np.left_shift(windows.byte(spec.window + 8), _U64(spec.extra_bits))
        return (low | high) & mask
    if spec.shift == 0 and spec.length == 64:
        return words.copy()  # callers modify their values in place; windows are shared
    return _shift_and_mask(words, spec.shift, mask)


def _shift_and_mask(words: np.ndarray, shift: int, mask: np.uint64) -> np.ndarray:
    if shift == 0:
        return np.bitwise_and(words, mask)  # a new array: the shared window stays intact
    out = np.right_shift(words, _U64(shift))
    if shift + int(mask).bit_length() == 64:
        return out  # the field ends at the window's top bit: nothing above it to mask
    return np.bitwise_and(out, mask, out=out)


def _raw_values(raw: np.ndarray, signal: Signal) -> np.ndarray:
    """Reinterpret the unsigned field: two's complement, IEEE float, or plain unsigned."""
    if signal.is_float:
        if signal.length == 64:
            return raw.view(np.float64)
        # widening a signalling NaN raises the invalid flag; the value is a NaN either way
        with np.errstate(invalid="ignore"):
            if signal.length == 32:
                return raw.astype(np.uint32).view(np.float32).astype(np.float64)
            if signal.length == 16:
                return raw.astype(np.uint16).view(np.float16).astype(np.float64)
        raise InputError(f"signal {signal.name}: float signals must be 16, 32 or 64 bits")
    if signal.is_signed:
        if signal.length < 64:
            sign = _U64(1 << (signal.length - 1))
            np.bitwise_xor(raw, sign, out=raw)  # sign extension, modulo 2**64
            np.subtract(raw, sign, out=raw)
        return raw.view(np.int64)
    return raw


def _raw_range(signal: Signal) -> tuple[int, int]:
    if signal.is_signed:
        return -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    return 0, (1 << signal.length) - 1


def _int_dtype(low: int, high: int) -> type[np.integer] | None:
    if low >= -(1 << 63) and high < (1 << 63):
        return np.int64
    if low >= 0 and high < (1 << 64):
        return np.uint64
    return None


def _exact_int(raw: np.ndarray, signal: Signal, scale: int, offset: int) -> np.ndarray | None:
    """``raw * scale + offset`` with Python-int semantics, or None if it does not fit 64 bits."""
    low, high = _raw_range(signal)
    ends = (low * scale + offset, high * scale + offset)
    dtype = _int_dtype(min(ends), max(ends))
    if dtype is None:
        return None
    # modular arithmetic is exact whenever the true result is representable in the output type
    result = raw.view(np.uint64)
    if scale != 1:
        result = result * _U64(scale % (1 << 64))
    if offset != 0:
        result = result + _U64(offset % (1 << 64))
    return result.view(dtype)


def _conversion(signal: Signal) -> BaseConversion:
    # without choices: the same conversion object cantools uses after choice lookup fails
    return BaseConversion.factory(
        scale=signal.scale, offset=signal.offset, choices=None, is_float=signal.is_float
    )


def _physical(
    raw: np.ndarray, signal: Signal, conversion: BaseConversion | None = None
) -> np.ndarray:
    """Apply the conversion cantools applies for ``scaling=True, decode_choices=False``."""
    conversion = conversion or _conversion(signal)
    if isinstance(conversion, IdentityConversion):
        if raw.dtype == np.uint64 and signal.length < 64:
            return raw.view(np.int64)  # int64 columns unless the values need all 64 bits
        return raw
    if isinstance(conversion, LinearIntegerConversion):
        exact = _exact_int(raw, signal, conversion.scale, conversion.offset)
        if exact is not None:
            return exact
        return raw.astype(np.float64) * float(conversion.scale) + float(conversion.offset)
    scale, offset = conversion.scale, conversion.offset
    if isinstance(conversion, LinearConversion) and raw.dtype.kind in "iu" and _is_int(scale):
        # Python multiplies int * int exactly, then adds the float offset once
        product = _int_product_as_float(raw, signal, int(scale))
        if product is not None:
            return product + offset
    values = raw.astype(np.float64)  # Python converts the int to float, then multiplies
    np.multiply(values, scale, out=values)
    # "+ 0" matters only where the product can be -0.0 (it makes it 0.0, as in Python): a
    # float raw value, or a negative scale. An integer times a positive scale never is.
    if offset != 0 or raw.dtype.kind == "f" or not scale > 0:
        np.add(values, offset, out=values)
    return values


def _int_product_as_float(raw: np.ndarray, signal: Signal, scale: int) -> np.ndarray | None:
    """``float(raw * scale)`` rounded once, as Python does with its exact integer product."""
    exact = _exact_int(raw, signal, scale, 0)
    if exact is not None:
        return exact.astype(np.float64)
    if abs(scale) >= 1 << 20:
        return None
    # split raw = high * 2**32 + low: both partial products are exact doubles (< 2**53), so
    # their sum is the exact product rounded once
    high = (raw >> _U64(32)).view(np.int64) if raw.dtype == np.uint64 else raw >> np.int64(32)
    low = (raw.view(np.uint64) & _U64(0xFFFFFFFF)).view(np.int64)
    return (high * scale).astype(np.float64) * 2.0**32 + (low * scale).astype(np.float64)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- one message -----------------------------------------------------------------------------------


@dataclass
class _MessageCodec:
    """How one message decodes: its signals' bit fields, conversions and cantools' multiplexing.

    ``undecodable``: why no frame of it decodes (then its frames are only counted). ``broken``:
    multiplexed signals no decoder can decode, with why: frames carrying one are dropped and
    counted, as cantools raises on exactly those. ``wide``: a one-signal cantools message for every
    signal wider than 64 bits, decoded frame by frame (rare, and no numpy integer holds it;
    cantools gives Python ints, Arrow decimals keep them exact).
    """

    message: Message
    layout: MuxLayout
    fields: dict[str, _Field]
    conversions: dict[str, BaseConversion]
    types: dict[str, pa.DataType]
    undecodable: str | None = None
    broken: dict[str, str] = field(default_factory=dict)
    wide: dict[str, Message] = field(default_factory=dict)
    selected: bool = True  # decode it; otherwise only count its frames

    @classmethod
    def of(cls, message: Message, selected: bool = True) -> _MessageCodec:
        layout = mux_layout(message)
        reason = undecodable_reason(message, layout)
        broken = {} if reason else undecodable_signals(message, layout)
        conversions = {s.name: _conversion(s) for s in message.signals}
        fields, wide = {}, {}
        for signal in message.signals:
            if reason is not None or signal.name in broken:
                continue
            if signal.length > 64:
                wide[signal.name] = _single_signal_message(message, signal)
            else:
                fields[signal.name] = _Field.of(signal)
        types = {s.name: _column_type(s, conversions[s.name]) for s in message.signals}
        return cls(message, layout, fields, conversions, types, reason, broken, wide, selected)

    @property
    def why_undecoded(self) -> str | None:
        """Why frames of this message may not decode (``DecodeStats.undecoded``), or None."""
        if self.undecodable is not None:
            return self.undecodable
        reasons = []
        for name, reason in self.broken.items():
            switch, values = self.layout.conditions[name]
            reasons.append(f"{reason}, when {switch} is {', '.join(map(str, sorted(values)))}")
        return "; ".join(reasons) or None

    def decode(
        self, timestamps: np.ndarray, windows: _Windows
    ) -> tuple[dict[str, pa.Array], int, int]:
        """Columns for the rows behind ``windows``, the count of unknown multiplexer values and
        the count of rows dropped because they carry a signal no decoder can decode."""
        raws: dict[str, np.ndarray] = {}
        physical: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray | None] = {}
        columns: dict[str, pa.Array] = {"timestamp": pa.array(timestamps, type=pa.float64())}
        signals = {s.name: s for s in self.message.signals}
        decoded = set(self.layout.decoded)

        def selector_of(name: str) -> np.ndarray:
            """Multiplexer values as cantools compares them: int() of the *scaled* value."""
            values = physical_of(signals[name])
            return np.trunc(values) if values.dtype.kind == "f" else values

        def physical_of(signal: Signal) -> np.ndarray:
            if signal.name not in physical:
                conversion = self.conversions[signal.name]
                physical[signal.name] = _physical(raw_of(signal), signal, conversion)
            return physical[signal.name]

        def raw_of(signal: Signal) -> np.ndarray:
            if signal.name not in raws:
                raws[signal.name] = _raw_values(_extract(windows, self.fields[signal.name]), signal)
            return raws[signal.name]

        def present_of(name: str) -> np.ndarray | None:
            """Rows carrying signal ``name`` (None: all rows), following nested multiplexers."""
            if name in present:
                return present[name]
            rows = None
            condition = self.layout.conditions.get(name)
            if condition is not None:
                switch, ids = condition
                rows = _isin(selector_of(switch), ids)
                parent = present_of(switch)
                if parent is not None:
                    rows &= parent
            present[name] = rows
            return rows

        rows_total = timestamps.size
        dropped = None  # rows carrying a signal no decoder can decode (cantools raises on them)
        for name in self.broken:
            carrying = present_of(name)
            dropped = carrying.copy() if dropped is None else dropped | carrying
        for signal in self.message.signals:
            if signal.name not in decoded or signal.name in self.broken:
                # never decoded (its switch is not declared M), or never decodable: nulls
                columns[signal.name] = pa.nulls(rows_total, self.types[signal.name])
                continue
            rows = present_of(signal.name)
            if signal.name in self.wide:
                wanted = rows if dropped is None else ~dropped if rows is None else rows & ~dropped
                columns[signal.name] = self._wide_column(signal, windows, wanted)
                continue
            values = physical_of(signal)
            columns[signal.name] = _to_arrow(values, None if rows is None else ~rows)
        mux_unknown = self._mux_unknown(selector_of, present_of, dropped)
        if dropped is None or not dropped.any():
            return columns, mux_unknown, 0
        keep = pa.array(~dropped)
        return {k: v.filter(keep) for k, v in columns.items()}, mux_unknown, int(dropped.sum())

    def _wide_column(self, signal: Signal, windows: _Windows, rows: np.ndarray | None) -> pa.Array:
        """A signal wider than 64 bits, decoded by cantools frame by frame (exact Python ints)."""
        reference = self.wide[signal.name]
        length = self.message.length
        buffer = memoryview(windows.values)
        starts = windows.starts.tolist()
        values: list[object] = [None] * len(starts)
        for index in range(len(starts)) if rows is None else np.flatnonzero(rows).tolist():
            start = starts[index]
            payload = bytes(buffer[start : start + length])
            values[index] = reference.decode(payload, decode_choices=False)[signal.name]
        return pa.array(values, type=self.types[signal.name])

    def _mux_unknown(self, selector_of, present_of, dropped: np.ndarray | None) -> int:
        """Rows whose multiplexer value cantools knows no branch for (it raises on them)."""
        bad = None if dropped is None else np.zeros(dropped.shape, dtype=bool)
        for name, ids in self.layout.selectors.items():
            rows = ~_isin(selector_of(name), ids)
            parent = present_of(name)
            if parent is not None:
                rows &= parent
            bad = rows if bad is None else bad | rows
        if bad is not None and dropped is not None:
            bad &= ~dropped  # counted as undecodable already
        return 0 if bad is None else int(np.count_nonzero(bad))


def _single_signal_message(message: Message, signal: Signal) -> Message:
    """A cantools message holding only ``signal`` (not multiplexed): its reference decoder."""
    alone = Signal(
        signal.name,
        signal.start,
        signal.length,
        signal.byte_order,
        signal.is_signed,
        conversion=_conversion(signal),
    )
    return Message(
        message.frame_id,
        message.name,
        message.length,
        [alone],
        is_extended_frame=message.is_extended_frame,
        strict=False,
    )


def _column_type(signal: Signal, conversion: BaseConversion) -> pa.DataType:
    """The Arrow type of a signal's column: what the vectorized path gives, or for signals wider
    than 64 bits a decimal when cantools decodes them to ints (float64 otherwise)."""
    if signal.length > 64 or (signal.is_float and signal.length not in (16, 32, 64)):
        span = integer_range(signal)
        if span is None:
            return pa.float64()
        digits = max(len(str(abs(v))) for v in span)
        return pa.decimal128(38, 0) if digits <= 38 else pa.decimal256(76, 0)
    raw = _raw_values(np.zeros(0, dtype=_U64), signal)
    return pa.from_numpy_dtype(_physical(raw, signal, conversion).dtype)


def _isin(values: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    ids = sorted(set(ids))
    if not ids:
        return np.zeros(values.shape, dtype=bool)
    if ids == list(range(ids[0], ids[-1] + 1)):
        # the usual case (SG_MUL_VAL_ ranges): two comparisons instead of a set lookup
        return (values >= ids[0]) & (values <= ids[-1])
    return np.isin(values, np.asarray(ids))


def _to_arrow(values: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    if mask is None:
        return pa.array(values)
    return pa.array(values, mask=mask)


def _empty_columns(codec: _MessageCodec) -> dict[str, pa.Array]:
    columns = {"timestamp": pa.array([], type=pa.float64())}
    for signal in codec.message.signals:
        columns[signal.name] = pa.nulls(0, codec.types[signal.name])
    return columns


# -- the frame table -------------------------------------------------------------------------------


def decode_frames(
    frames: pa.Table,
    dbcs: DbcSet,
    *,
    only: Collection[str] | None = None,
    diagnostic: Collection[tuple[int, bool]] = (),
) -> DecodedLog:
    """Decode a frame table with a DBC set; ``only`` limits decoding to these message names.

    ``diagnostic``: ``(arbitration_id, is_extended_id)`` of the diagnostic ECUs' ISO-TP ids
    (:func:`bench.diag.log.diagnostic_ids`); their frames in no DBC are counted as
    ``diagnostic_frames``, not as unknown ids. Only ``timestamp``, ``arbitration_id``,
    ``is_extended_id`` and ``data`` are required; missing ``is_error_frame``/``is_remote_frame``
    columns mean false.
    """
    # every message is classified and counted (an unselected message is not an unknown id)
    codecs = [_MessageCodec.of(m, only is None or m.name in only) for m in dbcs.messages]
    for column in ("timestamp", "arbitration_id", "is_extended_id", "data"):
        if column not in frames.column_names:
            raise InputError(f"frame table: missing column {column!r}")
    stats = DecodeStats(
        messages={c.message.name: MessageStats() for c in codecs},
        undecoded={c.message.name: c.why_undecoded for c in codecs if c.why_undecoded},
    )
    parts: dict[str, list[dict[str, pa.Array]]] = {c.message.name: [] for c in codecs}
    table = frames.select([c for c in DECODE_COLUMNS if c in frames.column_names])
    if table.num_rows and table.num_rows / max(table.column(0).num_chunks, 1) < BATCH_FRAMES / 4:
        # many small chunks (e.g. recorder segments): fewer, larger batches; combine_chunks
        # still splits where a batch's binary data would pass Arrow's 2 GiB offsets
        table = table.combine_chunks()
    for batch in table.to_batches(max_chunksize=BATCH_FRAMES):
        if batch.num_rows:
            _decode_batch(batch, codecs, stats, parts, diagnostic)
    tables = {}
    for codec in codecs:
        if not codec.selected:
            continue
        name = codec.message.name
        chunks = parts[name] or [_empty_columns(codec)]
        tables[name] = pa.Table.from_batches(
            [pa.RecordBatch.from_pydict(chunk) for chunk in chunks]
        )
    return DecodedLog(tables, stats, dbcs)


# The frame columns decoding (and the checks' context: bench.checks.compact) read.
DECODE_COLUMNS = (
    "timestamp",
    "arbitration_id",
    "is_extended_id",
    "is_remote_frame",
    "is_error_frame",
    "data",
)


def _bool_column(batch: pa.RecordBatch, name: str, *, skip_all_false: bool = False):
    """The column as a numpy bool array; None if absent (or all false and ``skip_all_false``)."""
    if name not in batch.schema.names:
        return None
    column = batch.column(name)
    if column.null_count:
        column = column.fill_null(False)
    if skip_all_false and column.true_count == 0:
        return None  # the usual case for error/remote flags: no 10 M-element unpacking
    return column.to_numpy(zero_copy_only=False)


def _numeric_column(batch: pa.RecordBatch, name: str, dtype: pa.DataType) -> np.ndarray:
    column = batch.column(name)
    if not column.type.equals(dtype):
        try:
            column = column.cast(dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"frame table: column {name!r} is {column.type}, not {dtype}") from exc
    if column.null_count:
        column = column.fill_null(0)
    return column.to_numpy()


def _payload(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """(values buffer, offsets) of the ``data`` column, zero-copy."""
    data = batch.column("data")
    if not (pa.types.is_binary(data.type) or pa.types.is_large_binary(data.type)):
        try:
            data = data.cast(pa.binary())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"frame table: column 'data' is {data.type}, not binary") from exc
    offset_type = np.int64 if pa.types.is_large_binary(data.type) else np.int32
    _, offsets_buffer, values_buffer = data.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[
        data.offset : data.offset + len(data) + 1
    ]
    values = (
        np.frombuffer(values_buffer, dtype=np.uint8)
        if values_buffer is not None
        else np.zeros(0, np.uint8)
    )
    return values, offsets


def _frame_codes(ids: np.ndarray, extended: np.ndarray, codecs: list[_MessageCodec]) -> np.ndarray:
    """Index of each frame's message in ``codecs``; ``len(codecs)`` for unknown ids."""
    unknown = len(codecs)
    # uint8 codes when they fit: numpy's stable sort of 8-bit keys is a single radix pass
    code_type = np.uint8 if unknown + 3 <= 256 else np.int16
    lookup = np.full(_STD_ID_LIMIT, unknown, dtype=code_type)
    extended_keys = {}
    for index, codec in enumerate(codecs):
        if codec.message.is_extended_frame:
            extended_keys[codec.message.frame_id] = index
        elif codec.message.frame_id < _STD_ID_LIMIT:
            lookup[codec.message.frame_id] = index
    codes = lookup[ids & (_STD_ID_LIMIT - 1)]
    codes[ids >= _STD_ID_LIMIT] = unknown  # an invalid 11-bit id, or an extended frame
    rows = np.flatnonzero(extended)
    if rows.size:
        keys = np.array(sorted(extended_keys), dtype=np.uint32)
        values = np.array([extended_keys[k] for k in sorted(extended_keys)], dtype=code_type)
        found = np.full(rows.size, unknown, dtype=code_type)
        if keys.size:
            where = np.minimum(np.searchsorted(keys, ids[rows]), keys.size - 1)
            hit = keys[where] == ids[rows]
            found[hit] = values[where[hit]]
        codes[rows] = found
    return codes


def _length_mismatches(
    offsets: np.ndarray, codes: np.ndarray, codecs: list[_MessageCodec]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows shorter than their message, and per-message counts of short and long rows.

    Whole-column passes against a per-code length table: cheaper than gathering every
    message's lengths, and the usual answer ("none") needs no per-message work at all.
    """
    expected = np.zeros(len(codecs) + 3, dtype=np.int64)  # unknown/error/remote: never short
    expected[: len(codecs)] = [codec.message.length for codec in codecs]
    lengths = np.diff(offsets)
    required = expected.astype(lengths.dtype)[codes]
    short = lengths < required
    slots = len(expected)
    short_counts = (
        np.bincount(codes[short], minlength=slots) if short.any() else np.zeros(slots, np.int64)
    )
    long = lengths > required
    long[codes >= len(codecs)] = False
    long_counts = (
        np.bincount(codes[long], minlength=slots) if long.any() else np.zeros(slots, np.int64)
    )
    return short, short_counts, long_counts


def _decode_batch(
    batch: pa.RecordBatch,
    codecs: list[_MessageCodec],
    stats: DecodeStats,
    parts: dict[str, list[dict[str, pa.Array]]],
    diagnostic: Collection[tuple[int, bool]] = (),
) -> None:
    n = batch.num_rows
    timestamps = _numeric_column(batch, "timestamp", pa.float64())
    ids = _numeric_column(batch, "arbitration_id", pa.uint32())
    extended = _bool_column(batch, "is_extended_id")
    codes = _frame_codes(ids, extended, codecs)
    unknown, error, remote = len(codecs), len(codecs) + 1, len(codecs) + 2
    error_rows = _bool_column(batch, "is_error_frame", skip_all_false=True)
    remote_rows = _bool_column(batch, "is_remote_frame", skip_all_false=True)
    if remote_rows is not None:
        codes[remote_rows] = remote
    if error_rows is not None:
        codes[error_rows] = error
    # stable radix sort of small ints: every message's rows contiguous and in frame order
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=remote + 1)
    bounds = np.concatenate(([0], np.cumsum(counts)))

    stats.total_frames += n
    stats.error_frames += int(counts[error])
    stats.remote_frames += int(counts[remote])
    if counts[unknown]:
        rows = order[bounds[unknown] : bounds[unknown + 1]]
        if diagnostic:  # a few hundred ISO-TP frames among the unknown ones: drop them here
            is_diag = np.zeros(rows.size, dtype=bool)
            row_ext = extended[rows] if extended is not None else np.zeros(rows.size, dtype=bool)
            for can_id, is_ext in diagnostic:
                is_diag |= (ids[rows] == can_id) & (row_ext == is_ext)
            stats.diagnostic_frames += int(np.count_nonzero(is_diag))
            rows = rows[~is_diag]
        unknown_ids, unknown_counts = np.unique(ids[rows], return_counts=True)
        for key, count in zip(unknown_ids.tolist(), unknown_counts.tolist(), strict=True):
            stats.unknown_ids[key] = stats.unknown_ids.get(key, 0) + count

    values, offsets = _payload(batch)
    short_rows, short_counts, long_counts = _length_mismatches(offsets, codes, codecs)
    for index, codec in enumerate(codecs):
        if not counts[index]:
            continue
        rows = order[bounds[index] : bounds[index + 1]]
        message_stats = stats.messages[codec.message.name]
        message_stats.frames += rows.size
        message_stats.short += int(short_counts[index])
        message_stats.long += int(long_counts[index])
        if not codec.selected:
            continue
        if codec.undecodable:
            message_stats.undecodable += rows.size - int(short_counts[index])
            continue
        if short_counts[index]:
            rows = rows[~short_rows[rows]]
            if not rows.size:
                continue
        starts = offsets[:-1][rows]
        columns, mux_unknown, undecodable = codec.decode(timestamps[rows], _Windows(values, starts))
        message_stats.mux_unknown += mux_unknown
        message_stats.undecodable += undecodable
        parts[codec.message.name].append(columns)
