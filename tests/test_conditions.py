"""The condition grammar: parsing, binding to the DBCs, scalar and column evaluation."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.plan.conditions import ConditionError, parse_condition


def test_scalar_and_column_evaluation_agree(dbcs):
    cond = parse_condition(
        'BMS_Status.HvState == "READY" and (BMS_PackStatus.SOC < 80 or not BMS_Status.HeaterActive)'
    ).bind(dbcs)
    assert cond.signals == ["BMS_Status.HvState", "BMS_PackStatus.SOC", "BMS_Status.HeaterActive"]
    columns = {
        "BMS_Status.HvState": np.array([2, 2, 1, 2]),
        "BMS_PackStatus.SOC": np.array([50, 90, 50, 90]),
        "BMS_Status.HeaterActive": np.array([1, 1, 0, 0]),
    }
    assert cond.evaluate(columns).tolist() == [True, False, False, True]
    for i in range(4):
        scalar = {k: float(v[i]) for k, v in columns.items()}
        assert bool(cond.evaluate(scalar)) == cond.evaluate(columns)[i]


def test_missing_values_never_satisfy_a_comparison():
    cond = parse_condition("BMS_PackStatus.SOC != 3")
    assert cond.evaluate({"BMS_PackStatus.SOC": np.array([math.nan, 4.0])}).tolist() == [
        False,
        True,
    ]


def test_reaches_shorthand_with_subject():
    cond = parse_condition(">= 0", subject="BMS_Temps.MinCellTemp")
    assert cond.evaluate({"BMS_Temps.MinCellTemp": np.array([-3.0, 0.0, 1.5])}).tolist() == [
        False,
        True,
        True,
    ]


def test_negative_numbers_and_symbol_spellings():
    cond = parse_condition("BMS_Temps.MinCellTemp > -30.5 && !(MCU_State.DerateActive)")
    env = {"BMS_Temps.MinCellTemp": -10.0, "MCU_State.DerateActive": 0.0}
    assert bool(cond.evaluate(env))


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("BMS_PackStatus.SOC >", "condition ends too early after '>': expected a value", 20),
        ("BMS_PackStatus.SOC > > 3", "unexpected '>': expected a value (a number, Mess", 21),
        ("(BMS_PackStatus.SOC > 3", "ends too early after '3': expected ')' to close '('", 23),
        ("(A.x - (A.y > 3)", "expected a value, got the condition 'A.y > 3'", 7),
        ("(A.x - A.y > 3", "ends too early after '3': expected ')' to close '('", 14),
        ("SOC > 3", "expected Message.Signal or abs/min/max(…), got 'SOC'", 0),
        ("BMS_PackStatus.SOC > 3 3", "unexpected '3': expected an operator (+ - * /", 23),
        ("__import__('os')", "unknown function '__import__' (functions: abs, min, max)", 0),
        ("A.b(1)", "unexpected '(': expected an operator", 3),
        ("BMS_PackStatus.SOC ; 3", "unexpected character ';'", 19),
        ("A.x ** 2 > 1", "unexpected '*': expected a value", 5),
        ("A.x % 2 > 1", "unexpected character '%'", 4),
        ("", "empty condition", 0),
        ("A.x + > 3", "unexpected '>': expected a value", 6),
        ("A.x < A.y < 3", "unexpected '<': comparisons do not chain", 10),
        ("(A.x < A.y <= 3) or A.x", "unexpected '<=': comparisons do not chain", 11),
        ("(A.x > 1) + 2 > 0", "expected a value, got the condition 'A.x > 1'", 0),
        ("A.x * (A.y or A.x) > 0", "expected a value, got the condition", 6),
        ("-(A.x > 1)", "expected a value, got the condition", 1),
        ("abs(A.x > 3)", "unexpected '>': expected ',' or ')' in abs(…)", 8),
        ("abs A.x > 3", "unexpected 'A.x': expected '(' after abs", 4),
        ("abs(A.x, A.y) > 3", "abs() takes exactly 1 value, got 2", 12),
        ("max(A.x) > 3", "max() takes at least 2 values, got 1", 7),
        ("min(A.x, ) > 3", "unexpected ')': expected a value", 9),
        ("sqrt(A.x) > 3", "unknown function 'sqrt' (functions: abs, min, max)", 0),
        ("min(A.x, A.y", "condition ends too early after 'A.y': expected ',' or ')' in min(…)", 12),
        ("  A.x >", "condition ends too early", 7),  # columns count from the text as written
    ],
)
def test_syntax_errors_name_the_column_and_what_was_expected(text, message, offset):
    with pytest.raises(ConditionError, match=re.escape(message)) as info:
        parse_condition(text)
    assert info.value.offset == offset


def test_binding_checks_signals_and_choices(dbcs):
    with pytest.raises(ConditionError, match="did you mean 'MaxCellTemp'") as info:
        parse_condition("BMS_Temps.MaxCelTemp > 3").bind(dbcs)
    assert info.value.offset == 0
    with pytest.raises(ConditionError, match="no choice 'REDY' \\(did you mean 'READY'\\?\\)"):
        parse_condition('BMS_Status.HvState == "REDY"').bind(dbcs)
    with pytest.raises(ConditionError, match="only be compared with == or !="):
        parse_condition('BMS_Status.HvState > "READY"').bind(dbcs)
    with pytest.raises(ConditionError, match="must be compared with a signal"):
        parse_condition('"READY" == 2').bind(dbcs)
    with pytest.raises(ConditionError, match="did you mean 'BMS_Status'") as info:
        parse_condition('BMS_Statu.HvState == "READY"').bind(dbcs)
    assert info.value.offset == 0
    bound = parse_condition('"READY" == BMS_Status.HvState').bind(dbcs)
    assert bool(bound.evaluate({"BMS_Status.HvState": 2}))


_names = st.sampled_from(["A.x", "A.y", "B.z"])
_numbers = st.integers(min_value=-5, max_value=5)
_ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])


@st.composite
def _expressions(draw, depth=0):
    """A random condition and the equivalent Python source over a dict ``v``."""
    if depth > 2 or draw(st.booleans()):
        name, op, number = draw(_names), draw(_ops), draw(_numbers)
        return f"{name} {op} {number}", f"(v[{name!r}] {op} {number})"
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        text, py = draw(_expressions(depth + 1))
        return f"not ({text})", f"(not {py})"
    (lt, lp), (rt, rp) = draw(_expressions(depth + 1)), draw(_expressions(depth + 1))
    return f"({lt}) {kind} ({rt})", f"({lp} {kind} {rp})"


@given(_expressions(), st.dictionaries(_names, _numbers, min_size=3, max_size=3))
def test_grammar_agrees_with_python_semantics(expression, values):
    text, python = expression
    expected = eval(python, {}, {"v": values})  # the reference, on test-generated text only
    assert (
        bool(parse_condition(text).evaluate({k: float(x) for k, x in values.items()})) == expected
    )


# -- arithmetic: scalar, column and Python's own arithmetic agree ------------------------------
#
# A random expression is drawn as two texts: ours, and the same text for Python's ``eval`` in
# which ``A.x`` is an attribute of a namespace. Parentheses are dropped at random, so both sides
# parse the very same string with their own precedence rules. Only comparisons and bare values
# differ, as the documented meaning of a non-finite value needs them to: each is a call that
# evaluates its sides with Python's float arithmetic, reads ZeroDivisionError as NaN, and is
# false when a side is not finite.

_SIGNALS = ["A.x", "A.y", "B.z"]
_ARITH = st.sampled_from(["+", "-", "*", "/"])
_literals = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 0.5, 3.0, 20.0]),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)
_sample_values = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 20.0, math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e3, max_value=1e3),
)


def _maybe_parens(draw, text: str, py: str) -> tuple[str, str]:
    return (f"({text})", f"({py})") if draw(st.booleans()) else (text, py)


@st.composite
def _values(draw, depth=0):
    """A random value expression: (our text, Python text)."""
    kind = draw(st.sampled_from(["leaf", "leaf", "arith", "neg", "abs", "minmax"]))
    if depth >= 3 or kind == "leaf":
        if draw(st.booleans()):
            name = draw(st.sampled_from(_SIGNALS))
            return name, name
        literal = repr(draw(_literals))
        return literal, literal
    if kind == "arith":
        left = _maybe_parens(draw, *draw(_values(depth + 1)))
        right = _maybe_parens(draw, *draw(_values(depth + 1)))
        op = draw(_ARITH)
        return f"{left[0]} {op} {right[0]}", f"{left[1]} {op} {right[1]}"
    if kind == "neg":
        text, py = _maybe_parens(draw, *draw(_values(depth + 1)))
        return f"-{text}", f"-{py}"
    if kind == "abs":
        text, py = draw(_values(depth + 1))
        return f"abs({text})", f"abs({py})"
    arguments = draw(st.lists(_values(depth + 1), min_size=2, max_size=3))
    function = draw(st.sampled_from(["min", "max"]))
    return (
        f"{function}({', '.join(t for t, _ in arguments)})",
        f"{function}({', '.join(p for _, p in arguments)})",
    )


@st.composite
def _arith_conditions(draw, depth=0):
    """A random condition over values: (our text, Python text)."""
    kind = draw(st.sampled_from(["compare", "compare", "bare", "and", "or", "not"]))
    if depth >= 2 or kind in ("compare", "bare"):
        left = draw(_values())
        if kind == "bare":
            return left[0], f"truthy(lambda: {left[1]})"
        right, op = draw(_values()), draw(_ops)
        return (
            f"{left[0]} {op} {right[0]}",
            f"compare(lambda: {left[1]}, {op!r}, lambda: {right[1]})",
        )
    if kind == "not":
        text, py = _maybe_parens(draw, *draw(_arith_conditions(depth + 1)))
        return f"not {text}", f"not {py}"
    left = _maybe_parens(draw, *draw(_arith_conditions(depth + 1)))
    right = _maybe_parens(draw, *draw(_arith_conditions(depth + 1)))
    return f"{left[0]} {kind} {right[0]}", f"{left[1]} {kind} {right[1]}"


def _python_value(thunk):
    try:
        return thunk()
    except ZeroDivisionError:  # the documented meaning: x / 0 is NaN
        return math.nan


def _reference_compare(left, op, right) -> bool:
    a, b = _python_value(left), _python_value(right)
    if not (math.isfinite(a) and math.isfinite(b)):
        return False  # the documented meaning: a non-finite side is not true
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _reference_truthy(value) -> bool:
    a = _python_value(value)
    return math.isfinite(a) and a != 0


def _nan_propagating(pick):
    # Python's min/max answer depends on where a NaN sits; numpy's propagate it (documented)
    return lambda *xs: math.nan if any(x != x for x in xs) else pick(xs)


def _reference(python_text: str, row: dict[str, float]) -> bool:
    namespace = {
        "__builtins__": {},
        "A": SimpleNamespace(x=row["A.x"], y=row["A.y"]),
        "B": SimpleNamespace(z=row["B.z"]),
        "compare": _reference_compare,
        "truthy": _reference_truthy,
        "min": _nan_propagating(min),
        "max": _nan_propagating(max),
        "abs": abs,
    }
    # eval of test-generated text only (never plan text): it is the reference, Python itself
    return bool(eval(python_text, namespace))  # one namespace: the lambdas see A and B


@settings(max_examples=400, deadline=None)
@given(
    _arith_conditions(),
    st.lists(st.fixed_dictionaries({s: _sample_values for s in _SIGNALS}), min_size=1, max_size=8),
)
def test_arithmetic_scalar_column_and_python_agree(expression, rows):
    text, python = expression
    condition = parse_condition(text)
    columns = {s: np.array([row[s] for row in rows], dtype=np.float64) for s in _SIGNALS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning leaks out of an evaluation
        column = np.broadcast_to(np.asarray(condition.evaluate(columns), dtype=bool), len(rows))
        for i, row in enumerate(rows):
            scalar = condition.evaluate(row)
            assert isinstance(scalar, bool), (text, scalar)
            expected = _reference(python, row)
            assert scalar == expected, (text, python, row)
            assert bool(column[i]) == expected, (text, python, row)


def test_the_motivating_example_and_non_finite_values():
    cond = parse_condition("abs(MCU_Status.MotorTorque - VCU_Command.TorqueRequest) > 20")
    env = {
        "MCU_Status.MotorTorque": np.array([100.0, 100.0, math.nan, 50.0]),
        "VCU_Command.TorqueRequest": np.array([75.0, 81.0, 0.0, math.nan]),
    }
    assert cond.evaluate(env).tolist() == [True, False, False, False]
    assert cond.signals == ["MCU_Status.MotorTorque", "VCU_Command.TorqueRequest"]
    x = {"A.x": np.array([1.0, 0.0, -2.0])}
    for text, expected in [
        ("A.x / 0 > 0", [False, False, False]),  # not +inf: x / 0 is NaN
        ("A.x / 0 != 5", [False, False, False]),  # NaN is not even "different"
        ("not (A.x / 0 > 0)", [True, True, True]),
        ("1 / (A.x / 0) == 0", [False, False, False]),  # NaN stays NaN
        ("A.x / 0", [False, False, False]),  # a bare non-finite value is not true
        ("min(A.x / 0, 5) < 6", [False, False, False]),
        ("A.x * 1e308 * 10 > 0", [False, False, False]),  # overflow: +inf is not finite
        ("-A.x * 2 == -(A.x * 2)", [True, True, True]),
        ("2 - 1 - 1 == A.x - A.x", [True, True, True]),  # left-associative
        ("1 + 2 * 3 == 7 and 8 / 4 / 2 == 1", [True, True, True]),  # Python's precedence
    ]:
        assert cond_values(text, x) == expected, text
        for i in range(3):
            assert parse_condition(text).evaluate({"A.x": float(x["A.x"][i])}) == expected[i], text


def cond_values(text, env):
    result = parse_condition(text).evaluate(env)
    return np.broadcast_to(np.asarray(result, dtype=bool), env["A.x"].shape).tolist()


def test_choice_names_stay_out_of_arithmetic(dbcs):
    with pytest.raises(ConditionError, match="must be compared with a signal") as info:
        parse_condition('BMS_Status.HvState + 0 == "READY"').bind(dbcs)
    assert info.value.offset == 26
    with pytest.raises(ConditionError, match="must be compared with a signal"):
        parse_condition('abs("READY") > 0').bind(dbcs)
    bound = parse_condition(
        'BMS_Status.HvState == "READY" and BMS_Temps.MaxCellTemp - BMS_Temps.MinCellTemp > 8'
    ).bind(dbcs)
    assert bound.signals == [
        "BMS_Status.HvState",
        "BMS_Temps.MaxCellTemp",
        "BMS_Temps.MinCellTemp",
    ]


def test_every_documented_condition_parses_and_binds(dbcs):
    """The examples in docs/plan-reference.md (conditions section) are real conditions."""
    doc = (Path(__file__).parents[1] / "docs" / "plan-reference.md").read_text(encoding="utf-8")
    section = doc[doc.index("**Conditions**") : doc.index("**Values that are not a number.**")]
    rows = [line.split(" | ")[1] for line in section.splitlines() if line.startswith("| ")]
    examples = [cell.strip("`") for cell in rows if "." in cell and "reaches" not in cell]
    block = section[section.index("```text") + len("```text") : section.rindex("```")]
    examples += [line for line in block.strip().splitlines()]
    assert len(examples) >= 14
    for text in examples:
        condition = parse_condition(text).bind(dbcs)
        values = {name: np.array([0.0, 1.0, 1000.0]) for name in condition.signals}
        assert len(np.broadcast_to(condition.evaluate(values), (3,))) == 3


def test_an_arithmetic_when_judges_the_samples_it_selects(dbcs):
    """End to end through the evaluator: ``when:`` with arithmetic across two messages, as-of
    joined, selects the same samples as the scalar evaluation does sample by sample."""
    from bench.checks.context import EvalContext
    from tests.test_checks_context import run, spec, table

    when = "abs(MCU_Status.MotorTorque - VCU_Command.TorqueRequest) > 20"
    torque_t = [0.0, 1.0, 2.0, 3.0, 4.0]
    torque = [100.0, 130.0, 90.0, 160.0, 50.0]
    messages = {
        "MCU_Status": table(timestamp=torque_t, MotorTorque=torque),
        # no request before t=0.5 (NaN: not judged), then 100 Nm, then 150 Nm from t=2.5
        "VCU_Command": table(timestamp=[0.5, 2.5], TorqueRequest=[100.0, 150.0]),
    }
    ctx = EvalContext(messages=messages, dbcs=dbcs)
    condition = parse_condition(when).bind(dbcs)
    selected = ctx.condition_at(condition, np.array(torque_t)).tolist()
    request = [math.nan, 100.0, 100.0, 150.0, 150.0]
    scalar = [
        condition.evaluate({"MCU_Status.MotorTorque": t, "VCU_Command.TorqueRequest": r})
        for t, r in zip(torque, request, strict=True)
    ]
    assert selected == scalar == [False, True, False, False, True]
    result = run(
        spec(name="Torque follows", signal="MCU_Status.MotorTorque", max=120, when=when),
        dbcs,
        messages=messages,
    )
    # judged: 130 Nm at t=1 (outside 120) and 50 Nm at t=4
    assert result.verdict == "fail" and result.details["samples"] == 2
    assert result.signals[-2:] == ["MCU_Status.MotorTorque", "VCU_Command.TorqueRequest"]
