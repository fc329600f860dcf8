"""The condition grammar of plans: ``BMS_Status.HvState == "READY" and BMS_PackStatus.SOC < 80``.

Plans are data, never code: a condition is parsed by this small recursive-descent parser into a
tree of whitelisted nodes, never handed to ``eval``. The grammar::

    condition   := or
    or          := and ("or" and)*
    and         := not ("and" not)*
    not         := "not" not | comparison
    comparison  := operand [("==" | "!=" | "<" | "<=" | ">" | ">=") operand]
    operand     := NUMBER | STRING | SIGNAL | "(" condition ")" | "-" operand
    SIGNAL      := Message.Signal          (identifiers as in a DBC)
    STRING      := "LABEL" | 'LABEL'       (a choice name of the signal it is compared with)

A bare signal is true where it is non-zero (``BMS_Status.HeaterActive``). ``&&``, ``||`` and ``!``
are accepted as spellings of ``and``, ``or`` and ``not``.

The same tree evaluates on scalars (the runner's live checks, frame by frame) and on numpy columns
(the evaluator, whole logs at once): every node maps to a numpy ufunc that accepts both. A missing
value (NaN: no frame of that message yet) makes a comparison false, never true.
"""

from __future__ import annotations

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

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<op>==|!=|<=|>=|<|>|&&|\|\||\(|\)|-|!)
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


# -- the tree ----------------------------------------------------------------------------------


class Node:
    offset: int = 0

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
        return np.negative(self.operand.evaluate(env))

    def children(self) -> Iterator[Node]:
        yield self.operand

    def __str__(self) -> str:
        return f"-{self.operand}"


@dataclass
class Compare(Node):
    op: str
    left: Node
    right: Node
    offset: int = 0

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        left = self.left.evaluate(env)
        right = self.right.evaluate(env)
        if isinstance(left, float | int) and isinstance(right, float | int):
            # Scalars (the runner, every tick): plain Python is ~20x faster than numpy here.
            # NaN compares false under every operator, as in the column form below.
            if left != left or right != right:
                return False
            return bool(_SCALAR[self.op](left, right))
        left = np.asarray(left, dtype=float)
        right = np.asarray(right, dtype=float)
        with np.errstate(invalid="ignore"):
            result = COMPARISONS[self.op](left, right)
        # NaN (no value yet) compares false under every operator, including "!=".
        return result & ~(np.isnan(left) | np.isnan(right))

    def children(self) -> Iterator[Node]:
        yield self.left
        yield self.right

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass
class Truthy(Node):
    """A bare operand used as a condition: true where non-zero (and not missing)."""

    operand: Node
    offset: int = 0

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        value = self.operand.evaluate(env)
        if isinstance(value, float | int):
            return value == value and value != 0  # NaN (missing) is not true
        value = np.asarray(value, dtype=float)
        with np.errstate(invalid="ignore"):
            return (value != 0) & ~np.isnan(value)

    def children(self) -> Iterator[Node]:
        yield self.operand

    def __str__(self) -> str:
        return str(self.operand)


@dataclass
class Logical(Node):
    op: str  # "and" | "or"
    operands: list[Node] = field(default_factory=list)
    offset: int = 0

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

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.current.kind == "keyword" and _KEYWORDS[self.current.text] == word

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise ConditionError("empty condition", 0)
        node = self.parse_or()
        if self.current.kind != "end":
            raise ConditionError(f"unexpected {self.current.text!r}", self.current.offset)
        return node

    def parse_or(self) -> Node:
        return self._parse_logical("or", self.parse_and)

    def parse_and(self) -> Node:
        return self._parse_logical("and", self.parse_not)

    def _parse_logical(self, word: str, parse_operand: Callable[[], Node]) -> Node:
        start = self.current.offset
        operands = [parse_operand()]
        while self.at_keyword(word):
            self.take()
            operands.append(parse_operand())
        return operands[0] if len(operands) == 1 else Logical(word, operands, start)

    def parse_not(self) -> Node:
        if self.at_keyword("not"):
            token = self.take()
            return Not(self.parse_not(), token.offset)
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        start = self.current.offset
        left = self.parse_operand()
        if self.current.kind == "op" and self.current.text in COMPARISONS:
            op = self.take().text
            right = self.parse_operand()
            return Compare(op, left, right, start)
        if isinstance(left, Logical | Not | Compare | Truthy):
            return left
        return Truthy(left, start)

    def parse_operand(self) -> Node:
        token = self.current
        if token.kind == "number":
            self.take()
            return Number(float(token.text), token.offset)
        if token.kind == "string":
            self.take()
            return Label(token.text[1:-1], token.offset)
        if token.kind == "name":
            self.take()
            if "." not in token.text:
                raise ConditionError(f"expected Message.Signal, got {token.text!r}", token.offset)
            return SignalName(token.text, token.offset)
        if token.kind == "op" and token.text == "(":
            self.take()
            inner = self.parse_or()
            if not (self.current.kind == "op" and self.current.text == ")"):
                raise ConditionError("expected ')'", self.current.offset)
            self.take()
            return inner
        if token.kind == "op" and token.text == "-":
            self.take()
            return Negate(self.parse_operand(), token.offset)
        if token.kind == "end":
            raise ConditionError("condition ends too early", token.offset)
        raise ConditionError(
            f'expected a number, a "choice name" or Message.Signal, got {token.text!r}',
            token.offset,
        )


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
    ``reaches: ">= 0"`` form — is read as ``subject >= 0``; offsets still point into ``text``."""
    source = str(text).strip()
    if subject and source[:1] in "<>=!":
        prefix = f"{subject} "
        try:
            tree = _Parser(prefix + source).parse()
        except ConditionError as exc:
            raise ConditionError(exc.message, max(exc.offset - len(prefix), 0)) from None
        for node in tree.walk():
            node.offset = max(node.offset - len(prefix), 0)
        return Condition(source, tree)
    return Condition(source, _Parser(source).parse())
