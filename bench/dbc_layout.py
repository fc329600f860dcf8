"""What cantools makes of one message's layout, and what in it deserves a warning.

cantools (``strict=False``) is the reference for what a DBC means; this module reads its answers
off the loaded :class:`~cantools.database.can.Message` so the vectorized decoder and the warnings
agree with it:

- :func:`mux_layout`: which signals cantools decodes and under which multiplexer values, taken
  from ``message.signal_tree`` (cantools' own multiplexing tree). A signal whose switch is not
  declared ``M`` is in no tree, so cantools never decodes it; multiplexer values named only in the
  switch's ``VAL_`` table are known values without signals (cantools decodes them).
- :func:`strict_problems`: what ``strict=True`` refuses (overlapping signals, a signal that does
  not fit its message). cantools stops at the first problem and names it in prose; this walks the
  same tree the same way (``Message._check_signal_tree``) but collects *every* problem with the
  signals' names. ``tests/test_dbc_layout.py`` proves it flags exactly the messages cantools'
  strict refresh refuses, on the cases and the corpus.
- :func:`message_warnings`: the above plus what is ambiguous or cannot be decoded as written, each
  as one :class:`DbcWarning` line naming file, message and signals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from cantools.database.can import Message, Signal

IEEE_FLOAT_LENGTHS = (16, 32, 64)  # half, single, double: the floats bitstruct (and cantools) read
DECIMAL_DIGITS = 76  # Arrow's widest decimal (decimal256): where signals wider than 64 bits go


@dataclass(frozen=True)
class DbcWarning:
    """One problem of a loaded DBC: ``str()`` is the line ``bench dbc`` prints.

    ``strict``: cantools' strict mode refuses the file for it (``bench dbc --strict`` exits 2).
    """

    path: Path
    message: str
    signals: tuple[str, ...]
    reason: str  # what is wrong, e.g. "overlap (share bits)"
    consequence: str = ""  # what bench (and cantools) make of it
    strict: bool = False

    def __str__(self) -> str:
        return f"{self.problem()}; {self.consequence}" if self.consequence else self.problem()

    def problem(self) -> str:
        """The line without its consequence (what ``--strict`` refuses)."""
        kind = "signal" if len(self.signals) == 1 else "signals"
        names = f" {kind} {', '.join(self.signals)}" if self.signals else ""
        return f"{self.path}: message {self.message}:{names} {self.reason}"


# -- multiplexing as cantools decodes it -----------------------------------------------------------


@dataclass(frozen=True)
class MuxLayout:
    """The multiplexing of one message as cantools decodes it.

    ``decoded``: the signals cantools can return, in DBC order. ``conditions``: for a multiplexed
    signal, its switch and the switch values that carry it (the switch must itself be present).
    ``selectors``: every switch with the values cantools knows (with signals or named in ``VAL_``);
    any other value makes cantools raise, bench counts it as ``mux_unknown``.
    """

    decoded: tuple[str, ...]
    conditions: dict[str, tuple[str, frozenset[int]]] = field(default_factory=dict)
    selectors: dict[str, frozenset[int]] = field(default_factory=dict)


def mux_layout(message: Message) -> MuxLayout:
    conditions: dict[str, tuple[str, set[int]]] = {}
    selectors: dict[str, set[int]] = {}
    seen: set[str] = set()

    def walk(tree: list, parent: tuple[str, int] | None) -> None:
        for node in tree:
            if isinstance(node, str):
                names = [node]
            else:
                (switch, children), *_ = node.items()
                names = [switch]
                selectors.setdefault(switch, set()).update(children)
                for value, subtree in children.items():
                    walk(subtree, (switch, value))
            for name in names:
                seen.add(name)
                if parent is not None:
                    switch_name, value = parent
                    conditions.setdefault(name, (switch_name, set()))[1].add(value)

    walk(message.signal_tree, None)
    return MuxLayout(
        decoded=tuple(s.name for s in message.signals if s.name in seen),
        conditions={k: (sw, frozenset(v)) for k, (sw, v) in conditions.items()},
        selectors={k: frozenset(v) for k, v in selectors.items()},
    )


# -- bits ------------------------------------------------------------------------------------------


def first_network_bit(signal: Signal) -> int:
    """A big-endian signal's MSB as a network bit number: byte * 8 + (7 - bit)."""
    return 8 * (signal.start // 8) + 7 - signal.start % 8


def bit_set(signal: Signal) -> set[int]:
    """The network bit numbers a signal occupies (cantools' ``message_bits`` positions)."""
    if signal.byte_order == "little_endian":
        # bit i of the frame is bit i % 8 of byte i // 8: contiguous per byte, not overall
        return {8 * (i // 8) + 7 - i % 8 for i in range(signal.start, signal.start + signal.length)}
    first = first_network_bit(signal)
    return set(range(first, first + signal.length))


def fits(signal: Signal, length: int) -> bool:
    """Whether the signal lies inside a message of ``length`` bytes (cantools' strict check)."""
    if signal.byte_order == "little_endian":
        return signal.start + signal.length <= 8 * length
    return first_network_bit(signal) + signal.length <= 8 * length


def strict_problems(message: Message) -> list[tuple[tuple[str, ...], str, str]]:
    """Every problem cantools' ``strict=True`` would raise for this message, with signal names.

    The walk is cantools' ``_check_signal_tree``: signals in different branches of one switch may
    share bits; a signal may not share bits with anything that can be in the same frame. Each
    problem: (signal names, what is wrong, what bench and cantools make of it).
    """
    problems: list[tuple[tuple[str, ...], str, str]] = []
    reported: set[tuple[str, str]] = set()
    by_name = {s.name: s for s in message.signals}
    conditions = mux_layout(message).conditions

    def check(bits: dict[int, str], signal: Signal) -> None:
        if not fits(signal, message.length):
            where = f"does not fit in the {message.length}-byte message"
            problems.append(((signal.name,), where, "cantools cannot decode it either"))
            return  # cantools' check stops here too: nothing of it is marked
        for bit in sorted(bit_set(signal)):
            other = bits.get(bit)
            if other is not None and other != signal.name:
                pair = tuple(sorted((signal.name, other)))
                if pair not in reported:
                    reported.add(pair)  # type: ignore[arg-type]
                    names = (other, signal.name)
                    consequence = _overlap(by_name[other], signal, conditions)
                    problems.append((names, "overlap (share bits)", consequence))
            else:
                bits[bit] = signal.name

    def walk(bits: dict[int, str], tree: list) -> None:
        for node in tree:
            if isinstance(node, str):
                check(bits, by_name[node])
                continue
            (switch, children), *_ = node.items()
            check(bits, by_name[switch])
            base = dict(bits)
            for value in sorted(children):
                branch = dict(base)
                walk(branch, children[value])
                bits.update(branch)

    walk({}, message.signal_tree)
    return problems


# -- what cannot be decoded as written --------------------------------------------------------


def undecodable_reason(message: Message, layout: MuxLayout | None = None) -> str | None:
    """Why no frame of this message can be decoded (cantools raises on every one), or None.

    A signal outside multiplexing that no decoder can decode (:func:`undecodable_signals`), or a
    multiplexer switch wider than 64 bits.
    """
    layout = layout or mux_layout(message)
    for signal in message.signals:
        if signal.length > 64 and signal.name in layout.selectors:
            return f"multiplexer switch {signal.name} has {signal.length} bits, more than 64"
    for name, reason in undecodable_signals(message, layout).items():
        if name not in layout.conditions:
            return reason
    return None


def undecodable_signals(message: Message, layout: MuxLayout | None = None) -> dict[str, str]:
    """Signals cantools decodes (in its tree) but cannot unpack, with the reason.

    An IEEE float of a length no IEEE type has, a signal outside the message, an integer of more
    digits than any Arrow column holds. cantools raises on every frame that carries such a signal:
    all frames if it is a plain signal, those of its multiplexer values if it is multiplexed.
    """
    layout = layout or mux_layout(message)
    decoded = set(layout.decoded)
    reasons = {}
    for signal in message.signals:
        if signal.name not in decoded:
            continue
        if signal.is_float and signal.length not in IEEE_FLOAT_LENGTHS:
            reasons[signal.name] = (
                f"signal {signal.name} is an IEEE float of {signal.length} bits "
                f"(only {', '.join(map(str, IEEE_FLOAT_LENGTHS))} exist)"
            )
        elif not fits(signal, message.length):
            reasons[signal.name] = (
                f"signal {signal.name} does not fit in the {message.length}-byte message"
            )
        elif (span := integer_range(signal)) is not None and max(
            len(str(abs(v))) for v in span
        ) > DECIMAL_DIGITS:
            reasons[signal.name] = (
                f"signal {signal.name} ({signal.length} bits) has integer values of more than "
                f"{DECIMAL_DIGITS} digits, more than any Arrow column holds"
            )
    return reasons


def integer_range(signal: Signal) -> tuple[int, int] | None:
    """Lowest and highest physical value when cantools decodes the signal to ``int``, else None.

    cantools keeps Python ints when the raw value is an integer and scale and offset are integers
    (its ``IdentityConversion``/``LinearIntegerConversion``); anything else decodes to float.
    """
    scale, offset = signal.conversion.scale, signal.conversion.offset
    if signal.is_float or not (_integral(scale) and _integral(offset)):
        return None
    scale, offset = int(scale), int(offset)
    if signal.is_signed:
        low, high = -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    else:
        low, high = 0, (1 << signal.length) - 1
    ends = (low * scale + offset, high * scale + offset)
    return min(ends), max(ends)


def _integral(value: object) -> bool:
    # cantools' conversion._is_integer: an int, or a float with no fractional part
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _undecodable_consequence(name: str, layout: MuxLayout) -> str:
    if name in layout.conditions:
        return "cantools cannot decode frames carrying it either; they are counted, not decoded"
    return "cantools cannot decode the message either; its frames are counted, not decoded"


def _overlap(first: Signal, second: Signal, conditions: dict) -> str:
    mine, theirs = conditions.get(first.name), conditions.get(second.name)
    same_codec = (mine is None and theirs is None) or (
        mine is not None and theirs is not None and mine[0] == theirs[0] and mine[1] & theirs[1]
    )
    if first.byte_order != second.byte_order or not same_codec:
        return "each decodes from its own bits, as in cantools"
    # cantools lays same-order signals end to end in one bitstruct format: with an overlap the
    # format is longer than the message and every unpack fails. Each field is still well defined.
    return "cantools cannot decode this message; bench decodes each signal from its own bits"


_BLOCK = re.compile(r"^\s*BO_\s+(\d+)\s", re.M)
_MUX_MARKED = re.compile(r"^\s*SG_\s+(\w+)\s+m\d+M?\s*:", re.M)
_EXTENDED_BIT = 0x80000000  # how a DBC writes a 29-bit id in BO_


def marked_multiplexed(path: Path) -> dict[int, set[str]]:
    """Signals written ``m<value>`` in the file, by the message's DBC id (``BO_`` number).

    cantools keeps no trace of the marker: a signal marked ``m1`` in a message with several ``M``
    switches and no ``SG_MUL_VAL_`` line becomes a plain signal. Only the text tells.
    """
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError:
        return {}
    marked: dict[int, set[str]] = {}
    blocks = list(_BLOCK.finditer(text))
    ends = [block.start() for block in blocks[1:]] + ([len(text)] if blocks else [])
    for block, end in zip(blocks, ends, strict=True):
        names = set(_MUX_MARKED.findall(text, block.end(), end))
        if names:
            marked[int(block.group(1))] = names
    return marked


def message_warnings(
    path: Path, message: Message, marked: dict[int, set[str]] | None = None
) -> list[DbcWarning]:
    """Every warning for one message of the file at ``path``, strict-mode problems first.

    ``marked``: :func:`marked_multiplexed` of the file, for the ambiguous-multiplexing warning.
    """
    layout = mux_layout(message)
    warnings = []
    for names, reason, consequence in strict_problems(message):
        if reason.startswith("does not fit"):
            consequence = _undecodable_consequence(names[0], layout)
        warnings.append(DbcWarning(path, message.name, names, reason, consequence, strict=True))
    said = {w.signals[0] for w in warnings if w.reason.startswith("does not fit")}
    for name, reason in undecodable_signals(message, layout).items():
        if name in said:
            continue  # the strict-mode line names it
        condition = layout.conditions.get(name)
        if condition is not None:
            switch, values = condition
            listed = ", ".join(str(v) for v in sorted(values)[:5])
            reason = f"{reason}, when {switch} is {listed}{', …' if len(values) > 5 else ''}"
        consequence = _undecodable_consequence(name, layout)
        warnings.append(
            DbcWarning(path, message.name, (), f"cannot be decoded: {reason}", consequence)
        )
    for signal in message.signals:
        if signal.length > 64 and signal.name in layout.selectors:
            reason = f"multiplexer switch {signal.name} has {signal.length} bits, more than 64"
            consequence = "its frames are counted, not decoded"
            warnings.append(
                DbcWarning(path, message.name, (), f"cannot be decoded: {reason}", consequence)
            )
    by_name = {s.name: s for s in message.signals}
    for signal in message.signals:
        switch = signal.multiplexer_signal
        if switch is None or signal.name in layout.conditions:
            continue
        if switch not in by_name:
            why = f"is multiplexed by {switch}, which is not a signal of the message"
        else:
            why = f"is multiplexed by {switch}, which is not declared a multiplexer switch (M)"
        consequence = "like cantools, bench never decodes it (a column of nulls)"
        warnings.append(DbcWarning(path, message.name, (signal.name,), why, consequence))
    dbc_id = message.frame_id | (_EXTENDED_BIT if message.is_extended_frame else 0)
    switches = [s.name for s in message.signals if s.is_multiplexer]
    for signal in message.signals:
        if signal.name in (marked or {}).get(dbc_id, ()) and signal.multiplexer_signal is None:
            warnings.append(
                DbcWarning(
                    path,
                    message.name,
                    (signal.name,),
                    f"is marked multiplexed but the message has {len(switches)} switches (M: "
                    f"{', '.join(switches) or 'none'}) and no SG_MUL_VAL_ names its switch",
                    "like cantools, bench decodes it in every frame as a plain signal",
                )
            )
    unusable = undecodable_reason(message, layout) is not None
    broken = undecodable_signals(message, layout)
    for signal in message.signals:
        if unusable or signal.name in broken or signal.name in layout.selectors:
            continue
        if signal.length > 64 and signal.name in layout.decoded:
            warnings.append(
                DbcWarning(
                    path,
                    message.name,
                    (signal.name,),
                    f"has {signal.length} bits, wider than 64",
                    "decoded frame by frame through cantools, "
                    + (
                        "exactly, into a decimal column"
                        if integer_range(signal) is not None
                        else "into a float64 column (cantools gives floats too)"
                    ),
                )
            )
    return warnings
