"""Terminal output with rich: tables for people; plain lines when stdout is not a terminal."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .rundir import REPORT_FILE

if TYPE_CHECKING:
    from .summary import CheckResult


def _range(signal: dict) -> str:
    low, high = signal["minimum"], signal["maximum"]
    if low is None and high is None:
        return ""
    return f"{_num(low)} … {_num(high)}"


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}"


def _mux(signal: dict) -> str:
    if signal["is_multiplexer"]:
        return "multiplexer"
    ids = signal["multiplexer_ids"]
    if not ids:
        return ""
    if len(ids) > 3 and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{signal['multiplexer_signal']}={ids[0]}-{ids[-1]}"
    return f"{signal['multiplexer_signal']}={','.join(map(str, ids))}"


def print_dbc_table(messages: list[dict], files: list[str], console: Console | None = None) -> None:
    if console is None:
        # Piped output (a file, less, CI logs) gets a wide table instead of rich's 80 columns.
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)
    table = Table(title=f"DBC set: {', '.join(files)}", show_lines=False, expand=False)
    for column, justify in [
        ("Signal", "left"),
        ("ID", "right"),
        ("Len", "right"),
        ("Cycle", "right"),
        ("Sender", "left"),
        ("Bits", "left"),
        ("Unit", "left"),
        ("Range", "right"),
        ("Choices", "left"),
        ("Mux", "left"),
    ]:
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column == "Signal")
    for message in messages:
        flags = [
            f for f, on in (("FD", message["is_fd"]), ("ext", message["is_extended_id"])) if on
        ]
        cycle = f"{message['cycle_time_ms']} ms" if message["cycle_time_ms"] else "event"
        table.add_row(
            Text(message["name"], style="bold cyan"),
            message["frame_id_hex"] + (f" ({', '.join(flags)})" if flags else ""),
            str(message["length"]),
            cycle if message["send_type"] != "Event" else f"event ({message['send_type']})",
            ", ".join(message["senders"]),
            "",
            "",
            "",
            "",
            "multiplexed" if message["multiplexed"] else "",
        )
        for signal in message["signals"]:
            order = "Intel" if signal["byte_order"] == "little_endian" else "Motorola"
            kind = "float" if signal["is_float"] else ("signed" if signal["is_signed"] else "")
            choices = ", ".join(f"{k}={v}" for k, v in signal["choices"].items())
            table.add_row(
                Text("  " + signal["name"]),
                "",
                "",
                "",
                "",
                f"{signal['start']}|{signal['length']} {order} {kind}".strip(),
                signal["unit"],
                _range(signal),
                choices,
                _mux(signal),
            )
        table.add_section()
    console.print(table)


NOT_PASSED = ("fail", "marginal", "inconclusive", "error")
"""The verdicts a person must look at after a run (``bench run`` lists only these)."""


def check_lines(checks: Iterable[CheckResult], verdicts: Iterable[str] | None = None) -> list[str]:
    """One line per check — ``FAIL          name: message`` — where the message says what was
    observed against which limit. ``bench evaluate`` prints every check this way, ``bench run``
    the ones in :data:`NOT_PASSED`: one function, so both say the same thing the same way."""
    wanted = None if verdicts is None else set(verdicts)
    return [
        f"{check.verdict.upper():<13} {check.name}: {check.message}"
        for check in checks
        if wanted is None or check.verdict in wanted
    ]


def report_line(run_dir: Path) -> str:
    """Where the HTML report is, or that there is none (its writer failed or is not installed)."""
    report = run_dir / REPORT_FILE
    return f"report: {report}" if report.is_file() else f"report: none written in {run_dir}"
