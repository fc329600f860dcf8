"""What a plan means against its DBCs and itself: names, choices, ranges, cross references.

Runs after the models accepted the shape. Each problem is a :class:`Problem` naming the path into
the plan's data (``("steps", 2, "send", "signals", "KeyOn")``); the loader turns the path into
``file:line:column``. Items are checked one by one so that a plan with a broken step still gets
every other problem reported in the same run of ``bench validate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cantools.database.can import Message, Signal

from ..checks.diagnostic import DiagnosticCheck
from ..checks.kinds import KINDS
from ..checks.spec import select_steps
from ..dbc import DbcSet, suggest
from ..dbc_layout import IEEE_FLOAT_LENGTHS
from ..diag.catalog import Ecu
from ..e2e import COUNTER_SIGNAL, CRC_SIGNAL
from ..errors import InputError
from .checks import CheckSpec, ReachesCheck
from .conditions import Condition, ConditionError, SignalName
from .drive_cycle import profile_problem
from .model import (
    AMBIENT_SIGNALS,
    CHARGE_SIGNALS,
    RUN_EVENTS,
    DiagSpec,
    FaultSpec,
    Frame,
    RampSpec,
    Step,
)
from .yaml_source import Loc


@dataclass(frozen=True)
class Problem:
    """One problem: where (a path into the plan data), what, and which node to point at."""

    loc: Loc
    message: str
    at: Literal["value", "key"] = "value"
    offset: int | None = None  # into the string value (conditions: the bad token)
    related: Loc | None = None  # e.g. the first of two duplicates: "(first at line N)"


class Validator:
    """Checks plan items against the DBCs (None: DBCs unusable, skip those checks)."""

    def __init__(
        self,
        dbcs: DbcSet | None,
        base: Path,
        step_names: Sequence[str] | None,
        check_names: Sequence[str] | None,
        fd: bool | None = None,
        ecus: dict[str, Ecu] | None = None,
    ) -> None:
        self.dbcs = dbcs
        # The plan's diagnostic ECUs (bench.diag.catalog.plan_ecus); None: its diagnostics:
        # section is broken (reported there), skip ECU/DID names.
        self.ecus = ecus
        self.fd = fd  # the plan's bus.fd; None: unknown (bus is broken), skip the FD check
        self.base = base
        self.step_names = step_names  # None: unknown (a step is broken), skip references
        self.check_names = check_names

    # -- steps -----------------------------------------------------------------------------------

    def step(self, index: int, step: Step) -> list[Problem]:
        loc: Loc = ("steps", index)
        problems: list[Problem] = []
        if step.drive_cycle is not None:
            problems += self._profile((*loc, "drive_cycle", "profile"), step.drive_cycle.profile)
        if step.diag is not None:
            problems += self._diag((*loc, "diag"), step.diag)
        if self.dbcs is None:
            return problems
        if step.until is not None:
            problems += self._condition((*loc, "until"), step.until)
        if step.send is not None:
            problems += self.frame((*loc, "send"), step.send)
        if step.ramp is not None:
            problems += self._ramp((*loc, "ramp"), step.ramp)
        for position, name in enumerate(step.stop):
            problems += self._message((*loc, "stop", position), name)
        from_drive = {"road_grade_pct": "grade_pct", "headwind_kmh": "headwind_kmh"}
        for key, value in step.environment.items():
            where = (*loc, key)
            drive_key = from_drive.get(key, "")
            if step.drive is not None and getattr(step.drive, drive_key, None) is not None:
                where = (*loc, "drive", drive_key)
            problems += self._fixed_signal(where, AMBIENT_SIGNALS[key], value)
        if step.charge is not None:
            for key, reference in CHARGE_SIGNALS.items():
                value = getattr(step.charge, key)
                if value is not None:
                    problems += self._fixed_signal((*loc, "charge", key), reference, value)
        return problems

    def _diag(self, loc: Loc, diag: DiagSpec) -> list[Problem]:
        """Every ECU known (catalog or diagnostics: section), every DID known to each ECU."""
        if self.ecus is None:
            return []
        problems: list[Problem] = []
        known = [name for name in diag.ecu if name in self.ecus]
        for position, name in enumerate(diag.ecu):
            if name not in self.ecus:
                problems.append(
                    Problem(
                        (*loc, "ecu", position),
                        f"unknown ECU {name!r}{suggest(name, self.ecus)}; known: "
                        f"{', '.join(self.ecus)} (others go in the plan's diagnostics: section)",
                    )
                )
        for position, did in enumerate(diag.read_dids):
            # Each ECU reads the DIDs it has (pack_soh on the BMS, software_version on both):
            # a DID none of the step's ECUs has is a mistake.
            if known and not any(_has_did(self.ecus[name], did) for name in known):
                names = list(dict.fromkeys(d.name for n in known for d in self.ecus[n].dids))
                problems.append(
                    Problem(
                        (*loc, "read_dids", position),
                        f"no DID {did!r} on {', '.join(known)}{suggest(did, names)}; "
                        f"known: {', '.join(names)}",
                    )
                )
        return problems

    def step_names_unique(self, names: Sequence[str]) -> list[Problem]:
        problems = _duplicates("steps", names, "step")
        for index, name in enumerate(names):
            if name in RUN_EVENTS:  # `after: run_start` must mean one thing
                problems.append(
                    Problem(
                        ("steps", index, "name"), f"step name {name!r} is reserved for an event"
                    )
                )
        return problems

    def step_order(self, steps: Sequence[Step]) -> list[Problem]:
        """``stop`` only ends a periodic send that an earlier step started."""
        problems: list[Problem] = []
        running: set[str] = set()
        for index, step in enumerate(steps):
            for position, name in enumerate(step.stop):
                if name not in running:
                    problems.append(
                        Problem(
                            ("steps", index, "stop", position),
                            f"stop {name!r}: no periodic send of it was started by an earlier step",
                        )
                    )
                running.discard(name)
            if step.send is not None and step.send.every is not None:
                running.add(step.send.message)
        return problems

    def _profile(self, loc: Loc, profile: str) -> list[Problem]:
        wrong = profile_problem(profile, self.base)
        return [Problem(loc, wrong)] if wrong else []

    def _ramp(self, loc: Loc, ramp: RampSpec) -> list[Problem]:
        message = self._lookup_message((*loc, "message"), ramp.message)
        if isinstance(message, Problem):
            return [message]
        sendable = self._sendable((*loc, "message"), message)
        if sendable:
            return sendable
        signal = _signal_of(message, ramp.signal)
        if signal is None:
            return [Problem((*loc, "signal"), _unknown_signal(message, ramp.signal))]
        if message.is_multiplexed():
            return [Problem((*loc, "message"), f"{message.name} is multiplexed: ramp a plain one")]
        if signal.name in (COUNTER_SIGNAL, CRC_SIGNAL):
            return [Problem((*loc, "signal"), _e2e_message(signal.name))]
        problems = []
        for key, value in (("from", ramp.from_), ("to", ramp.to)):
            wrong = value_problem(message, signal, value)
            if wrong:
                problems.append(Problem((*loc, key), wrong))
        return problems

    def _fixed_signal(self, loc: Loc, reference: str, value: float) -> list[Problem]:
        # Only when the DBC set has the message the runner uses for this key.
        assert self.dbcs is not None
        message_name, _, signal_name = reference.partition(".")
        if not self.dbcs.has_message(message_name):
            return []
        message = self.dbcs.message(message_name)
        signal = _signal_of(message, signal_name)
        wrong = value_problem(message, signal, value) if signal is not None else None
        return [Problem(loc, wrong)] if wrong else []

    # -- frames ----------------------------------------------------------------------------------

    def frame(self, loc: Loc, frame: Frame) -> list[Problem]:
        """A ``send`` or ``safe_state`` frame: message, signal names and values."""
        if self.dbcs is None:
            return []
        message = self._lookup_message((*loc, "message"), frame.message)
        if isinstance(message, Problem):
            return [message]
        problems = self._sendable((*loc, "message"), message)
        problems += _multiplexing(loc, message, frame)
        for name, value in frame.signals.items():
            signal_loc = (*loc, "signals", name)
            signal = _signal_of(message, name)
            if signal is None:
                problems.append(Problem(signal_loc, _unknown_signal(message, name), at="key"))
            elif name in (COUNTER_SIGNAL, CRC_SIGNAL):
                problems.append(Problem(signal_loc, _e2e_message(name), at="key"))
            else:
                wrong = value_problem(message, signal, value)
                if wrong:
                    problems.append(Problem(signal_loc, wrong))
        return problems

    # -- checks ----------------------------------------------------------------------------------

    def check(self, index: int, check: CheckSpec) -> list[Problem]:
        loc: Loc = ("checks", index)
        problems: list[Problem] = []
        if self.dbcs is not None:
            for field, kind, name in check.references():
                if kind == "signal":
                    problems += self._signal((*loc, field), name)
                else:
                    problems += self._message((*loc, field), name)
            if not problems:  # a condition on an unknown subject would only repeat the problem
                for field, condition in check.conditions():
                    problems += self._condition((*loc, field), condition)
            if not problems:  # what evaluation could only call `error`, said now (issue 10)
                kind = KINDS.get(check.kind)
                if kind is not None and kind.validate is not None:
                    problems += [
                        Problem((*loc, f), why) for f, why in kind.validate(check, self.dbcs)
                    ]
        problems += self._step_references(loc, check)
        if isinstance(check, DiagnosticCheck) and self.ecus is not None:
            problems += [
                Problem((*loc, *path), why)
                for path, why in check.diagnostic_problems(dict(self.ecus))
            ]
        return problems

    def _step_references(self, loc: Loc, check: CheckSpec) -> list[Problem]:
        # A plan without steps is for `bench evaluate` (DESIGN.md): its during/after name steps
        # of the recorded run, which only the log's step events know.
        if not self.step_names:
            return []
        problems: list[Problem] = []
        names = list(self.step_names)
        for position, name in enumerate(check.during or []):
            if not select_steps(name, names):
                hint = suggest(name, names)
                problems.append(Problem((*loc, "during", position), f"unknown step {name!r}{hint}"))
        for path, name in getattr(check, "step_references", list)():
            if not select_steps(name, names):
                hint = suggest(name, names)
                problems.append(Problem((*loc, *path), f"unknown step {name!r}{hint}"))
        if isinstance(check, ReachesCheck | DiagnosticCheck) and check.after is not None:
            anchor = check.anchor
            if anchor.form == "condition":
                return problems  # checked against the DBCs with the other conditions
            known = [*names, *RUN_EVENTS] if anchor.form == "step" else names
            if not select_steps(anchor.name, known):
                hint = suggest(anchor.name, known) or (
                    f" (a step name or {', '.join(RUN_EVENTS)})" if anchor.form == "step" else ""
                )
                what = "unknown step or event" if anchor.form == "step" else "unknown step"
                problems.append(Problem((*loc, "after"), f"{what} {anchor.name!r}{hint}"))
        return problems

    def check_names_unique(self, names: Sequence[str]) -> list[Problem]:
        return _duplicates("checks", names, "check")

    def _sendable(self, loc: Loc, message: Message) -> list[Problem]:
        if message.is_fd and self.fd is False:
            return [Problem(loc, f"{message.name} is a CAN FD frame: set bus: {{fd: true}}")]
        for signal in message.signals:
            # cantools cannot encode (nor decode) such a signal: refuse before the run, not in it
            if signal.is_float and signal.length not in IEEE_FLOAT_LENGTHS:
                return [
                    Problem(
                        loc,
                        f"{message.name} cannot be sent: {signal.name} is an IEEE float of "
                        f"{signal.length} bits (only 16, 32 and 64 exist)",
                    )
                ]
        return []

    def fault(self, index: int, fault: FaultSpec) -> list[Problem]:
        problems = []
        if self.dbcs is not None:
            wrong = fault_problem(fault.inject, self.dbcs)
            if wrong:
                problems.append(Problem(("faults", index, "inject"), wrong))
        if self.check_names is None:
            return problems
        for position, name in enumerate(fault.expect_fail):
            if name not in self.check_names:
                hint = suggest(name, self.check_names)
                problems.append(
                    Problem(
                        ("faults", index, "expect_fail", position), f"unknown check {name!r}{hint}"
                    )
                )
        return problems

    # -- lookups ---------------------------------------------------------------------------------

    def _lookup_message(self, loc: Loc, name: str) -> Message | Problem:
        assert self.dbcs is not None
        try:
            return self.dbcs.message(name)
        except KeyError as exc:
            return Problem(loc, str(exc.args[0]))

    def _message(self, loc: Loc, name: str) -> list[Problem]:
        found = self._lookup_message(loc, name)
        return [found] if isinstance(found, Problem) else []

    def _signal(self, loc: Loc, reference: str) -> list[Problem]:
        assert self.dbcs is not None
        try:
            self.dbcs.signal(reference)
        except KeyError as exc:
            return [Problem(loc, str(exc.args[0]))]
        return []

    def _condition(self, loc: Loc, condition: Condition) -> list[Problem]:
        assert self.dbcs is not None
        # Signals first: Condition.bind looks up a choice's signal before checking that the
        # signal exists, and would raise a bare KeyError for an unknown one.
        for node in condition.root.walk():
            if isinstance(node, SignalName):
                try:
                    self.dbcs.signal(node.name)
                except KeyError as exc:
                    return [Problem(loc, str(exc.args[0]), offset=node.offset)]
        try:
            condition.bind(self.dbcs)
        except ConditionError as exc:
            return [Problem(loc, exc.message, offset=exc.offset)]
        return []


def fault_problem(text: str, dbcs: DbcSet) -> str | None:
    """Why ``bench run --inject`` would refuse this fault (the virtual vehicle's grammar)."""
    try:
        from virtual_bus.faults import parse_fault
    except ImportError:  # the harness installed without the virtual vehicle: shape only
        return None
    try:
        parse_fault(text, dbcs)
    except InputError as exc:
        return str(exc)
    return None


def _multiplexing(loc: Loc, message: Message, frame: Frame) -> list[Problem]:
    """A multiplexed message needs its multiplexer value, and only signals of that page."""
    problems: list[Problem] = []
    for mux in (s for s in message.signals if s.is_multiplexer):
        value = frame.signals.get(mux.name)
        if value is None:
            problems.append(
                Problem((*loc, "signals"), f"{message.name} is multiplexed: give {mux.name}")
            )
            continue
        code = _code(mux, value)
        for name in frame.signals:
            signal = _signal_of(message, name)
            if signal is None or signal.multiplexer_signal != mux.name or code is None:
                continue
            if code not in (signal.multiplexer_ids or []):
                pages = ", ".join(str(i) for i in signal.multiplexer_ids or [])
                problems.append(
                    Problem(
                        (*loc, "signals", name),
                        f"{name} is not on page {mux.name}={code:g} of {message.name} "
                        f"(it is on {pages})",
                        at="key",
                    )
                )
    return problems


def _code(signal: Signal, value: float | str) -> float | None:
    if isinstance(value, str):
        codes = {str(n): int(c) for c, n in (signal.choices or {}).items()}
        return codes.get(value)
    return value


def value_problem(message: Message, signal: Signal, value: float | str) -> str | None:
    """Why ``value`` cannot be sent as ``signal`` (unknown choice, outside the DBC range)."""
    reference = f"{message.name}.{signal.name}"
    if isinstance(value, str):
        choices = [str(name) for name in (signal.choices or {}).values()]
        if value in choices:
            return None
        if not choices:
            return f"{reference} has no choices: expected a number, got {value!r}"
        hint = suggest(value, choices) or f" (choices: {', '.join(choices)})"
        return f"{reference} has no choice {value!r}{hint}"
    low, high = signal.minimum, signal.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        unit = f" {signal.unit}" if signal.unit else ""
        return (
            f"{value:g} is outside the range of {reference}: {_bound(low)} to {_bound(high)}{unit}"
        )
    return None


def _bound(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _signal_of(message: Message, name: str) -> Signal | None:
    for signal in message.signals:
        if signal.name == name:
            return signal
    return None


def _unknown_signal(message: Message, name: str) -> str:
    names = [s.name for s in message.signals]
    return f"unknown signal '{message.name}.{name}'{suggest(name, names)}"


def _e2e_message(name: str) -> str:
    return f"{name} is filled in automatically (alive counter / CRC8): leave it out"


def _has_did(ecu: Ecu, name: str) -> bool:
    try:
        ecu.did(name)
    except KeyError:
        return False
    return True


def _duplicates(section: str, names: Iterable[str], what: str) -> list[Problem]:
    first: dict[str, int] = {}
    problems = []
    for index, name in enumerate(names):
        if name in first:
            problems.append(
                Problem(
                    (section, index, "name"),
                    f"duplicate {what} name {name!r}",
                    related=(section, first[name], "name"),
                )
            )
        first.setdefault(name, index)
    return problems
