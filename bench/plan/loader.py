"""Load a plan: YAML → models → DBC checks, every problem as ``file:line:column: message``.

Three stages, each reporting all it finds: YAML syntax (fatal: nothing else can be read), shape
(pydantic, mapped back to the YAML nodes), meaning (names, choices and ranges against the DBCs,
cross references). When the shape is wrong somewhere, the items that are fine are still checked
against the DBCs one by one, so ``bench validate`` lists every problem of a plan in one go.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..dbc import DbcSet, load_dbc_file, suggest
from ..durations import format_duration
from ..errors import InputError, one_line
from .checks import CHECK_KEYS, CHECK_MODELS, AnyCheck, check_kind
from .conditions import ConditionError
from .model import (
    DiagEcuSpec,
    FaultSpec,
    FieldError,
    Plan,
    SafeStateFrame,
    Step,
    describe_value,
)
from .repeat import expand_groups
from .validate import Problem, Validator
from .yaml_source import Loc, Source, YamlError, parse

_ITEM_TYPES: dict[str, TypeAdapter[Any]] = {
    "steps": TypeAdapter(Step),
    "checks": TypeAdapter(AnyCheck),
    "safe_state": TypeAdapter(SafeStateFrame),
    "faults": TypeAdapter(FaultSpec),
}


@dataclass
class LoadResult:
    plan: Plan | None
    errors: list[str] = field(default_factory=list)


def load_plan(path: str | Path, *, dbc_paths: Sequence[str | Path] | None = None) -> Plan:
    """Load and validate a plan; :class:`InputError` with the first problem, in one line.

    ``dbc_paths`` (e.g. ``bench evaluate --dbc``) replaces the plan's own ``dbc`` list.
    """
    result = load(path, dbc_paths=dbc_paths)
    if result.errors or result.plan is None:
        raise InputError(result.errors[0] if result.errors else f"{path}: cannot load the plan")
    return result.plan


def validate_plan(path: str | Path, *, dbc_paths: Sequence[str | Path] | None = None) -> list[str]:
    """Every problem of the plan as ``file:line:column: message`` lines; empty when valid."""
    return load(path, dbc_paths=dbc_paths).errors


def load(path: str | Path, *, dbc_paths: Sequence[str | Path] | None = None) -> LoadResult:
    """Load a plan and collect every problem (what load_plan and validate_plan build on)."""
    return _Loading(Path(path), dbc_paths).run()


class _Loading:
    def __init__(self, path: Path, dbc_paths: Sequence[str | Path] | None) -> None:
        self.path = path
        self.label = str(path)
        self.dbc_override = [Path(p) for p in dbc_paths] if dbc_paths else None
        self.source: Source | None = None
        self.located: list[tuple[int, int, str]] = []  # (line, column, message), 0-based
        self.unplaced: list[str] = []  # problems in other files (DBCs) or of the file itself

    # -- the stages ------------------------------------------------------------------------------

    def run(self) -> LoadResult:
        text = self._read()
        if text is None:
            return LoadResult(None, self.unplaced)
        try:
            self.source = parse(text)
        except YamlError as exc:
            return LoadResult(None, [self._line(exc.line, exc.column, exc.message)])
        data = self.source.data
        if not isinstance(data, dict):
            got = describe_value(data)
            return LoadResult(
                None, [self._line(0, 0, f"expected a mapping of plan keys, got {got}")]
            )
        if self.dbc_override is not None and "dbc" not in data:
            data["dbc"] = [str(p) for p in self.dbc_override]
        self._duplicates()
        expand_groups(self.source, self._add)
        plan = self._shape(data)
        dbcs, resolved = self._dbcs(data)
        self._meaning(data, plan, dbcs)
        errors = self._sorted()
        if plan is not None and not errors and dbcs is not None:
            plan.attach(self.path, text, resolved, dbcs)
            return LoadResult(plan, [])
        return LoadResult(None, errors)

    def _read(self) -> str | None:
        try:
            # Bytes decoded as they are (no newline translation): source_text is what was read.
            return self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            self.unplaced.append(f"{self.label}: plan file not found")
        except IsADirectoryError:
            self.unplaced.append(f"{self.label}: is a directory, expected a plan (.yaml)")
        except UnicodeDecodeError:
            self.unplaced.append(f"{self.label}: not a UTF-8 text file")
        except OSError as exc:
            self.unplaced.append(f"{self.label}: cannot read: {exc.strerror or exc}")
        return None

    def _duplicates(self) -> None:
        assert self.source is not None
        for dup in self.source.duplicates:
            where = _describe(dup.mapping, self.source.data)
            line, column = self.source.position(dup.node)
            first = dup.first.start_mark.line + 1
            self.located.append(
                (line, column, f"duplicate key {dup.key!r} in {where} (first at line {first})")
            )

    def _shape(self, data: dict[str, Any]) -> Plan | None:
        try:
            return Plan.model_validate(data)
        except ValidationError as exc:
            for problem in _shape_problems(exc, data):
                self._add(problem)
            return None

    def _dbcs(self, data: dict[str, Any]) -> tuple[DbcSet | None, list[Path]]:
        base = self.path.parent
        if self.dbc_override is not None:
            entries = [(None, p) for p in self.dbc_override]
        else:
            listed = data.get("dbc")
            if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
                return None, []
            entries = [(("dbc", i), base / p) for i, p in enumerate(listed)]
        if not entries:
            return None, []
        databases = []
        for loc, path in entries:
            if not path.is_file():
                self._dbc_missing(loc, path)
                continue
            try:
                databases.append((path, load_dbc_file(path)))
            except InputError as exc:  # the DBC's own file:line:column
                self.unplaced.append(str(exc))
        if len(databases) < len(entries):
            return None, []
        try:
            return DbcSet(databases), [p.resolve() for p, _ in databases]
        except InputError as exc:
            self._add(Problem(("dbc",), one_line(str(exc))))
            return None, []

    def _dbc_missing(self, loc: Loc | None, path: Path) -> None:
        siblings = [p.name for p in path.parent.glob("*.dbc")] if path.parent.is_dir() else []
        message = f"DBC file not found: {path}{suggest(path.name, siblings)}"
        if loc is None:
            self.unplaced.append(f"{path}: DBC file not found")
        else:
            self._add(Problem(loc, message))

    def _meaning(self, data: dict[str, Any], plan: Plan | None, dbcs: DbcSet | None) -> None:
        # A misspelt `steps:`/`checks:` key hides the names: then references can't be judged.
        step_names = _names(data.get("steps")) if "steps" in data or plan else None
        check_names = _names(data.get("checks")) if "checks" in data or plan else None
        fd = plan.bus.fd if plan else _bus_fd(data.get("bus"))
        ecus, problems = _diagnostic_ecus(data, plan)
        validator = Validator(dbcs, self.path.parent, step_names, check_names, fd, ecus)
        items = {section: _items(data, plan, section) for section in _ITEM_TYPES}
        for index, step in items["steps"]:
            problems += validator.step(index, step)
        steps = data.get("steps")
        if isinstance(steps, list) and len(items["steps"]) == len(steps):
            problems += validator.step_order([step for _, step in items["steps"]])
        if step_names is not None:
            problems += validator.step_names_unique(step_names)
        for index, check in items["checks"]:
            problems += validator.check(index, check)
        if check_names is not None:
            problems += validator.check_names_unique(check_names)
        for index, frame in items["safe_state"]:
            problems += validator.frame(("safe_state", index), frame)
        for index, fault in items["faults"]:
            problems += validator.fault(index, fault)
        for problem in problems:
            self._add(problem)

    # -- reporting -------------------------------------------------------------------------------

    def _add(self, problem: Problem) -> None:
        assert self.source is not None
        node = self.source.node(problem.loc, key=problem.at == "key")
        exact = self.source.exact(problem.loc)
        line, column = self.source.position(node, problem.offset if exact else None)
        message = problem.message
        if problem.related is not None and self.source.exact(problem.related):
            message += f" (first at line {self.source.node(problem.related).start_mark.line + 1})"
        self.located.append((line, column, message))

    def _line(self, line: int, column: int, message: str) -> str:
        return f"{self.label}:{line + 1}:{column + 1}: {message}"

    def _sorted(self) -> list[str]:
        lines = list(dict.fromkeys(self.unplaced))
        for line, column, message in sorted(set(self.located), key=lambda e: (e[0], e[1])):
            lines.append(self._line(line, column, message))
        return list(dict.fromkeys(lines))


# -- the shape: pydantic errors → problems at nodes ------------------------------------------------


def _shape_problems(exc: ValidationError, data: dict[str, Any]) -> list[Problem]:
    errors = [(_data_loc(error["loc"], data), error) for error in exc.errors()]
    suggested: set[Loc] = set()  # missing keys explained by a misspelt key
    misdetected: dict[Loc, Loc] = {}  # check → its misspelt kind key: the only thing to report
    for loc, error in errors:
        if error["type"] == "extra_forbidden":
            guess = _suggestion(loc, data)
            if guess:
                suggested.add((*loc[:-1], guess))
                if _is_check(loc[:-1]) and guess in (*CHECK_KEYS, "max_rate", "signal"):
                    misdetected.setdefault(loc[:-1], loc)
    problems: list[Problem] = []
    seen: dict[Loc, int] = {}
    for loc, error in errors:
        if error["type"] == "missing" and loc in suggested:
            continue
        if misdetected.get(loc[:2], loc) != loc:  # read as the wrong kind: the rest is noise
            continue
        problem = _problem(loc, error, data)
        if loc in seen and problem.offset is None:  # union members: one error per place
            problems[seen[loc]] = _merge(problems[seen[loc]], problem)
            continue
        seen[loc] = len(problems)
        problems.append(problem)
    return problems


def _data_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """The pydantic ``loc`` as a path into the data: union tags and member names dropped."""
    path: list[str | int] = []
    here: Any = data
    tagged = False
    for part in loc:
        if len(path) == 2 and path[0] == "checks" and part in CHECK_MODELS and not tagged:
            tagged = True  # the tag of the check union (which may also be a key: reaches)
            continue
        if isinstance(here, dict) and isinstance(part, str):
            path.append(part)
            here = here.get(part)
        elif isinstance(here, list) and isinstance(part, int):
            path.append(part)
            here = here[part] if 0 <= part < len(here) else None
        else:
            break  # the rest names union members (str, int …) of a scalar
    return tuple(path)


def _problem(loc: Loc, error: Any, data: dict[str, Any]) -> Problem:
    kind = error["type"]
    cause = (error.get("ctx") or {}).get("error")
    if kind == "extra_forbidden":
        context = _describe(loc[:-1], data)
        owners = _check_kinds_with(str(loc[-1])) if _is_check(loc[:-1]) else []
        if owners:  # a key of another check kind: say which kind this one was read as
            read_as = check_kind(_at(data, loc[:-1]))
            return Problem(
                loc,
                f"unknown key {loc[-1]!r} in {context}: a {read_as} check has no "
                f"{loc[-1]!r} (it goes with {' and '.join(owners)} checks)",
                at="key",
            )
        hint = suggest(str(loc[-1]), _allowed_keys(loc[:-1], data))
        return Problem(loc, f"unknown key {loc[-1]!r} in {context}{hint}", at="key")
    if kind == "missing":
        return Problem(loc[:-1], f"missing key {loc[-1]!r} in {_describe(loc[:-1], data)}")
    if isinstance(cause, ConditionError):
        return Problem(loc, cause.message, offset=cause.offset)
    if isinstance(cause, FieldError):
        target = (*loc, cause.field)
        return Problem(target, f"{_describe(loc, data)}: {cause}", at="key")
    if kind == "value_error" and isinstance(_at(data, loc), dict):
        return Problem(loc, f"{_describe(loc, data)}: {cause}")  # a model-level rule
    return Problem(loc, _expected(kind, error, loc))


_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def _expected(kind: str, error: Any, loc: Loc) -> str:
    given = error.get("input")
    ctx = error.get("ctx") or {}
    if kind in _EXPECTED:
        hint = f" (quote it: '{given}')" if kind == "string_type" and _scalar(given) else ""
        return f"expected {_EXPECTED[kind]}, got {describe_value(given)}{hint}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {describe_value(given)}"
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}, got {describe_value(given)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "inject":
        got = describe_value(given)
        return f"expected a fault like KIND:TARGET (see bench run --inject), got {got}"
    if kind == "value_error":
        return str(ctx.get("error"))
    return one_line(error.get("msg", "invalid value"))


def _merge(first: Problem, second: Problem) -> Problem:
    # "expected text, got [...]" + "expected a whole number, got [...]" → one line.
    head, _, got = first.message.partition(", got ")
    other = second.message.partition(", got ")[0].removeprefix("expected ")
    if head.startswith("expected ") and got:
        return Problem(first.loc, f"{head} or {other}, got {got}", first.at, first.offset)
    return first


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_check(loc: Loc) -> bool:
    return len(loc) == 2 and loc[0] == "checks"


def _at(data: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _describe(loc: Loc, data: Any) -> str:
    """A person's name for the mapping at ``loc``: "step 'soak'", "'send' of step 'key_on'"."""
    if not loc:
        return "the plan"
    singular = {"steps": "step", "checks": "check", "safe_state": "safe_state", "faults": "fault"}
    if loc[0] in singular and len(loc) >= 2 and isinstance(loc[1], int):
        name = _at(data, (*loc[:2], "name"))
        what = singular[str(loc[0])]
        base = f"{what} {name!r}" if isinstance(name, str) else f"{what} #{loc[1] + 1}"
        rest = loc[2:]
    else:
        base, rest = "", loc
    for part in rest:
        part_text = f"#{part + 1}" if isinstance(part, int) else repr(part)
        base = f"{part_text} of {base}" if base else part_text
    return base


def _suggestion(loc: Loc, data: Any) -> str | None:
    hint = suggest(str(loc[-1]), _allowed_keys(loc[:-1], data))
    return hint.split("'")[1] if hint else None


def _allowed_keys(loc: Loc, data: Any) -> list[str]:
    if _is_check(loc):  # the kind comes from the keys: any check key may be the one meant
        return sorted({key for model in CHECK_MODELS.values() for key in _keys(model)})
    model = _model_at(loc, data)
    return _keys(model) if model is not None else []


def _check_kinds_with(key: str) -> list[str]:
    return [kind for kind, model in CHECK_MODELS.items() if key in _keys(model)]


def _keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(loc: Loc, data: Any) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc``, following the plan's field types."""
    annotation: Any = Plan
    here: Any = data
    for part in loc:
        model = _as_model(annotation, here)  # of the parent value: a check's kind is in its keys
        here = _at(here, (part,))
        if model is not None:
            info = next((i for n, i in model.model_fields.items() if (i.alias or n) == part), None)
            if info is None:
                return None
            annotation = info.annotation
            continue
        args = typing.get_args(annotation)
        origin = typing.get_origin(annotation)
        if origin is list and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return None
    return _as_model(annotation, here)


def _as_model(annotation: Any, value: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if annotation is AnyCheck or typing.get_origin(annotation) is typing.Annotated:
        if annotation is AnyCheck:
            return CHECK_MODELS[check_kind(value)]
        return _as_model(typing.get_args(annotation)[0], value)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # Optional[Model]
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


# -- the meaning: items that passed the shape ------------------------------------------------


def _names(items: Any) -> list[str] | None:
    """Names of all items, or None when one has no usable name (references can't be judged)."""
    if not isinstance(items, list):
        return [] if items is None else None
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    return names if all(isinstance(n, str) for n in names) else None  # type: ignore[return-value]


def _bus_fd(bus: Any) -> bool | None:
    if bus is None:
        return False
    fd = bus.get("fd", False) if isinstance(bus, dict) else None
    return fd if isinstance(fd, bool) else None


def _diagnostic_ecus(data: dict[str, Any], plan: Plan | None) -> tuple[Any, list[Problem]]:
    """The plan's diagnostic ECUs (catalog + diagnostics: section) and that section's problems;
    (None, …) when the section is broken: ECU and DID names are then not judged."""
    from ..diag.catalog import plan_ecus, virtual_vehicle_ecus, with_addressing

    if plan is not None:
        section: Any = plan.diagnostics
    else:
        raw = data.get("diagnostics", {})
        try:
            section = {
                name: DiagEcuSpec.model_validate(spec) for name, spec in dict(raw or {}).items()
            }
        except (ValidationError, TypeError, ValueError):
            return None, []  # the shape stage reports it
    problems: list[Problem] = []
    for name, spec in section.items():
        try:
            with_addressing(virtual_vehicle_ecus(), {name: spec})
        except ValueError as exc:
            problems.append(Problem(("diagnostics", name), str(exc)))
    if problems:
        return None, problems
    return plan_ecus(_Section(section)), problems


class _Section:
    def __init__(self, diagnostics: Any) -> None:
        self.diagnostics = diagnostics


def _items(data: dict[str, Any], plan: Plan | None, section: str) -> list[tuple[int, Any]]:
    if plan is not None:
        return list(enumerate(getattr(plan, section)))
    raw = data.get(section)
    if not isinstance(raw, list):
        return []
    valid = []
    for index, item in enumerate(raw):
        try:
            valid.append((index, _ITEM_TYPES[section].validate_python(item)))
        except ValidationError:
            continue  # already reported by the shape stage
    return valid


# -- DBC cache: the pytest plugin and property tests load the same few files many times --------

# -- a summary for bench validate ------------------------------------------------------------------


def describe_plan(plan: Plan) -> str:
    """One line: what the plan holds and how long it should take."""
    seconds, exact = plan.estimated_duration()
    duration = format_duration(seconds) if seconds else "none (evaluate only)"
    if not exact and seconds:
        duration = f"up to {duration} (steps ending on a condition counted at their bound)"
    site = f" ({plan.site})" if plan.site else ""
    return (
        f"{plan.path}: valid: {plan.name!r}{site}: {len(plan.steps)} steps, "
        f"{len(plan.checks)} checks, {len(plan.dbc_paths)} DBC files, "
        f"estimated duration {duration}"
    )
