"""The safe state: the plan's ``safe_state`` frames on every bus that still works, then held.

Frames first, records after: the log line and the abort event wait until the frames are out
(writing them — run.log, the terminal, events.parquet flushed at once — took 2-4 ms, a third of
the abort latency budget; benchmarks/bench_abort_latency.py). Nothing drives a signal after the
abort (ramps and controllers are frozen), and no cyclic send task can send one more unsafe frame
after the safe one.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

from ..bus import BusFault
from ..errors import HarnessError
from .options import StopRun
from .state import RunState


def send_safe_state(state: RunState, t: float, before_record: Any = None) -> list[str]:
    """Send the safe state; returns the failures (bus: reason). Raises HarnessError when no frame
    of it went out (every bus down, or none was ever opened).

    ``before_record()`` runs once the frames are out, before the ``safe_state`` events (the
    executor records the abort there).
    """
    scheduler, pump = state.scheduler, state.pump
    if scheduler is None or pump is None:
        raise HarnessError("the bus was never opened")
    state.activities = []
    scheduler.freeze(t)  # no ramp or controller drives a signal after the abort
    failures: list[str] = []
    sent: list[tuple[str, dict[str, Any]]] = []
    if state.cyclic is not None:
        state.cyclic.stop([frame.message for frame in state.plan.safe_state], t)
    for frame in state.plan.safe_state:
        values = dict(frame.signals)
        if scheduler.is_running(frame.message):
            scheduler.update(frame.message, values)
        try:  # straight to the bus: no segment write between the frames
            pump.send_now(scheduler.once(frame.message, values, t))
        except BusFault as fault:  # a dead bus must not keep the others from being safe
            failures.append(f"{frame.message}: {fault}")
            if not fault.sent:
                continue
        sent.append((frame.message, values))
    if state.cyclic is not None:
        with suppress(BusFault):
            state.cyclic.sync(time.time())  # back to the kernel, safe values
    # The record, once every frame is out.
    if before_record is not None:
        before_record()
    for message, values in sent:
        state.event(t, "safe_state", message, {"signals": values})
    if failures and not sent:
        raise HarnessError("; ".join(failures))
    state.safe_state_sent = True
    return failures


def hold_safe_state(state: RunState) -> None:
    """Keep the (safe) periodic frames going briefly and record how the vehicle reacts."""
    pacer = state.pacer
    if pacer is None:
        return
    end_wall = time.monotonic() + pacer.hold_wall_s
    end = pacer.now() + state.options.safe_hold_s
    while pacer.now() < end and time.monotonic() < end_wall:
        try:
            pacer.tick()
        except StopRun:
            continue  # further breaches while already safe are in the log
        except Exception:
            break
