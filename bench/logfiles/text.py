"""Text logs read by python-can's readers, line by line, so that every problem names its line.

python-can's text readers (``ASCReader``, ``TRCReader``) take any iterator of lines, but never say
which line a message came from, skip lines they do not understand without a word, and raise
``ValueError("invalid literal for int() with base 16: 'ZZZ'")`` with no place. :class:`Lines`
hands them the file a line at a time and remembers the line number, so bench can name the line of
an error, and sees which lines produced no frame: a line the format allows to be skipped
(comments, statistics, status lines) is skipped quietly; a line that looks like a frame but is not
one is an error; anything else is counted and reported with the numbers of the first few.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import can
import pyarrow as pa

from ..errors import InputError
from ..frames import BadValue, FrameProblem, message_row, table_from_rows
from .base import Read, Source, reason

#: How many line numbers of unrecognised lines a report names.
SHOWN_LINES = 5


class Lines:
    """An iterator over a text file's lines that remembers the number of the last one given out.

    ``pending`` holds the lines given out since the consumer last cleared it (number, text):
    the lines a reader consumed to produce its last message, the last of them its own.
    """

    def __init__(self, file: io.TextIOBase) -> None:
        self.file = file
        self.number = 0
        self.text = ""
        self.pending: list[tuple[int, str]] = []

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        text = self.text = next(self.file)
        self.number += 1
        self.pending.append((self.number, text))
        return text

    def take_pending(self) -> list[tuple[int, str]]:
        pending, self.pending = self.pending, []
        return pending

    @property
    def closed(self) -> bool:
        return self.file.closed

    def close(self) -> None:
        self.file.close()


@dataclass
class TextFormat:
    """What bench knows about a text format beyond python-can's reader.

    ``quiet(line)``: the format allows this line to be skipped. ``diagnose(line)``: for a line
    that looks like a frame but is not a valid one, ``(column, reason)``; None otherwise.
    """

    kind: str
    quiet: Callable[[str], bool]
    diagnose: Callable[[str], tuple[int, str] | None]


@dataclass
class Unrecognised:
    """Lines no frame came from and the format does not allow: how many, the first few."""

    count: int = 0
    first: list[int] = field(default_factory=list)

    def add(self, number: int) -> None:
        self.count += 1
        if len(self.first) < SHOWN_LINES:
            self.first.append(number)


@dataclass
class Collected:
    """Frames collected from a python-can text reader, with each frame's line number.

    One chunk of the file; ``unrecognised`` is the whole file's up to here (final in the last
    chunk)."""

    frames: pa.Table
    line_numbers: list[int]
    unrecognised: Unrecognised = field(default_factory=Unrecognised)
    last: bool = True


def collect(
    source: Source,
    fmt: TextFormat,
    make_reader: Callable[[Lines], can.io.generic.MessageReader],
    *,
    rows: int | None = None,
    on_lines: Callable[[list[tuple[int, str]]], None] | None = None,
    adjust: Callable[[can.Message, Lines], None] | None = None,
) -> Iterator[Collected]:
    """Run python-can's reader over ``source`` line by line (see the module docstring), giving
    a :class:`Collected` every ``rows`` frames (None: one for the whole file) and a last one
    (``last=True``, possibly without frames) at the end.

    ``on_lines`` sees every line that produced no frame (header and trigger lines carry the
    start date in ASC); ``adjust(message, lines)`` may check or change each message before it
    is stored (``lines.text`` is the message's own line).
    Raises :class:`InputError` naming ``path:line:column`` for a line that is not a valid frame,
    when reading reaches it.
    """
    path = source.path
    found: list[tuple] = []
    numbers: list[int] = []
    unrecognised = Unrecognised()
    frames = 0

    def passed(lines: list[tuple[int, str]]) -> None:
        if on_lines is not None:
            on_lines(lines)
        for number, text in lines:
            if fmt.quiet(text):
                continue
            diagnosed = fmt.diagnose(text)
            if diagnosed is not None:
                raise InputError(f"{path}:{number}:{diagnosed[0]}: {diagnosed[1]}")
            unrecognised.add(number)

    try:
        lines = Lines(source.open_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or reason(exc)})") from None
    problem = None
    try:
        reader = make_reader(lines)
        pending = lines.pending
        for message in reader:
            if len(pending) > 1:
                passed(pending[:-1])
            pending.clear()
            if adjust is not None:
                adjust(message, lines)
            found.append(message_row(message))
            numbers.append(lines.number)
            if rows is not None and len(found) >= rows:
                frames += len(found)
                yield _chunk(path, found, numbers, unrecognised, last=False)
                found, numbers = [], []
        passed(lines.take_pending())
    except InputError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
        # python-can's parsers fail with these on a malformed line; name the line and the column
        diagnosed = fmt.diagnose(lines.text)
        column, why = (
            diagnosed if diagnosed is not None else (1, f"not a valid line ({reason(exc)})")
        )
        cut = "" if lines.text.endswith("\n") else " (the last line is cut off: truncated file?)"
        problem = f"{path}:{lines.number}:{column}: {why}{cut}"
    except (OSError, EOFError) as exc:  # gzip: truncated or corrupt stream
        place = f" after line {lines.number}" if lines.number else ""
        problem = f"{path}: corrupt or truncated {fmt.kind} file{place} ({reason(exc)})"
    finally:
        lines.close()
    if problem is not None:
        # raised outside the handler: no reference to the reader's frames keeps the file open
        raise InputError(problem)
    if not frames and not numbers and unrecognised.count:
        shown = ", ".join(str(n) for n in unrecognised.first)
        why = f"no frame; unrecognised line(s) {shown}"
        raise InputError(f"{path}: not a valid {fmt.kind} file ({why})")
    yield _chunk(path, found, numbers, unrecognised, last=True)


def _chunk(
    path: Path, found: list[tuple], numbers: list[int], unrecognised: Unrecognised, *, last: bool
) -> Collected:
    try:
        table = table_from_rows(found)
    except BadValue as exc:
        problem = f"{path}:{numbers[exc.problem.row]}: {exc.problem.reason}"
    else:
        return Collected(table, numbers, unrecognised, last)
    raise InputError(problem)


def unrecognised_report(path: Path, unrecognised: Unrecognised) -> list[str]:
    """One line for :attr:`Read.skipped` saying which unrecognised lines were skipped."""
    if not unrecognised.count:
        return []
    shown = ", ".join(str(n) for n in unrecognised.first)
    more = ", …" if unrecognised.count > SHOWN_LINES else ""
    return [
        f"{path.name}: {unrecognised.count} unrecognised line(s) skipped (line {shown}{more})",
    ]


def read_line(source: Source, number: int) -> str:
    """Line ``number`` (1-based) of a text log, to diagnose a problem found in the frame table."""
    with source.open_text() as file:
        return next(itertools.islice(file, number - 1, None), "")


def text_read(source: Source, fmt: TextFormat, collected: Collected, **kwargs: object) -> Read:
    """A :class:`Read` of one chunk whose places are ``path:line:column``; ``kwargs`` (notes,
    start) and what was skipped go with the last chunk only."""

    def describe(problem: FrameProblem) -> str:
        number = collected.line_numbers[problem.row]
        found = fmt.diagnose(read_line(source, number))
        if found is not None:
            return f"{source.path}:{number}:{found[0]}: {found[1]}"
        return f"{source.path}:{number}: {problem.reason}"

    return Read(
        collected.frames,
        describe,
        skipped=unrecognised_report(source.path, collected.unrecognised) if collected.last else [],
        **(kwargs if collected.last else {}),  # type: ignore[arg-type]
    )


def tokens(line: str) -> Iterator[tuple[int, str]]:
    """Whitespace-separated tokens of ``line`` with their 1-based columns."""
    column = 0
    for token in line.split():
        column = line.index(token, column)
        yield column + 1, token
        column += len(token)
