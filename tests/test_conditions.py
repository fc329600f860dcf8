"""The condition grammar: parsing, binding to the DBCs, scalar and column evaluation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
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
        ("BMS_PackStatus.SOC >", "ends too early", 20),
        ("BMS_PackStatus.SOC > > 3", "expected a number", 21),
        ("(BMS_PackStatus.SOC > 3", "expected ')'", 23),
        ("SOC > 3", "expected Message.Signal", 0),
        ("BMS_PackStatus.SOC > 3 3", "unexpected '3'", 23),
        ("__import__('os')", "expected Message.Signal, got '__import__'", 0),
        ("A.b(1)", "unexpected '('", 3),
        ("BMS_PackStatus.SOC ; 3", "unexpected character ';'", 19),
        ("", "empty condition", 0),
    ],
)
def test_syntax_errors_name_the_column(text, message, offset):
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
