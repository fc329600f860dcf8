"""The condition grammar of plans: ``abs(MCU_Status.MotorTorque - VCU_Command.TorqueRequest) > 20``.

Plans are data, never code: a condition is parsed by this small recursive-descent parser into a
tree of whitelisted nodes, never handed to ``eval``. The grammar (loosest binding first)::

    condition   := or
    or          := and ("or" and)*
    and         := not ("and" not)*
    not         := "not" not | comparison
    comparison  := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum]
    sum         := product (("+" | "-") product)*
    product     := unary (("*" | "/") unary)*
    unary       := "-" unary | atom
    atom        := NUMBER | STRING | SIGNAL | FUNCTION "(" sum ("," sum)* ")" | "(" condition ")"
    SIGNAL      := Message.Signal          (identifiers as in a DBC)
    STRING      := "LABEL" | 'LABEL'       (a choice name of the signal it is compared with)
    FUNCTION    := abs | min | max         (abs of one value; min/max of two or more)

Precedence and associativity are Python's: ``a - b - c`` is ``(a - b) - c``, ``-a * b`` is
``(-a) * b``, ``*`` and ``/`` bind tighter than ``+`` and ``-``, comparisons do not chain. Every
node is either a *value* (numbers, signals, arithmetic) or a *condition* (comparisons, ``and``,
``or``, ``not``); the parser rejects a condition where a value is needed (``(A.x > 1) + 2``). A
bare value used as a condition is true where it is non-zero (``BMS_Status.HeaterActive``).
``&&``, ``||`` and ``!`` are accepted as spellings of ``and``, ``or`` and ``not``.

Numbers are float64. A value that is not a finite number has one meaning: **a comparison with a
non-finite side is false, and so is a non-finite bare value**. Such values are a missing signal
(NaN: no frame of that message yet), a division by zero (``x / 0`` is NaN whatever ``x`` is — not
±inf, so nothing computed from it, such as ``1 / (x / 0)``, becomes finite again), anything
computed from a NaN (``min``/``max`` included) and a float overflow (±inf, ``inf - inf`` is NaN).
``not`` negates that false as Python's ``not`` would: ``not (A.x / 0 > 1)`` is true.

The same tree evaluates on scalars (the runner's live checks, frame by frame: plain Python floats,
which are ~20x faster than numpy at one value) and on numpy columns (the evaluator, whole logs at
once). Both are IEEE-754 float64 with the same correctly rounded ``+ - * /``, so they give the same
bits, hence the same truth values (Python's own float arithmetic is the reference, with its
ZeroDivisionError read as NaN); ``tests/test_conditions.py`` property-tests them against each
other and against Python's own arithmetic on random expressions.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
_SCALAR: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_KEYWORDS = {"and": "and", "or": "or", "not": "not", "&&": "and", "||": "or", "!": "not"}
FUNCTIONS: dict[str, tuple[int, int | None]] = {"abs": (1, 1), "min": (2, None), "max": (2, None)}
"""Function name -> (fewest, most) arguments (None: no upper bound)."""

_VALUE = 'a value (a number, Message.Signal, a "choice name", abs/min/max or "(")'

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<op>==|!=|<=|>=|<|>|&&|\|\||\(|\)|\+|-|\*|/|,|!)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)


class ConditionError(ValueError):
    """A condition that does not parse or bind; ``offset`` is the 0-based column in the text."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class SignalLookup(Protocol):
    """What binding needs from a DBC set (``bench.dbc.DbcSet`` satisfies it)."""

    def signal(self, reference: str) -> Any: ...


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    offset: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise ConditionError(f"unexpected character {text[position]!r}", position)
        kind = match.lastgroup or ""
        value = match.group()
        if (kind == "name" and value in _KEYWORDS) or (kind == "op" and value in _KEYWORDS):
            kind = "keyword"
        if kind != "space":
            tokens.append(Token(kind, value, position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# -- arithmetic on scalars and columns ---------------------------------------------------------


def _is_scalar(value: Any) -> bool:
    return isinstance(value, float | int)


def _column(value: Any) -> np.ndarray:
    # float64 always: int columns would wrap on overflow and divide differently from floats
    return np.asarray(value, dtype=np.float64)


def _scalar_divide(left: float, right: float) -> float:
    """``left / right``; division by zero (±0) is undefined: NaN, whatever ``left`` is."""
    return left / right if right != 0 else math.nan


def _column_divide(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left / right`` per sample; NaN where ``right`` is ±0 (numpy alone would give ±inf)."""
    return np.where(right == 0, np.nan, np.divide(left, right))


def _scalar_extreme(values: list[float], pick: Callable[..., float]) -> float:
    # NaN propagates (as numpy's minimum/maximum): the extreme of an unknown value is unknown
    if any(v != v for v in values):
        return math.nan
    return pick(values)


_SCALAR_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _scalar_divide,
}
_COLUMN_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": _column_divide,
}


# -- the tree ----------------------------------------------------------------------------------


class Node:
    offset: int = 0
    is_condition: bool = False  # True: evaluates to truth values; False: to numbers

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def children(self) -> Iterator[Node]:
        return iter(())

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children():
            yield from child.walk()


@dataclass
class Number(Node):
    value: float
    offset: int = 0

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return self.value

    def __str__(self) -> str:
        return f"{self.value:g}"


@dataclass
class Label(Node):
    """A quoted choice name; binding replaces it by the code of the signal it is compared with."""

    text: str
    offset: int = 0
    code: int | None = None

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        if self.code is None:
            raise ConditionError(f"choice name {self.text!r} is not bound to a signal", self.offset)
        return self.code

    def __str__(self) -> str:
        return f'"{self.text}"'


@dataclass
class SignalName(Node):
    name: str
    offset: int = 0

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        try:
            return env[self.name]
        except KeyError:
            raise ConditionError(f"no value for signal {self.name!r}", self.offset) from None

    def __str__(self) -> str:
        return self.name


@dataclass
class Negate(Node):
    operand: Node
    offset: int = 0

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        value = self.operand.evaluate(env)
        if _is_scalar(value):
            return -float(value)
        return np.negative(_column(value))

    def children(self) -> Iterator[Node]:
        yield self.operand

    def __str__(self) -> str:
        return f"-{_wrapped(self.operand)}"


@dataclass
class Arithmetic(Node):
    """``left op right`` for ``op`` in ``+ - * /`` (float64; ``x / 0`` is NaN)."""

    op: str
    left: Node
    right: Node
    offset: int = 0

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        left = self.left.evaluate(env)
        right = self.right.evaluate(env)
        if _is_scalar(left) and _is_scalar(right):
            return _SCALAR_ARITHMETIC[self.op](float(left), float(right))
        with np.errstate(all="ignore"):
            return _COLUMN_ARITHMETIC[self.op](_column(left), _column(right))

    def children(self) -> Iterator[Node]:
        yield self.left
        yield self.right

    def __str__(self) -> str:
        return f"{_wrapped(self.left)} {self.op} {_wrapped(self.right)}"


@dataclass
class Call(Node):
    """``abs(x)``, ``min(a, b, …)``, ``max(a, b, …)``; a NaN argument gives NaN."""

    function: str
    arguments: list[Node] = field(default_factory=list)
    offset: int = 0

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        values = [argument.evaluate(env) for argument in self.arguments]
        if all(_is_scalar(v) for v in values):
            floats = [float(v) for v in values]
            if self.function == "abs":
                return abs(floats[0])
            return _scalar_extreme(floats, min if self.function == "min" else max)
        columns = [_column(v) for v in values]
        if self.function == "abs":
            return np.abs(columns[0])
        combine = np.minimum if self.function == "min" else np.maximum
        result = columns[0]
        for other in columns[1:]:
            result = combine(result, other)
        return result

    def children(self) -> Iterator[Node]:
        yield from self.arguments

    def __str__(self) -> str:
        return f"{self.function}({', '.join(str(a) for a in self.arguments)})"


def _wrapped(node: Node) -> str:
    return f"({node})" if isinstance(node, Arithmetic | Negate) else str(node)


@dataclass
class Compare(Node):
    op: str
    left: Node
    right: Node
    offset: int = 0
    is_condition = True

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        left = self.left.evaluate(env)
        right = self.right.evaluate(env)
        if _is_scalar(left) and _is_scalar(right):
            # Scalars (the runner, every tick): plain Python is ~20x faster than numpy here.
            # A non-finite side (NaN: missing or x / 0; ±inf: overflow) is false for every op.
            if not (math.isfinite(left) and math.isfinite(right)):
                return False
            return bool(_SCALAR[self.op](left, right))
        left = _column(left)
        right = _column(right)
        with np.errstate(invalid="ignore"):
            result = COMPARISONS[self.op](left, right)
        # NaN (no value yet, x / 0) or ±inf compares false under every operator, even "!=".
        return result & np.isfinite(left) & np.isfinite(right)

    def children(self) -> Iterator[Node]:
        yield self.left
        yield self.right

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass
class Truthy(Node):
    """A bare value used as a condition: true where non-zero and finite (not missing)."""

    operand: Node
    offset: int = 0
    is_condition = True

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        value = self.operand.evaluate(env)
        if _is_scalar(value):
            return math.isfinite(value) and value != 0
        value = _column(value)
        return (value != 0) & np.isfinite(value)

    def children(self) -> Iterator[Node]:
        yield self.operand

    def __str__(self) -> str:
        return str(self.operand)


@dataclass
class Logical(Node):
    op: str  # "and" | "or"
    operands: list[Node] = field(default_factory=list)
    offset: int = 0
    is_condition = True

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        results = [operand.evaluate(env) for operand in self.operands]
        if all(isinstance(r, bool) for r in results):
            return all(results) if self.op == "and" else any(results)
        combine = np.logical_and if self.op == "and" else np.logical_or
        result = results[0]
        for other in results[1:]:
            result = combine(result, other)
        return result

    def children(self) -> Iterator[Node]:
        yield from self.operands

    def __str__(self) -> str:
        return f" {self.op} ".join(
            f"({o})" if isinstance(o, Logical) else str(o) for o in self.operands
        )


@dataclass
class Not(Node):
    operand: Node
    offset: int = 0
    is_condition = True

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        value = self.operand.evaluate(env)
        if isinstance(value, bool):
            return not value
        return np.logical_not(value)

    def children(self) -> Iterator[Node]:
        yield self.operand

    def __str__(self) -> str:
        return f"not ({self.operand})"


# -- the parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    @property
    def previous(self) -> Token | None:
        return self.tokens[self.index - 1] if self.index else None

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.current.kind == "keyword" and _KEYWORDS[self.current.text] == word

    def at_op(self, *texts: str) -> bool:
        return self.current.kind == "op" and self.current.text in texts

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise ConditionError("empty condition", 0)
        node = self.condition(self.parse_or())
        if self.current.kind != "end":
            raise self.unexpected("an operator (+ - * / == != < <= > >= and or) or the end")
        return node

    def unexpected(self, expected: str) -> ConditionError:
        """An error at the current token saying what was expected there instead."""
        token = self.current
        if token.kind == "end":
            after = f" after {self.previous.text!r}" if self.previous else ""
            return ConditionError(
                f"condition ends too early{after}: expected {expected}", token.offset
            )
        return ConditionError(f"unexpected {token.text!r}: expected {expected}", token.offset)

    # -- conditions

    def condition(self, node: Node) -> Node:
        """``node`` where a condition is needed: a bare value is true where non-zero."""
        return node if node.is_condition else Truthy(node, node.offset)

    def value(self, node: Node, token: Token) -> Node:
        """``node`` where a value is needed: a condition there is an error at ``token``."""
        if node.is_condition:
            raise ConditionError(
                f"expected a value, got the condition {str(node)!r}: a comparison or "
                "and/or/not cannot be a number",
                token.offset,
            )
        return node

    def parse_or(self) -> Node:
        return self._parse_logical("or", self.parse_and)

    def parse_and(self) -> Node:
        return self._parse_logical("and", self.parse_not)

    def _parse_logical(self, word: str, parse_operand: Callable[[], Node]) -> Node:
        start = self.current.offset
        first = parse_operand()
        if not self.at_keyword(word):
            return first  # may still be a value: "(A.x - B.y) > 3" parses its "(…)" here
        operands = [self.condition(first)]
        while self.at_keyword(word):
            self.take()
            operands.append(self.condition(parse_operand()))
        return Logical(word, operands, start)

    def parse_not(self) -> Node:
        if self.at_keyword("not"):
            token = self.take()
            return Not(self.condition(self.parse_not()), token.offset)
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        first = self.current
        left = self.parse_sum()
        if not (self.current.kind == "op" and self.current.text in COMPARISONS):
            return left
        op = self.take()
        right_token = self.current
        right = self.value(self.parse_sum(), right_token)
        if self.at_op(*COMPARISONS):
            raise ConditionError(
                f"unexpected {self.current.text!r}: comparisons do not chain "
                "(write 'a < b and b < c')",
                self.current.offset,
            )
        return Compare(op.text, self.value(left, first), right, first.offset)

    # -- values

    def parse_sum(self) -> Node:
        return self._parse_binary(("+", "-"), self.parse_product)

    def parse_product(self) -> Node:
        return self._parse_binary(("*", "/"), self.parse_unary)

    def _parse_binary(self, ops: tuple[str, ...], parse_operand: Callable[[], Node]) -> Node:
        first = self.current
        node = parse_operand()
        while self.at_op(*ops):
            op = self.take()
            right_token = self.current
            right = self.value(parse_operand(), right_token)
            node = Arithmetic(op.text, self.value(node, first), right, first.offset)
        return node

    def parse_unary(self) -> Node:
        if self.at_op("-"):
            token = self.take()
            operand_token = self.current
            return Negate(self.value(self.parse_unary(), operand_token), token.offset)
        return self.parse_atom()

    def parse_atom(self) -> Node:
        token = self.current
        if token.kind == "number":
            self.take()
            return Number(float(token.text), token.offset)
        if token.kind == "string":
            self.take()
            return Label(token.text[1:-1], token.offset)
        if token.kind == "name":
            return self.parse_name()
        if self.at_op("("):
            self.take()
            inner = self.parse_or()
            if not self.at_op(")"):
                raise self.unexpected("')' to close '('")
            self.take()
            return inner
        raise self.unexpected(_VALUE)

    def parse_name(self) -> Node:
        token = self.take()
        if token.text in FUNCTIONS:
            return self.parse_call(token)
        if "." in token.text:
            return SignalName(token.text, token.offset)
        if self.at_op("("):
            known = ", ".join(FUNCTIONS)
            raise ConditionError(
                f"unknown function {token.text!r} (functions: {known})", token.offset
            )
        raise ConditionError(
            f"expected Message.Signal or abs/min/max(…), got {token.text!r}", token.offset
        )

    def parse_call(self, name: Token) -> Node:
        fewest, most = FUNCTIONS[name.text]
        if not self.at_op("("):
            raise self.unexpected(f"'(' after {name.text}")
        self.take()
        arguments: list[Node] = []
        while True:
            argument_token = self.current
            arguments.append(self.value(self.parse_sum(), argument_token))
            if self.at_op(","):
                self.take()
                continue
            if self.at_op(")"):
                closing = self.take()
                break
            raise self.unexpected(f"',' or ')' in {name.text}(…)")
        if len(arguments) < fewest or (most is not None and len(arguments) > most):
            wanted = f"exactly {fewest} value" if most == fewest else f"at least {fewest} values"
            raise ConditionError(
                f"{name.text}() takes {wanted}, got {len(arguments)}", closing.offset
            )
        return Call(name.text, arguments, name.offset)


@dataclass
class Condition:
    """A parsed condition: its source text, its tree and the signals it reads."""

    text: str
    root: Node

    @property
    def signals(self) -> list[str]:
        """Signal names in order of first appearance."""
        seen: dict[str, None] = {}
        for node in self.root.walk():
            if isinstance(node, SignalName):
                seen.setdefault(node.name, None)
        return list(seen)

    def bind(self, dbcs: SignalLookup) -> Condition:
        """Check every signal against the DBCs and turn choice names into codes (in place).

        Raises :class:`ConditionError` naming the unknown signal or choice, with a suggestion.
        """
        # Signal names first: a choice name can only be looked up on a signal that exists.
        for node in self.root.walk():
            if isinstance(node, SignalName):
                try:
                    dbcs.signal(node.name)
                except KeyError as exc:
                    raise ConditionError(str(exc.args[0]), node.offset) from None
        for node in self.root.walk():
            if isinstance(node, Compare):
                _bind_labels(node, dbcs)
            if isinstance(node, Truthy) and isinstance(node.operand, Label):
                raise ConditionError(
                    f"choice name {node.operand.text!r} must be compared with a signal",
                    node.offset,
                )
        for node in self.root.walk():
            if isinstance(node, Label) and node.code is None:
                raise ConditionError(
                    f"choice name {node.text!r} must be compared with a signal", node.offset
                )
        return self

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """Evaluate on scalars or equally long numpy columns keyed by ``Message.Signal``."""
        return self.root.evaluate(env)

    def __str__(self) -> str:
        return self.text


def _bind_labels(node: Compare, dbcs: SignalLookup) -> None:
    for label, other in ((node.left, node.right), (node.right, node.left)):
        if not isinstance(label, Label):
            continue
        if not isinstance(other, SignalName):
            raise ConditionError(
                f"choice name {label.text!r} must be compared with a signal", label.offset
            )
        if node.op not in ("==", "!="):
            raise ConditionError(
                f"choice name {label.text!r} can only be compared with == or !=", label.offset
            )
        signal = dbcs.signal(other.name).signal
        choices = {str(name): int(code) for code, name in (signal.choices or {}).items()}
        if label.text not in choices:
            from ..dbc import suggest

            known = ", ".join(choices) or "none"
            hint = suggest(label.text, choices) or f" (choices: {known})"
            raise ConditionError(f"{other.name} has no choice {label.text!r}{hint}", label.offset)
        label.code = choices[label.text]


def parse_condition(text: str, *, subject: str | None = None) -> Condition:
    """Parse ``text``. With ``subject`` (a signal), a text starting with an operator — the
    ``reaches: ">= 0"`` form — is read as ``subject >= 0``; offsets still point into ``text``.

    Raises :class:`ConditionError` with the 0-based column of the offending token in ``text``
    and what was expected there."""
    raw = str(text)
    source = raw.strip()
    lead = len(raw) - len(raw.lstrip())  # offsets count from the text as written
    prefix = f"{subject} " if subject and source[:1] in "<>=!" else ""
    shift = lead - len(prefix)
    try:
        tree = _Parser(prefix + source).parse()
    except ConditionError as exc:
        raise ConditionError(exc.message, max(exc.offset + shift, 0)) from None
    if shift:
        for node in tree.walk():
            node.offset = max(node.offset + shift, 0)
    return Condition(source, tree)
