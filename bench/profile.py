"""Bench profiles (``bench.toml``): the buses and instruments of one physical bench.

A plan names *what* to do; the profile says *where*: which python-can interface and channel each
bus is on, which DBCs it carries, and on which serial port each instrument answers. The same plan
thus runs on the virtual vehicle, on vcan and on a bench. The path comes from ``--bench`` or the
``BENCH_CONFIG`` environment variable.

Layout (``examples/bench.toml`` is a complete one)::

    name = "Bench 3, Heihe rig"

    [buses.battery]                 # the table key is the bus name
    interface = "socketcan"         # any python-can interface (can.interfaces.VALID_INTERFACES)
    channel = "can0"
    bitrate = 500000
    dbc = ["../dbc/battery.dbc"]    # relative to this file

    [buses.motor]
    interface = "pcan"
    channel = "PCAN_USBBUS1"
    bitrate = 500000
    data_bitrate = 2000000          # CAN FD; implies fd = true
    dbc = ["../dbc/motor.dbc"]
    options = {timing_clock = 80000000}   # passed on to can.Bus as is

    [diagnostics.BMS]               # UDS addressing of an ECU (bench diag, diag: steps)
    addressing = "normal_fixed_29bit"   # or normal_11bit (default)
    request_id = 0x18DA40F1
    response_id = 0x18DAF140

    [instruments.chamber]
    driver = "chamber"              # chamber | power_supply
    port = "/dev/ttyUSB0"
    baudrate = 9600                 # default 9600
    timeout_s = 1.0                 # per try; default 1.0
    retries = 2                     # extra tries after silence; default 2

Errors are :class:`~bench.errors.InputError` naming the file, the line (tomllib's for syntax; for
a wrong value the line of its key, found by a small scan of the text) and the key path, e.g.
``bench.toml:9: buses.motor.bitrate: Input should be a valid integer, got '500k'``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from can.interfaces import VALID_INTERFACES
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .dbc import suggest
from .errors import InputError

PROFILE_ENV = "BENCH_CONFIG"

_M = TypeVar("_M", bound=BaseModel)

OptionValue = StrictStr | StrictInt | StrictFloat | StrictBool


class _Strict(BaseModel):
    # TOML has real types: "500000" in quotes is a mistake worth naming, not something to coerce.
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusProfile(_Strict):
    """One CAN bus of the bench and the DBCs whose messages travel on it."""

    name: StrictStr
    interface: StrictStr
    channel: StrictStr
    bitrate: StrictInt | None = Field(default=None, gt=0)
    data_bitrate: StrictInt | None = Field(default=None, gt=0)
    fd: StrictBool = False
    dbc: list[Path] = Field(default_factory=list)
    options: dict[str, OptionValue] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _fd_from_data_bitrate(cls, data: Any) -> Any:
        # A data bit rate only means something on CAN FD: saying it is enough.
        if isinstance(data, dict) and data.get("data_bitrate") is not None and "fd" not in data:
            return {**data, "fd": True}
        return data

    @field_validator("channel", mode="before")
    @classmethod
    def _channel_number(cls, value: Any) -> Any:
        # Kvaser/IXXAT channels are numbers; python-can takes them as text as well.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("interface")
    @classmethod
    def _known_interface(cls, value: str) -> str:
        if value not in VALID_INTERFACES:
            raise ValueError(
                f"unknown python-can interface {value!r}{suggest(value, VALID_INTERFACES)}"
            )
        return value

    @field_validator("dbc", mode="before")
    @classmethod
    def _dbc_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]  # one file needs no brackets
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise ValueError("must be a list of file paths (strings)")
        return value

    @model_validator(mode="after")
    def _fd_consistent(self) -> BusProfile:
        if self.data_bitrate is not None and not self.fd:
            raise ValueError("data_bitrate is set but fd = false: a data bit rate needs CAN FD")
        return self

    def can_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``can.Bus``: interface, channel, bit rates, FD, then options."""
        kwargs: dict[str, Any] = {"interface": self.interface, "channel": self.channel}
        if self.bitrate is not None:
            kwargs["bitrate"] = self.bitrate
        if self.fd:
            kwargs["fd"] = True
        if self.data_bitrate is not None:
            kwargs["data_bitrate"] = self.data_bitrate
        kwargs.update(self.options)
        return kwargs


class InstrumentProfile(_Strict):
    """One serial instrument of the bench."""

    name: StrictStr
    driver: Literal["chamber", "power_supply"]
    port: StrictStr
    baudrate: StrictInt = Field(default=9600, gt=0)
    timeout_s: StrictFloat = Field(default=1.0, gt=0)
    retries: StrictInt = Field(default=2, ge=0)


class DiagnosticProfile(_Strict):
    """One ECU's UDS addressing on this bench (over bench.diag.catalog's and the plan's)."""

    name: StrictStr
    request_id: StrictInt | None = Field(default=None, ge=0, le=0x1FFFFFFF)
    response_id: StrictInt | None = Field(default=None, ge=0, le=0x1FFFFFFF)
    addressing: Literal["normal_11bit", "normal_fixed_29bit"] | None = None


class BenchProfile(_Strict):
    """A whole ``bench.toml``: its buses and instruments, and where it was read from."""

    name: StrictStr
    buses: list[BusProfile] = Field(default_factory=list)
    instruments: list[InstrumentProfile] = Field(default_factory=list)
    diagnostics: list[DiagnosticProfile] = Field(default_factory=list)
    path: Path

    def diagnostic_addressing(self) -> dict[str, DiagnosticProfile]:
        """ECU name -> its addressing on this bench (for bench.diag.catalog.with_addressing)."""
        return {d.name: d for d in self.diagnostics}

    def bus(self, name: str) -> BusProfile:
        for bus in self.buses:
            if bus.name == name:
                return bus
        names = [bus.name for bus in self.buses]
        raise InputError(f"{self.path}: no bus {name!r}{suggest(name, names)}")

    def instrument(self, name: str) -> InstrumentProfile:
        for instrument in self.instruments:
            if instrument.name == name:
                return instrument
        names = [instrument.name for instrument in self.instruments]
        raise InputError(f"{self.path}: no instrument {name!r}{suggest(name, names)}")

    def dbc_paths(self) -> list[Path]:
        """Every DBC of every bus, each once, in file order."""
        return list(dict.fromkeys(path for bus in self.buses for path in bus.dbc))


class _ProfileFile(_Strict):
    """The top level of the file, before each table is validated on its own."""

    name: StrictStr | None = None
    buses: dict[str, dict[str, Any]] = Field(default_factory=dict)
    instruments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    diagnostics: dict[str, dict[str, Any]] = Field(default_factory=dict)


# -- loading -------------------------------------------------------------------------------------


def load_profile(path: Path | None = None) -> BenchProfile | None:
    """Read the bench profile at ``path``, else at ``$BENCH_CONFIG``; None when neither is given."""
    origin = ""
    if path is None:
        value = os.environ.get(PROFILE_ENV, "").strip()
        if not value:
            return None
        path, origin = Path(value), f" (from {PROFILE_ENV})"
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: bench profile not found{origin}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read bench profile: {exc}") from None
    return parse_profile(text, path)


def parse_profile(text: str, path: Path) -> BenchProfile:
    """Validate the text of a ``bench.toml`` read from ``path`` (DBCs are relative to it)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(_toml_syntax_error(path, exc)) from None
    lines = _key_lines(text)
    top = _validated(_ProfileFile, data, (), path, lines)
    buses = [
        _resolve_dbcs(_table(BusProfile, "buses", key, table, path, lines), path, lines)
        for key, table in top.buses.items()
    ]
    instruments = [
        _table(InstrumentProfile, "instruments", key, table, path, lines)
        for key, table in top.instruments.items()
    ]
    diagnostics = [
        _addressing(_table(DiagnosticProfile, "diagnostics", key, table, path, lines), path, lines)
        for key, table in top.diagnostics.items()
    ]
    return BenchProfile(
        name=top.name or path.stem,
        buses=buses,
        instruments=instruments,
        diagnostics=diagnostics,
        path=path,
    )


def _addressing(spec: DiagnosticProfile, path: Path, lines: dict) -> DiagnosticProfile:
    """Ids that fit the addressing (and both ids for an ECU the catalog does not know)."""
    from .diag.catalog import virtual_vehicle_ecus, with_addressing

    try:
        with_addressing(virtual_vehicle_ecus(), {spec.name: spec})
    except ValueError as exc:
        raise InputError(_place(path, lines, ("diagnostics", spec.name)) + str(exc)) from None
    return spec


def _table(
    model: type[_M], group: str, key: str, table: dict[str, Any], path: Path, lines: dict
) -> _M:
    """Validate ``[group.key]``: the table key becomes the name, errors carry the key path."""
    where = (group, key)
    if "name" in table:
        raise InputError(
            _place(path, lines, (*where, "name"))
            + f"unknown key (the table key is the name: [{group}.{key}])"
        )
    return _validated(model, {**table, "name": key}, where, path, lines)


def _validated(model: type[_M], data: Any, prefix: tuple[str, ...], path: Path, lines: dict) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(_describe(exc, model, prefix, path, lines)) from None


def _describe(
    exc: ValidationError, model: type[BaseModel], prefix: tuple[str, ...], path: Path, lines: dict
) -> str:
    # An unknown key first: it is usually the misspelling of the key reported missing.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(str(part) for part in first["loc"])
    key_path = (*prefix, *loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        reason = "unknown key" + suggest(loc[-1], model.model_fields)
    elif kind == "missing":
        reason = "missing key"
        key_path = (*prefix, *loc)
    else:
        reason = first["msg"].removeprefix("Value error, ")
        if kind not in ("value_error", "assertion_error"):
            reason += f", got {first['input']!r}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    place = _place(path, lines, key_path, missing=kind == "missing")
    return f"{place}{reason}{more}"


def _place(
    path: Path, lines: dict[tuple[str, ...], int], key_path: tuple[str, ...], missing: bool = False
) -> str:
    """``file:line: a.b.c: `` with the line of the key, or of its nearest enclosing table."""
    dotted = ".".join(key_path) or "top level"
    search = key_path[:-1] if missing else key_path
    for end in range(len(search), -1, -1):
        line = lines.get(tuple(search[:end]))
        if line is not None:
            return f"{path}:{line}: {dotted}: "
    return f"{path}: {dotted}: "


def _resolve_dbcs(bus: BusProfile, path: Path, lines: dict) -> BusProfile:
    resolved: list[Path] = []
    for dbc in bus.dbc:
        full = dbc if dbc.is_absolute() else (path.parent / dbc)
        if not full.is_file():
            place = _place(path, lines, ("buses", bus.name, "dbc"))
            raise InputError(f"{place}DBC file not found: {dbc} (looked at {full.resolve()})")
        resolved.append(full.resolve())
    return bus.model_copy(update={"dbc": resolved})


_TOML_PLACE = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)$", re.S)
_TOML_END = re.compile(r"^(.*?)\s*\(at end of document\)$", re.S)


def _toml_syntax_error(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    text = str(exc)
    match = _TOML_PLACE.match(text)
    if match:
        reason, line, column = match.groups()
        return f"{path}:{line}:{column}: invalid TOML: {reason}"
    match = _TOML_END.match(text)
    if match:
        return f"{path}: invalid TOML at end of file: {match.group(1)}"
    return f"{path}: invalid TOML: {text}"


# -- where is a key? ---------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*(?P<name>[^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGNMENT = re.compile(r"^\s*(?P<key>[A-Za-z0-9_\-\"'. ]+?)\s*=")


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each table header and ``key =`` line to its 1-based line number.

    Enough for error messages, not a TOML parser: keys inside inline tables and multi-line
    strings are not seen, and then the message points at the enclosing table instead.
    """
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group("name"))
            # [a.b] also defines a (implicitly): an error about "a" points here too.
            for end in range(1, len(table) + 1):
                found.setdefault(table[:end], number)
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            found.setdefault((*table, *_dotted(assignment.group("key"))), number)
    return found


def _dotted(key: str) -> tuple[str, ...]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', key)
    return tuple(next(part for part in groups if part) if any(groups) else "" for groups in parts)
