"""Ctrl-C and SIGTERM: what a signal ends, and the one line that says what was left undone.

While a plan runs, the first INT/TERM asks the run to stop (safe state, recording closed; see
:mod:`bench.run.executor`) and later ones while it stops are noted, not obeyed: the safe state
and the recording come first. During evaluation and reporting (``bench run`` after its run,
``bench evaluate``, ``bench report``) a signal ends the command: :class:`Interrupted`, exit 3,
one line naming what was not done. The recording is never touched by those phases, and their
outputs are written atomically, so what is on disk stays whole.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import EXIT_ABORTED

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A signal ended evaluation or reporting; the message says what was left undone.

    A BaseException, as KeyboardInterrupt is: no ``except Exception`` on the way (a report that
    could not be rendered is otherwise only a warning) may swallow it. Exit code 3.
    """

    exit_code = EXIT_ABORTED


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@contextmanager
def handled(handler: Callable[[int], None]) -> Iterator[None]:
    """Route INT and TERM to ``handler(signum)`` for the block (main thread only; elsewhere
    Python cannot install handlers and the block runs with the process's own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda signum, _frame: handler(signum)) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def ends_phase(phase: str, undone: str) -> Iterator[None]:
    """A signal during the block raises :class:`Interrupted`: ``<SIG> during <phase>: <undone>``."""

    def stop(signum: int) -> None:
        raise Interrupted(f"{signal_name(signum)} during {phase}: {undone}")

    with handled(stop):
        yield
