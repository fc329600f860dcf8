"""The ``diag:`` step at run time: UDS exchanges through the run's frame pump.

The requests and responses are ISO-TP frames on the bus like any other, sent and received by
:class:`~bench.run.pump.FramePump`, so the recording holds every one (and ``bench evaluate``
judges the ``dtc:``/``did:`` checks from them). The tester is a
:class:`~bench.diag.client.SteppedClient` stepped by every tick of the run: in lockstep the
virtual ECUs answer in simulated time while the pump keeps advancing it (no wall-clock wait ever
blocks the run), in real time the same ticks run on the wall clock with the cyclic sends going
on meanwhile. Each finished exchange is also recorded as a ``diag`` event with its decoded result
(DTCs with labels and status bits, DID values with units, or the error) for the console and
the report; the verdicts still come from the frames.
"""

from __future__ import annotations

from typing import Any

import can

from ..diag.catalog import Ecu, plan_ecus, with_addressing
from ..diag.client import Exchange, Operation, SteppedClient, clear_dtcs, read_did, read_dtcs
from ..plan.model import DiagSpec, Step
from .state import Activity, RunState

NOT_ANSWERED = "the step ended before the response"


def run_ecus(plan: Any, profile: Any = None) -> dict[str, Ecu]:
    """The ECUs of a run: the catalog, the plan's diagnostics: section, then the bench
    profile's [diagnostics.*] tables (the bench's wiring wins)."""
    ecus = plan_ecus(plan)
    if profile is not None and getattr(profile, "diagnostics", None):
        ecus = with_addressing(ecus, profile.diagnostic_addressing())
    return ecus


def addressing_json(ecus: dict[str, Ecu]) -> dict[str, dict[str, Any]]:
    """ECU name -> its ids and addressing, for the run_start event (re-evaluation reads it)."""
    return {
        name: {
            "request_id": ecu.request_id,
            "response_id": ecu.response_id,
            "addressing": ecu.addressing,
        }
        for name, ecu in ecus.items()
    }


def operations(spec: DiagSpec, ecus: dict[str, Ecu]) -> list[Operation]:
    """Per ECU in order: clear DTCs, read DTCs, read each of the DIDs it has."""
    ops: list[Operation] = []
    for name in spec.ecu:
        ecu = ecus[name]
        if spec.clear_dtcs:
            ops.append(clear_dtcs(ecu))
        if spec.read_dtcs is not None:
            ops.append(read_dtcs(ecu, spec.read_dtcs.status_mask))
        # Each ECU reads the DIDs it has (validation made sure every DID is on one of them).
        ops += [read_did(ecu, did) for did in spec.read_dids if _has_did(ecu, did)]
    return ops


def _has_did(ecu: Ecu, name: str) -> bool:
    return any(did.name == name for did in ecu.dids)


def start_diag(state: RunState, step: Step, t: float) -> None:
    """Start the step's exchanges; an Activity ends the step when the last is over."""
    spec = step.diag
    assert spec is not None and state.pump is not None
    pump = state.pump
    ecus = run_ecus(state.plan, state.wiring.profile)

    def send_frame(frame: can.Message) -> None:
        frame.timestamp = state.now()
        pump.transmit(frame)

    def on_exchange(exchange: Exchange) -> None:
        at = exchange.t_response or state.now()
        detail: dict[str, Any] = exchange.to_json(ecus[exchange.ecu])
        detail["step"] = step.name
        state.event(at, "diag", exchange.ecu, detail)
        state.say(("FAILED: " if exchange.error else "") + exchange.summary(), at)

    client = SteppedClient(operations(spec, ecus), state.now, send_frame, on_exchange)
    pump.listeners.append(client.feed)
    state.tickers.append(client.step)
    state.event(t, "stimulus", "diag", {"diag": spec.model_dump(exclude_defaults=True)})
    client.step()

    def finish(now: float) -> None:
        if not client.done:
            client.abandon(NOT_ANSWERED)
        pump.listeners.remove(client.feed)
        state.tickers.remove(client.step)

    state.activities.append(Activity("diag", lambda now: client.done, finish))
