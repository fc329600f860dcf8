"""Live status: what the live view shows of a running plan, a few times a second at most."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from ..dbc import DbcSet
from ..liveview import Snapshot
from ..plan.checks import RangeCheck
from .state import RunState

KEY_SIGNALS = (
    "BMS_PackStatus.SOC",
    "BMS_PackStatus.PackCurrent",
    "BMS_Temps.MaxCellTemp",
    "BMS_Temps.MinCellTemp",
    "BMS_Status.HvState",
    "MCU_Power.VehicleSpeed",
    "MCU_Temps.StatorTemp",
)
REFRESH_S = 0.25


def shown_signals(dbcs: DbcSet, checks: Iterable[Any]) -> list[str]:
    """The key signals the DBCs have, then every range check's signal."""
    wanted = [s for s in KEY_SIGNALS if _has_signal(dbcs, s)]
    for check in checks:
        if isinstance(check, RangeCheck) and check.signal not in wanted:
            wanted.append(check.signal)
    return wanted


def _has_signal(dbcs: DbcSet, reference: str) -> bool:
    try:
        dbcs.signal(reference)
    except KeyError:
        return False
    return True


class LiveStatus:
    """Feeds :class:`~bench.liveview.LiveView` with :class:`~bench.liveview.Snapshot` objects."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self._last_view = 0.0
        self._rate_mark = (0.0, 0)
        self._rate = 0.0

    def show(self, force: bool = False) -> None:
        wall_now = time.monotonic()
        if not force and wall_now - self._last_view < REFRESH_S:
            return
        self._last_view = wall_now
        state = self.state
        frames = state.pump.frames if state.pump is not None else 0
        mark_time, mark_frames = self._rate_mark
        if wall_now - mark_time >= 1.0:
            self._rate = (frames - mark_frames) / (wall_now - mark_time) if mark_time else 0.0
            self._rate_mark = (wall_now, frames)
        state.view.status(self.snapshot(wall_now), force=force)

    def snapshot(self, wall_now: float) -> Snapshot:
        state = self.state
        signals = {}
        for name, value in list(state.monitor.shown_values().items())[:8]:
            signals[name] = (value, self._unit_or_label(name, value))
        pump = state.pump
        return Snapshot(
            plan=state.plan.name,
            step=state.step_name,
            step_index=state.step_index,
            step_count=len(state.plan.steps),
            sim_time=state.now() - state.start_time,
            wall_time=wall_now - state.wall_start,
            frames_rx=pump.frames_rx if pump else 0,
            frames_tx=pump.frames_tx if pump else 0,
            frames_per_s=self._rate,
            signals=signals,
            near_limits=self._near_limits(),
        )

    def _unit_or_label(self, name: str, value: float) -> str:
        """The unit, or for a value-table signal the name of its value (``READY``)."""
        signal = self.state.dbcs.signal(name).signal
        if signal.choices and value == value and float(value).is_integer():
            label = signal.choices.get(int(value))
            if label is not None:
                return str(label)
        return signal.unit or ""

    def _near_limits(self) -> list[tuple[str, str]]:
        close = []
        monitor = self.state.monitor
        shown = monitor.shown_values()
        for check in self.state.plan.checks:
            if not isinstance(check, RangeCheck):
                continue
            value = shown.get(check.signal, monitor.latest.get(check.signal, math.nan))
            if math.isnan(value):
                continue
            for limit, name in ((check.max, "max"), (check.min, "min")):
                if limit is None:
                    continue
                span = max(abs(limit), 1.0)
                distance = (limit - value) if name == "max" else (value - limit)
                close.append((distance / span, check.name, f"{value:.4g} vs {name} {limit:g}"))
        close.sort()
        return [(name, text) for _, name, text in close[:6]]
