"""``repeat:`` groups in ``steps:``: a group of steps run N times, expanded before validation.

::

    steps:
      - repeat: 10
        steps:
          - {name: wot, send: {message: VCU_Command, signals: {TorqueRequest: 450}}, duration: 12s}
          - {name: brake, …}

runs ``wot[1]``, ``brake[1]``, ``wot[2]`` … ``brake[10]``: each step's name gets the index of the
repetition, counted from 1 as a bench engineer counts runs (nested groups add one index per
level, outermost first: ``wot[2][3]``). Checks name the expanded steps in ``during:``/``after:``.

The group is expanded on the parsed YAML, before the models see it, and every path into an
expanded step is pointed at the YAML node it came from: a problem in ``wot[7]`` is reported at
the line of ``wot`` inside the group. The run directory keeps the plan as written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .model import describe_value
from .validate import Problem
from .yaml_source import Loc, Source

GROUP_KEYS = ("repeat", "steps")
MAX_REPEAT = 10_000


def is_group(item: Any) -> bool:
    return isinstance(item, dict) and "repeat" in item


def expand_groups(source: Source, report: Callable[[Problem], None]) -> None:
    """Replace every ``repeat:`` group of ``source.data['steps']`` by its steps, in place.

    The groups' own problems go to ``report`` while ``source`` still maps the paths as written;
    a broken group is left out of the steps.
    """
    data = source.data
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list) or not any(is_group(item) for item in steps):
        return
    problems: list[Problem] = []
    expanded = _expand(steps, ("steps",), problems)
    for problem in problems:
        report(problem)
    data["steps"] = [item for item, _ in expanded]
    _remap(source, [origin for _, origin in expanded])


def _expand(items: list[Any], loc: Loc, problems: list[Problem]) -> list[tuple[Any, Loc]]:
    """(step, where it was written) for every step, groups expanded and their names indexed."""
    return [
        (_indexed(step, indices), origin) for step, origin, indices in _walk(items, loc, problems)
    ]


def _walk(
    items: list[Any], loc: Loc, problems: list[Problem]
) -> list[tuple[Any, Loc, tuple[int, ...]]]:
    out: list[tuple[Any, Loc, tuple[int, ...]]] = []
    for index, item in enumerate(items):
        here = (*loc, index)
        if not is_group(item):
            out.append((item, here, ()))
            continue
        count = _group_problems(item, here, problems)
        if count is None:
            continue
        inner = _walk(item["steps"], (*here, "steps"), problems)
        for repetition in range(1, count + 1):
            for step, origin, indices in inner:
                out.append((step, origin, (repetition, *indices)))
    return out


def _group_problems(group: dict[str, Any], loc: Loc, problems: list[Problem]) -> int | None:
    """The repeat count, or None after adding the group's problems."""
    before = len(problems)
    for key in group:
        if key not in GROUP_KEYS:
            problems.append(
                Problem((*loc, key), f"unknown key {key!r} in a repeat group (it has "
                        "repeat and steps; step keys go on the steps inside)", at="key")
            )  # fmt: skip
    count = group.get("repeat")
    if isinstance(count, bool) or not isinstance(count, int):
        problems.append(Problem((*loc, "repeat"), f"expected a whole number of repetitions, "
                                f"got {describe_value(count)}"))  # fmt: skip
    elif not 1 <= count <= MAX_REPEAT:
        problems.append(
            Problem((*loc, "repeat"), f"repeat must be 1 to {MAX_REPEAT:,}, got {count}")
        )
    steps = group.get("steps")
    if "steps" not in group:
        problems.append(Problem(loc, "missing key 'steps' in a repeat group"))
    elif not isinstance(steps, list):
        problems.append(
            Problem((*loc, "steps"), f"expected a list of steps, got {describe_value(steps)}")
        )
    elif not steps:
        problems.append(Problem((*loc, "steps"), "a repeat group needs at least one step"))
    return None if len(problems) > before else count


def _indexed(step: Any, indices: tuple[int, ...]) -> Any:
    """A copy of the step named ``name[i]`` (``name[i][j]`` in nested groups, outermost first)."""
    if not indices or not isinstance(step, dict) or not isinstance(step.get("name"), str):
        return step  # outside a group, or no usable name (the shape stage reports it)
    return {**step, "name": step["name"] + "".join(f"[{i}]" for i in indices)}


def _remap(source: Source, origins: list[Loc]) -> None:
    """Point ``("steps", i, …)`` at the YAML nodes of the step written at ``origins[i]``."""
    for table in (source.values, source.keys):
        inside = {
            loc: node for loc, node in table.items() if loc[:1] == ("steps",) and len(loc) > 1
        }
        below: dict[Loc, list[tuple[Loc, Any]]] = {}
        for origin in set(origins):
            width = len(origin)
            below[origin] = [(loc[width:], n) for loc, n in inside.items() if loc[:width] == origin]
        for loc in inside:
            del table[loc]
        for index, origin in enumerate(origins):
            for rest, node in below[origin]:
                table[("steps", index, *rest)] = node
