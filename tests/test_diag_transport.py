"""ClockedIsoTp's idle short cut against can-isotp stepped on every call (the reference).

The short cut (bench.diag.transport's docstring) skips ``process()`` while the endpoint has
nothing to do. The reference below is the endpoint as it was before it: ``process()`` at every
step, can-isotp's own ``recv``/``transmitting``/``is_rx_active``. Random exchanges (single and
multi-frame, both directions, lost frames, clock jumps past N_Bs/N_Cr, resets) must give the same
frames, messages, errors and busy answers through both; so must a lockstep vehicle's UDS servers.
Also: can-isotp makes its wall-clock timers only where ClockedIsoTp puts its clock's in their place.
"""

from __future__ import annotations

from dataclasses import asdict

import can
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.diag import client as uds
from bench.diag.catalog import virtual_vehicle_ecus
from bench.diag.transport import ClockedIsoTp, isotp_address
from tests.diag_helpers import lockstep, run_ops

ECUS = virtual_vehicle_ecus()
BMS, MCU = ECUS["BMS"], ECUS["MCU"]


class AlwaysProcess(ClockedIsoTp):
    """The reference: every step calls can-isotp, every question goes to can-isotp."""

    def step(self) -> None:
        self.process(rx_timeout=0.0)

    def take(self) -> bytes | None:
        data = self.recv(block=False)
        return None if data is None else bytes(data)

    @property
    def busy(self) -> bool:
        return self.transmitting() or self.is_rx_active()

    @property
    def idle(self) -> bool:
        return False


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def frame_key(frame: can.Message) -> tuple:
    return frame.arbitration_id, frame.is_extended_id, bytes(frame.data)


payloads = st.one_of(st.binary(min_size=1, max_size=7), st.binary(min_size=8, max_size=300))
sides = st.sampled_from("ts")
pump = st.tuples(
    st.just("pump"), st.sampled_from(["ts", "st"]), st.tuples(st.integers(1, 6), st.integers(0, 60))
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("send"), sides, payloads),
        pump,
        pump,
        pump,
        st.tuples(st.just("deliver"), sides, st.integers(-1, 3)),
        st.tuples(st.just("step"), sides, st.just(0)),
        st.tuples(st.just("take"), sides, st.just(0)),
        st.tuples(st.just("wait"), st.just("-"), st.sampled_from([0.0, 0.01, 0.3, 1.2])),
        st.tuples(st.just("reset"), sides, st.just(0)),
        st.tuples(st.just("noise"), sides, payloads),
    ),
    max_size=40,
)


def play(kind: type[ClockedIsoTp], script: list[tuple], keep: list | None = None) -> list[tuple]:
    """Run ``script`` on a tester and a server of ``kind``; everything observable, in order
    (``keep`` receives the two endpoints)."""
    clock = Clock()
    outbox: dict[str, list[can.Message]] = {"t": [], "s": []}
    ends = {
        "t": kind(isotp_address(BMS), clock, outbox["t"].append),
        "s": kind(isotp_address(BMS, server=True), clock, outbox["s"].append),
    }
    peer = {"t": "s", "s": "t"}
    if keep is not None:
        keep += ends.values()
    seen: list[tuple] = []
    for action, side, arg in script:
        end = ends.get(side)
        if action == "send":
            try:
                end.send(arg)
            except RuntimeError as exc:  # a full transmit queue
                seen.append(("refused", side, str(exc)))
        elif action == "deliver":
            # arg -1: drop the oldest frame on the wire (a lost frame); else deliver up to arg+1
            frames = outbox[side]
            if arg < 0:
                if frames:
                    frames.pop(0)
                continue
            for frame in frames[: arg + 1]:
                ends[peer[side]].feed(frame)
            del frames[: arg + 1]
        elif action == "pump":
            # rounds of: each side steps and its frames reach the other, the n-th one lost
            rounds, lost = arg
            n = 0
            for _ in range(rounds):
                for name in side:
                    ends[name].step()
                    for frame in outbox[name]:
                        if n != lost:
                            ends[peer[name]].feed(frame)
                        n += 1
                    outbox[name].clear()
                for name in "ts":
                    seen.append(("took", name, ends[name].take()))
        elif action == "step":
            end.step()
        elif action == "take":
            seen.append(("took", side, end.take()))
        elif action == "wait":
            clock.t += arg
        elif action == "reset":
            end.reset()
        elif action == "noise":  # a frame on the same ids that is not ISO-TP sense
            end.feed(can.Message(arbitration_id=end.address.get_rx_arbitration_id(), data=arg[:8]))
        for name in "ts":
            seen.append(("busy", name, ends[name].busy, list(ends[name].errors)))
    for name in "ts":
        seen.append(("wire", name, [frame_key(f) for f in outbox[name]]))
    return seen


@settings(max_examples=400, deadline=None)
@given(actions)
def test_idle_short_cut_changes_nothing_observable(script: list[tuple]) -> None:
    assert play(ClockedIsoTp, script) == play(AlwaysProcess, script)


def test_a_whole_exchange_goes_through_and_leaves_both_ends_idle() -> None:
    """The short cut is taken at all (else the test above proves nothing about it)."""
    script = [("send", "t", bytes(range(100)))]
    script += [("step", "t", 0), ("deliver", "t", 3), ("step", "s", 0), ("deliver", "s", 3)] * 20
    script += [("take", "s", 0)]
    clock = Clock()
    sent: list[can.Message] = []
    ours = ClockedIsoTp(isotp_address(BMS), clock, sent.append)
    assert not ours.idle
    ours.step()
    assert ours.idle and not ours.busy and ours.take() is None
    ours.send(b"\x22\xf1\x90")
    assert not ours.idle
    ours.step()
    assert ours.idle and [bytes(f.data[:4]) for f in sent] == [b"\x03\x22\xf1\x90"]
    assert ("took", "s", bytes(range(100))) in play(ClockedIsoTp, script)


def vehicle_exchange(reference: bool) -> list[tuple]:
    """Lockstep vehicle with a heater fault: clear, reads, a multi-frame DID read, then idle."""
    with lockstep("heater_fail") as ls:
        if reference:
            for server in ls.vehicle.uds.values():
                old = server.transport
                server.transport = AlwaysProcess(old.address, old._clock, old._send_frame)
        ls.run(0.3, step=0.01)
        ops = [
            uds.clear_dtcs(BMS),
            uds.read_dtcs(BMS),
            uds.read_did(BMS, "software_version"),
            uds.read_did(BMS, "ecu_serial_number"),
            uds.read_dtcs(MCU),
            uds.count_dtcs(MCU, 0x08),
        ]
        exchanges = run_ops(ls, ops)
        ls.run(ls.vehicle.now + 6.0, step=0.01)  # past S3: the sessions time out meanwhile
        (late,) = run_ops(ls, [uds.read_dtcs(BMS)])
        frames = [(f.timestamp, *frame_key(f)) for f in ls.frames]
    results = [asdict(e) for e in [*exchanges, late]]
    return [*results, *frames]


def test_virtual_ecus_answer_the_same_with_and_without_the_short_cut() -> None:
    assert vehicle_exchange(reference=False) == vehicle_exchange(reference=True)


def test_can_isotp_makes_its_timers_only_where_clockedisotp_overrides_it() -> None:
    """The module docstring's claim, against the installed can-isotp: ``Timer(`` is called in
    exactly the four methods ClockedIsoTp replaces, and an endpoint that went through a whole
    multi-frame exchange both ways holds only clock timers."""
    import ast
    import inspect

    from isotp import protocol

    from bench.diag.transport import ClockTimer

    tree = ast.parse(inspect.getsource(protocol.TransportLayerLogic))
    makers = {
        method.name
        for method in ast.walk(tree)
        if isinstance(method, ast.FunctionDef)
        for call in ast.walk(method)
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Timer"
    }
    assert makers == {"__init__", "load_params", "_start_rx_fc_timer", "_start_rx_cf_timer"}
    for name in makers - {"__init__"}:
        assert name in vars(ClockedIsoTp), name

    script = [("send", "t", bytes(range(60))), ("pump", "ts", (6, 99))]
    script += [("send", "s", bytes(range(90))), ("pump", "st", (6, 99))]
    ends: list[ClockedIsoTp] = []
    seen = play(ClockedIsoTp, script, keep=ends)
    assert ("took", "s", bytes(range(60))) in seen and ("took", "t", bytes(range(90))) in seen
    for end in ends:
        end._start_rx_fc_timer()
        end._start_rx_cf_timer()
        timers = [v for k, v in vars(end).items() if k.startswith("timer_")]
        assert len(timers) == 3 and all(isinstance(t, ClockTimer) for t in timers)
