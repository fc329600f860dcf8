"""Wiring: which buses a run opens, where each sent message goes, the vehicle and instruments.

Everything here that can be wrong in the inputs (a plan sending a message no bus carries,
``--inject`` without the in-process vehicle) is found by :func:`plan_wiring` before anything is
opened or sent, as an :class:`~bench.errors.InputError`. :meth:`Wiring.open` then opens the
buses (python-can), the virtual vehicle (lockstep) and the climate chamber (a bench profile).
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from ..bus import BusGroup, BusSettings, NamedBus, open_bus
from ..dbc import DbcSet
from ..errors import InputError
from ..plan.model import Plan
from ..profile import BenchProfile
from .chamber import ChamberPoller
from .diag import run_ecus
from .options import RunOptions
from .steps import messages_sent

Route = tuple[int, bool]


@dataclass
class Wiring:
    """The buses (by name), message routes and instruments of one run; opened by :meth:`open`."""

    bus_settings: dict[str, BusSettings]
    routes: dict[Route, tuple[str, ...]]
    default_buses: list[str]
    profile: BenchProfile | None
    instruments: list[Any]
    lockstep: bool
    faults: list[Any] = field(default_factory=list)
    buses: BusGroup | None = None
    vehicle_bus: BusGroup | None = None
    vehicle: Any = None
    chamber: Any = None
    chamber_where: str = ""
    chamber_poller: ChamberPoller | None = None

    @property
    def mode(self) -> str:
        return "lockstep" if self.lockstep else "realtime"

    @property
    def settings(self) -> BusSettings:
        """The first bus's settings (the run_start event's interface and bitrate)."""
        return next(iter(self.bus_settings.values()))

    def describe(self) -> str:
        if len(self.bus_settings) == 1 and self.profile is None:
            return self.settings.describe()
        return ", ".join(f"{name}={s.describe()}" for name, s in self.bus_settings.items())

    def open(self, plan: Plan, seed: int, chamber_poll_s: float) -> None:
        """Open every bus, then the vehicle (lockstep) and the chamber.

        Buses opened before a failure stay in :attr:`buses`, so the safe state can still go out
        on them and the executor closes them.
        """
        # Frames carry the bus name as channel only with a profile: without one, as before.
        labelled = self.profile is not None and bool(self.profile.buses)
        opened: list[NamedBus] = []
        vehicle_side: list[NamedBus] = []
        try:
            for name, settings in self.bus_settings.items():
                label = name if labelled else None
                if self.lockstep:
                    # A channel of its own, so runs in one process (tests) never hear each other.
                    settings = settings.merged(channel=f"{settings.channel}-{uuid.uuid4().hex[:8]}")
                    bus = open_bus(settings, preserve_timestamps=True)
                    opened.append(NamedBus(name, settings, bus, label))
                    twin = open_bus(settings, preserve_timestamps=True)
                    vehicle_side.append(NamedBus(name, settings, twin))
                else:
                    opened.append(NamedBus(name, settings, open_bus(settings), label))
        finally:
            if opened:
                self.buses = BusGroup(opened, self.routes, self.default_buses)
            if vehicle_side:
                self.vehicle_bus = BusGroup(vehicle_side, self.routes, self.default_buses)
        self._open_instruments(chamber_poll_s)
        if self.lockstep:
            from virtual_bus import VirtualVehicle

            vehicle = plan.vehicle
            self.vehicle = VirtualVehicle(
                self.vehicle_bus,
                plan.dbcs,
                seed=seed,
                ambient_c=vehicle.ambient_c,
                initial_temp_c=vehicle.initial_temp,
                soc=vehicle.soc,
                faults=self.faults,
                cycle_jitter_ms=vehicle.cycle_jitter_ms,
                startup_delay_ms=vehicle.startup_delay_ms,
                diag_ecus=run_ecus(plan, self.profile),
            )

    def _open_instruments(self, chamber_poll_s: float) -> None:
        from ..instruments import open_instrument

        for instrument in self.instruments:
            if instrument.driver == "chamber" and self.chamber is None:
                self.chamber = open_instrument(instrument)
                self.chamber_where = f"{instrument.name} on {instrument.port}"
                self.chamber_poller = ChamberPoller(self.chamber, chamber_poll_s)

    def close(self) -> None:
        """Shut every bus down, stop polling the chamber and close it (never raises).

        The chamber keeps its set point: a soaked DUT must not warm up behind our back.
        """
        for group in (self.buses, self.vehicle_bus):
            if group is not None:
                with suppress(Exception):  # closing: the run's outcome is already decided
                    group.shutdown()
        if self.chamber_poller is not None:
            self.chamber_poller.stop()
        if self.chamber is not None:
            with suppress(Exception):
                self.chamber.close()


def plan_wiring(plan: Plan, options: RunOptions) -> Wiring:
    """Bus settings, routes, instruments and the time mode of a run (nothing opened yet)."""
    profile = options.bench
    settings = bus_settings(plan, options)
    routes, default = message_routes(plan, profile, settings)
    instruments = list(profile.instruments) if profile else []
    lockstep = (
        all(s.is_virtual for s in settings.values()) and not options.realtime and not instruments
    )
    wiring = Wiring(settings, routes, default, profile, instruments, lockstep)
    wiring.faults = _faults(options.inject, lockstep, plan.dbcs)
    return wiring


def bus_settings(plan: Plan, options: RunOptions) -> dict[str, BusSettings]:
    """Bus name → settings: the bench profile's buses, else the plan's one bus."""
    profile = options.bench
    overrides = {
        "interface": options.interface,
        "channel": options.channel,
        "bitrate": options.bitrate,
    }
    if profile is None or not profile.buses:
        plan_bus = plan.bus
        settings = BusSettings(
            interface=plan_bus.interface,
            channel=str(plan_bus.channel),
            bitrate=plan_bus.bitrate,
            fd=plan_bus.fd,
            data_bitrate=plan_bus.data_bitrate,
        ).merged(**overrides)
        return {settings.channel: settings}
    if len(profile.buses) > 1 and any(value is not None for value in overrides.values()):
        raise InputError(
            "--interface/--channel/--bitrate would apply to every bus of the bench profile "
            f"{profile.path} ({', '.join(b.name for b in profile.buses)}): edit it instead"
        )
    return {bus.name: BusSettings.of_profile(bus).merged(**overrides) for bus in profile.buses}


def message_routes(
    plan: Plan, profile: BenchProfile | None, settings: dict[str, BusSettings]
) -> tuple[dict[Route, tuple[str, ...]], list[str]]:
    """Which buses carry each message (by the profile's DBCs); DBC-less buses take the rest.

    Every message the plan sends must reach a bus: checked here, before anything is sent.
    """
    if profile is None or len(profile.buses) < 2:
        return {}, list(settings)
    routes: dict[Route, list[str]] = {}
    for bus in profile.buses:
        if not bus.dbc:
            continue
        for message in DbcSet.load(bus.dbc).messages:
            routes.setdefault((message.frame_id, message.is_extended_frame), []).append(bus.name)
    default = [bus.name for bus in profile.buses if not bus.dbc]
    if not default:
        for name in sent_messages(plan):
            message = plan.dbcs.message(name)
            if (message.frame_id, message.is_extended_frame) not in routes:
                raise InputError(
                    f"{profile.path}: the plan sends {name} but no bus's DBCs define it "
                    "(add its DBC to a bus, or leave one bus without dbc to carry the rest)"
                )
    return {key: tuple(names) for key, names in routes.items()}, default


def sent_messages(plan: Plan) -> list[str]:
    """Every message a plan may send: its safe state and what its steps' kinds send."""
    names = [frame.message for frame in plan.safe_state]
    for step in plan.steps:
        names += messages_sent(step)
    return list(dict.fromkeys(names))


def _faults(inject: tuple[str, ...], lockstep: bool, dbcs: DbcSet) -> list[Any]:
    if not inject:
        return []
    if not lockstep:
        raise InputError(
            "--inject needs the in-process virtual vehicle (lockstep); for a vehicle in "
            "another process pass --inject to `python -m virtual_bus`"
        )
    from virtual_bus.faults import parse_faults

    return parse_faults(inject, dbcs)
