"""YAML with positions: plain Python data plus the node of every key and value.

PyYAML's composer gives a node tree whose marks know line and column; the constructor turns
scalars into Python values. Building the data ourselves from the nodes keeps, for every path into
the data (``("steps", 3, "send", "message")``), the key node and the value node, so any later
error can name ``file:line:column``. It also lets us refuse what ``yaml.safe_load`` silently
accepts: a key given twice in one mapping (PyYAML keeps the last).

Merge keys (``<<: *defaults``) and aliases work as in YAML; the position of a merged value is
where it was written (at the anchor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"

# libyaml's parser is ~15x faster than the pure-Python one, with the same marks (in characters).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(Exception):
    """A YAML problem at a 0-based line and column."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


@dataclass(frozen=True)
class Duplicate:
    mapping: Loc
    key: str
    node: Node
    first: Node


@dataclass
class Source:
    """A parsed YAML document: its data, and the key/value nodes of every path into it."""

    text: str
    root: Node
    data: Any
    values: dict[Loc, Node] = field(default_factory=dict)
    keys: dict[Loc, Node] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)

    def node(self, loc: Loc, *, key: bool = False) -> Node:
        """The node at ``loc`` (its key node with ``key``), else that of its nearest parent."""
        if key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), -1, -1):
            found = self.values.get(loc[:end])
            if found is not None:
                return found
        return self.root

    def exact(self, loc: Loc) -> bool:
        return loc in self.values

    def position(self, node: Node, offset: int | None = None) -> tuple[int, int]:
        """0-based (line, column) of ``node``, or of character ``offset`` of its string value."""
        if offset is None or not isinstance(node, ScalarNode):
            return node.start_mark.line, node.start_mark.column
        index = _align(self.text, node, offset)
        if index is None:
            return node.start_mark.line, node.start_mark.column
        line = self.text.count("\n", 0, index)
        return line, index - (self.text.rfind("\n", 0, index) + 1)


def parse(text: str) -> Source:
    """Parse one YAML document; :class:`YamlError` for syntax errors and unusable constructs."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line, column = (mark.line, mark.column) if mark else (0, 0)
        raise YamlError(line, column, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:  # e.g. a non-printable character in the reader
        raise YamlError(0, 0, f"invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()
    if root is None:
        raise YamlError(0, 0, "the plan is empty (expected a mapping with name, dbc, steps …)")
    source = Source(text=text, root=root, data=None)
    source.data = _Builder(loader, source).build(root, ())
    return source


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, source: Source) -> None:
        self.loader = loader
        self.source = source
        self.active: set[int] = set()  # nodes being built: an alias inside itself recurses

    def build(self, node: Node, loc: Loc) -> Any:
        self.source.values[loc] = node
        if id(node) in self.active:
            raise YamlError(node.start_mark.line, node.start_mark.column, "recursive alias")
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            return self._scalar(node)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or node.start_mark
            raise YamlError(mark.line, mark.column, f"invalid YAML: {exc.problem}") from None

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node)
            if key in seen:
                self.source.duplicates.append(Duplicate(loc, key, key_node, seen[key]))
            seen.setdefault(key, key_node)
        try:
            self.loader.flatten_mapping(node)  # resolves << merges; explicit keys come last
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or node.start_mark
            raise YamlError(mark.line, mark.column, f"invalid YAML: {exc.problem}") from None
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            self.source.keys[(*loc, key)] = key_node
            result[key] = self.build(value_node, (*loc, key))
        return result

    def _key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise YamlError(
                node.start_mark.line, node.start_mark.column, "a key must be a plain word"
            )
        value = self._scalar(node)
        # Keys as written: YAML 1.1 would turn `on:` into True and `1:` into 1.
        return value if isinstance(value, str) else str(node.value)


def _align(text: str, node: ScalarNode, offset: int) -> int | None:
    """Index in ``text`` of character ``offset`` of the scalar's value (folding, quotes and
    escapes skipped); None when the source cannot be matched to the value."""
    value = str(node.value)
    position, end = node.start_mark.index, node.end_mark.index
    if node.style in ("|", ">"):
        newline = text.find("\n", position, end)
        if newline < 0:
            return None
        position = newline + 1
    elif node.style in ('"', "'"):
        position += 1
    last = position - 1
    for index, char in enumerate(value):
        if char.isspace():
            continue
        while position < end and text[position] != char:
            if not (text[position].isspace() or text[position] in "\\'\""):
                return None
            position += 1
        if position >= end:
            return None
        if index >= offset:
            return position
        last = position
        position += 1
    return last + 1
