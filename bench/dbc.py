"""The DBC set of a plan: load several DBC files, look up ``Message.Signal``, cycle times, choices.

cantools parses the files (it is the reference for DBC semantics); this module adds what a plan
needs on top: one namespace over several files, lookups with "did you mean" suggestions, and
errors that name the file, line and column instead of a traceback.

Files load the way engineers' tools load them: cantools ``strict=False``. Whatever cantools'
strict mode would refuse (overlapping signals, a signal that does not fit its message) and
whatever is ambiguous or not decodable as written becomes a :class:`DbcWarning` naming the file,
the message and the signals (``DbcSet.warnings``; ``bench dbc`` and ``bench validate`` print them,
``DbcSet.load(strict=True)`` / ``bench dbc --strict`` refuse the strict-mode ones).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cantools
from cantools.database.can import Database, Message, Signal

from .dbc_layout import DbcWarning, marked_multiplexed, message_warnings
from .errors import InputError, one_line

DEFAULT_DBC_DIR = Path(__file__).resolve().parent.parent / "dbc"
DEFAULT_DBC_FILES = ("battery.dbc", "motor.dbc", "vehicle.dbc")

_CANTOOLS_PLACE = re.compile(r"line (\d+), column (\d+): (.*)", re.S)


def default_dbc_paths() -> list[Path]:
    return [DEFAULT_DBC_DIR / name for name in DEFAULT_DBC_FILES]


def suggest(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# Parsed databases by the sha256 of their file's bytes: a campaign judges hundreds of run
# directories that each hold a copy of the same DBC files, and the report loads them once more;
# cantools takes ~15 ms per file to parse, hashing its bytes ~20 µs. Keyed by content (not path
# and mtime) so a copy hits and an edited file in place never does. Databases are treated as
# read-only everywhere in bench, so sharing one is safe.
_PARSED: dict[bytes, Database] = {}
_PARSED_MAX = 32


def load_dbc_file(path: Path) -> Database:
    """Parse one DBC file non-strictly; a syntax error is an :class:`InputError` naming the place.

    Non-strict, as CANdb++ and cantools' ``strict=False`` load it: overlapping signals and signals
    that do not fit their message load (:func:`dbc_warnings` names them). Only what cantools
    cannot load at all (syntax, an 11-bit id above 0x7FF, a zero-length signal) is refused.
    A file whose bytes were parsed before in this process gives that same (read-only) database.
    """
    if not path.is_file():
        raise InputError(f"{path}: DBC file not found")
    try:
        key = hashlib.sha256(path.read_bytes()).digest()
    except OSError as exc:
        raise InputError(f"{path}: cannot read DBC file: {one_line(exc)}") from None
    database = _PARSED.get(key)
    if database is None:
        database = _parse_dbc_file(path)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))  # the oldest
        _PARSED[key] = database
    return database


def _parse_dbc_file(path: Path) -> Database:
    try:
        return cantools.database.load_file(str(path), database_format="dbc", strict=False)
    except cantools.database.UnsupportedDatabaseFormatError as exc:
        raise InputError(_describe_parse_error(path, exc)) from None
    except (cantools.database.Error, ValueError, KeyError, IndexError) as exc:
        raise InputError(f"{path}: not a valid DBC: {one_line(exc)}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text DBC file ({exc.reason})") from None


def _describe_parse_error(path: Path, exc: Exception) -> str:
    text = str(exc)
    text = text.removeprefix('DBC: "').removesuffix('"')
    match = _CANTOOLS_PLACE.search(text)
    if match:
        line, column, rest = match.groups()
        near = one_line(rest.split(">>!<<", 1)[-1])[:40].strip('" ')
        where = f" near {near!r}" if near else ""
        return f"{path}:{line}:{column}: invalid DBC syntax{where}"
    return f"{path}: not a valid DBC: {one_line(text)}"


@dataclass(frozen=True)
class SignalRef:
    """A resolved ``Message.Signal`` reference."""

    message: Message
    signal: Signal

    @property
    def name(self) -> str:
        return f"{self.message.name}.{self.signal.name}"


class DbcSet:
    """Several DBC files seen as one set of messages, unique by name and by frame id.

    ``warnings``: every :class:`DbcWarning` of the files, in file and message order.
    """

    def __init__(self, databases: Sequence[tuple[Path, Database]]) -> None:
        self.paths: tuple[Path, ...] = tuple(path for path, _ in databases)
        self._by_name: dict[str, Message] = {}
        self._by_id: dict[tuple[int, bool], Message] = {}
        self._source: dict[str, Path] = {}
        self.warnings: list[DbcWarning] = []
        for path, database in databases:
            marked = marked_multiplexed(path)
            for message in database.messages:
                self._add(path, message)
                self.warnings.extend(message_warnings(path, message, marked))

    def _add(self, path: Path, message: Message) -> None:
        if message.name in self._by_name:
            other = self._source[message.name]
            raise InputError(f"{path}: message {message.name!r} is also defined in {other}")
        key = (message.frame_id, message.is_extended_frame)
        if key in self._by_id:
            other = self._by_id[key]
            raise InputError(
                f"{path}: message {message.name!r} has frame id 0x{message.frame_id:X}, "
                f"already used by {other.name!r} in {self._source[other.name]}"
            )
        self._by_name[message.name] = message
        self._by_id[key] = message
        self._source[message.name] = path

    @classmethod
    def load(cls, paths: Iterable[str | Path] | None = None, *, strict: bool = False) -> DbcSet:
        """Load the given DBC files, or the project's three default ones.

        ``strict``: refuse (:class:`InputError`, the first problem and how many more) what
        cantools' ``strict=True`` refuses; the warnings of non-strict loading otherwise.
        """
        resolved = [Path(p) for p in paths] if paths else default_dbc_paths()
        if not resolved:
            raise InputError("no DBC file given")
        dbcs = cls([(path, load_dbc_file(path)) for path in resolved])
        refused = [w for w in dbcs.warnings if w.strict]
        if strict and refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise InputError(f"{refused[0].problem()}{more}: refused by strict loading")
        return dbcs

    # -- lookups ---------------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        return sorted(self._by_name.values(), key=lambda m: (m.is_extended_frame, m.frame_id))

    def source(self, message: Message | str) -> Path:
        name = message if isinstance(message, str) else message.name
        return self._source[name]

    def has_message(self, name: str) -> bool:
        return name in self._by_name

    def message(self, name: str) -> Message:
        """The message called ``name``; KeyError with a suggestion if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown message {name!r}{suggest(name, self._by_name)}") from None

    def message_by_id(self, frame_id: int, is_extended: bool = False) -> Message | None:
        return self._by_id.get((frame_id, is_extended))

    def signal(self, reference: str) -> SignalRef:
        """Resolve ``Message.Signal``; KeyError naming what is wrong, with a suggestion."""
        message_name, dot, signal_name = reference.partition(".")
        if not dot or not message_name or not signal_name:
            raise KeyError(f"expected 'Message.Signal', got {reference!r}")
        message = self.message(message_name)
        names = [s.name for s in message.signals]
        if signal_name not in names:
            raise KeyError(f"unknown signal {reference!r}{suggest(signal_name, names)}")
        return SignalRef(message, message.get_signal_by_name(signal_name))

    # -- timing ----------------------------------------------------------------------------------

    @staticmethod
    def cycle_time_s(message: Message) -> float | None:
        """``GenMsgCycleTime`` in seconds, or None for messages that are not sent cyclically."""
        if message.cycle_time is None or message.cycle_time <= 0:
            return None
        return message.cycle_time / 1000.0

    @staticmethod
    def send_type(message: Message) -> str | None:
        return message.send_type

    @staticmethod
    def is_cyclic(message: Message) -> bool:
        return DbcSet.cycle_time_s(message) is not None and (message.send_type or "Cyclic") in (
            "Cyclic",
            "CyclicIfActive",
            "CyclicAndEvent",
        )

    # -- description -----------------------------------------------------------------------------

    def describe(self) -> list[dict]:
        """Everything ``bench dbc`` shows, as plain data (also its ``--json`` form)."""
        return [describe_message(m, self.source(m)) for m in self.messages]


def describe_message(message: Message, source: Path | None = None) -> dict:
    multiplexers = {s.name for s in message.signals if s.is_multiplexer}
    return {
        "name": message.name,
        "frame_id": message.frame_id,
        "frame_id_hex": f"0x{message.frame_id:X}",
        "is_extended_id": message.is_extended_frame,
        "is_fd": message.is_fd,
        "length": message.length,
        "cycle_time_ms": message.cycle_time or None,
        "send_type": message.send_type,
        "senders": list(message.senders),
        "comment": message.comment,
        "source": source.name if source else None,
        "multiplexed": bool(multiplexers),
        "signals": [describe_signal(s) for s in message.signals],
    }


def describe_signal(signal: Signal) -> dict:
    return {
        "name": signal.name,
        "start": signal.start,
        "length": signal.length,
        "byte_order": signal.byte_order,
        "is_signed": signal.is_signed,
        "is_float": signal.is_float,
        "scale": signal.scale,
        "offset": signal.offset,
        "minimum": signal.minimum,
        "maximum": signal.maximum,
        "unit": signal.unit or "",
        "receivers": list(signal.receivers),
        "choices": {int(k): str(v) for k, v in (signal.choices or {}).items()},
        "is_multiplexer": signal.is_multiplexer,
        "multiplexer_signal": signal.multiplexer_signal,
        "multiplexer_ids": list(signal.multiplexer_ids or []) or None,
        "comment": signal.comment,
    }
