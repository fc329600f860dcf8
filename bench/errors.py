"""Errors the harness reports to a person in one line, each with the exit code of DESIGN.md.

Exit codes: 0 all checks pass, 1 a check failed, 2 usage/plan/DBC/log error (nothing was run),
3 aborted or harness/interface error.
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INPUT = 2
EXIT_ABORTED = 3


class BenchError(Exception):
    """A one-line message for a person and an exit code; never shown as a traceback."""

    exit_code = EXIT_ABORTED


class InputError(BenchError):
    """Bad input: a plan, DBC, log file or argument. Nothing was sent on a bus.

    The message names the file, the place (``file:line:column`` where known) and the reason.
    """

    exit_code = EXIT_INPUT


class HarnessError(BenchError):
    """The harness or an interface failed mid-run (adapter lost, bus-off, serial port gone)."""

    exit_code = EXIT_ABORTED


def one_line(text: str) -> str:
    """Fold a multi-line message from a library into one line, whitespace collapsed."""
    return " ".join(str(text).split())
