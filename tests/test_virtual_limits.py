"""The virtual MCU obeys the BMS limits, and MCU and BMS react to a lost VCU_Command.

Lockstep runs on the virtual vehicle, judged on the frames it sends (as the bench sees them).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtual_bus.ecus import bms as bms_mod
from virtual_bus.ecus import mcu as mcu_mod
from virtual_bus.lockstep import Lockstep
from virtual_bus.physics import motor as mot

DRIVE = {"KeyOn": 1, "HvRequest": 1, "DriveMode": 3, "TorqueRequest": 0}
KEEP = ["BMS_PackStatus", "BMS_Limits", "BMS_Status", "MCU_Status", "MCU_State", "MCU_Power"]


def _dc_power(torque: float, rpm: float) -> float:
    """DC-link power (W) of ``torque`` at ``rpm``: Drivetrain.step's loss model, written out."""
    omega = abs(rpm) / mot.RPM_PER_RAD_S
    mech = torque * omega
    electrical = mech + mot.K_CU * torque**2 + mot.K_FE * omega**1.5 + mot.K_AC * abs(mech)
    return electrical + mot.INVERTER_IDLE_W + mot.INVERTER_FRACTION * abs(electrical)


@settings(max_examples=300, deadline=None)
@given(
    limit=st.floats(0.0, 400_000.0),
    rpm=st.floats(0.0, mot.MAX_RPM),
    generating=st.booleans(),
)
def test_torque_for_dc_power_is_the_largest_torque_within_the_limit(limit, rpm, generating):
    torque = mot.torque_for_dc_power(limit, rpm, generating=generating)
    sign = -1.0 if generating else 1.0
    if math.isinf(torque):  # generating below the speed where any current flows back
        for t in np.linspace(0.0, 2000.0, 201):
            assert _dc_power(-t, rpm) >= -limit - 1e-6
        return
    assert torque >= 0.0
    power = _dc_power(sign * torque, rpm)
    tolerance = 1e-6 * max(1.0, limit)
    if generating:
        assert power >= -limit - tolerance
        assert _dc_power(sign * (torque + 0.01), rpm) < -limit + tolerance or torque == 0.0
    else:
        assert power <= limit + tolerance or torque == 0.0
        if torque > 0.0:
            assert _dc_power(torque + 0.01, rpm) > limit - tolerance


def _drive_then_regen(dbcs, ambient: float, regen_nm: float, *, soc: float = 60.0) -> Lockstep:
    bench = Lockstep(dbcs, {"ambient_c": ambient, "soc": soc, "seed": 4}, keep=KEEP)
    bench.send("VCU_Ambient", {"AmbientTemp": ambient}, t=0.0)
    bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 150}, t=0.0)
    bench.run(20.0)
    assert bench.last("MCU_Power.VehicleSpeed") > 60.0
    bench.send("VCU_Command", {**DRIVE, "TorqueRequest": regen_nm})
    bench.run(35.0)
    return bench


def _charge_excess(bench: Lockstep, after: float) -> tuple[float, float]:
    """(largest charge current beyond the ChargeCurrentLimit in force, largest charge current)."""
    limits = np.array(bench.series("BMS_Limits.ChargeCurrentLimit"))
    current = np.array([(t, v) for t, v in bench.series("BMS_PackStatus.PackCurrent") if t > after])
    index = np.searchsorted(limits[:, 0], current[:, 0], side="right") - 1
    in_force = limits[np.clip(index, 0, None), 1]
    charge = -current[:, 1]
    return float(np.max(charge - in_force)), float(np.max(charge))


def test_cold_pack_blocks_regen_and_the_mcu_says_why(dbcs):
    with _drive_then_regen(dbcs, -30.0, -100.0) as bench:
        assert bench.last("BMS_Limits.ChargeCurrentLimit") == 0.0
        _, charge = _charge_excess(bench, after=20.0)
        assert charge <= 0.5, f"{charge:.1f} A pushed into a pack that accepts 0 A"
        reasons = {v for t, v in bench.series("MCU_State.DerateReason") if t > 20.1}
        assert reasons == {mcu_mod.REASON_BMS}
        assert max(v for _, v in bench.series("BMS_Status.FaultLevel")) <= bms_mod.WARNING


def test_hot_pack_regen_stays_inside_the_charge_limit(dbcs):
    # +50 °C: the cells accept 1.5 C and less as they warm; -150 Nm would draw about 250 A.
    with _drive_then_regen(dbcs, 50.0, -150.0) as bench:
        excess, charge = _charge_excess(bench, after=20.0)
        assert charge > 50.0, "the limit should allow real regen at +50 °C"
        assert excess <= 1.0, f"charge current {excess:.1f} A above the BMS limit"
        assert max(v for _, v in bench.series("BMS_Status.FaultLevel")) <= bms_mod.WARNING


def test_drive_torque_respects_the_discharge_current_limit(dbcs):
    # A nearly empty pack: the discharge limit tapers below 10 % SOC.
    with _drive_then_regen(dbcs, 25.0, 0.0, soc=3.0) as bench:
        limits = np.array(bench.series("BMS_Limits.DischargeCurrentLimit"))
        current = np.array(bench.series("BMS_PackStatus.PackCurrent"))
        index = np.clip(np.searchsorted(limits[:, 0], current[:, 0], side="right") - 1, 0, None)
        assert limits[-1, 1] < 400.0
        assert np.max(current[:, 1] - limits[index, 1]) <= 1.0


def _driving(dbcs, faults=()) -> Lockstep:
    bench = Lockstep(dbcs, {"seed": 9, "faults": list(faults)}, keep=KEEP)
    bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 120}, t=0.0)
    bench.run(10.0, step=0.05)
    return bench


def _first(bench: Lockstep, reference: str, value: float, after: float, tol=0.0) -> float | None:
    return next(
        (t for t, v in bench.series(reference) if t > after and abs(v - value) <= tol), None
    )


def test_lost_vcu_ramps_torque_to_zero_then_opens_contactors_latched(dbcs):
    with _driving(dbcs) as bench:
        assert bench.last("BMS_Status.HvState") == bms_mod.READY
        assert bench.last("MCU_Status.MotorTorque") > 100.0
        last_frame = 10.0
        bench.stop("VCU_Command")
        bench.run(13.0, step=0.05)
        mcu_fault = _first(bench, "MCU_State.FaultCode", mcu_mod.VCU_COMM_LOSS, last_frame)
        zero = _first(bench, "MCU_Status.MotorTorque", 0.0, last_frame, tol=1.0)
        bms_fault = _first(bench, "BMS_Status.HvState", bms_mod.FAULT, last_frame)
        assert mcu_fault is not None and 0.3 <= mcu_fault - last_frame <= 0.45
        # timeout 300 ms + ramp of 120 Nm at 1500 Nm/s + torque lag (20 ms) and one frame
        assert zero is not None and zero - last_frame <= 0.3 + 120 / 1500 + 0.1 + 0.01
        torques = [v for t, v in bench.series("MCU_Status.MotorTorque") if last_frame < t < zero]
        assert all(b <= a + 0.5 for a, b in itertools.pairwise(torques))  # a ramp
        assert bms_fault is not None and 0.8 <= bms_fault - last_frame <= 1.0
        assert bench.last("BMS_Status.FaultCode") == bms_mod.COMMUNICATION_LOSS
        assert bench.last("BMS_PackStatus.MainContactorsClosed") == 0
        # The VCU comes back still asking for drive: nothing restarts without a new key-on.
        bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 120})
        bench.run(15.0, step=0.05)
        assert bench.last("BMS_Status.HvState") == bms_mod.FAULT
        assert bench.last("MCU_State.FaultCode") == mcu_mod.VCU_COMM_LOSS
        bench.send("VCU_Command", {**DRIVE, "KeyOn": 0, "HvRequest": 0})
        bench.run(16.0, step=0.05)
        assert bench.last("BMS_Status.HvState") == bms_mod.OFF
        assert bench.last("MCU_State.FaultLevel") == mcu_mod.NONE
        bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 50})
        bench.run(18.0, step=0.05)
        assert bench.last("BMS_Status.HvState") == bms_mod.READY
        assert bench.last("MCU_Status.MotorTorque") > 40.0


@pytest.mark.parametrize("target", ["all", "MCU", "BMS"])
def test_no_timeout_fault_disables_the_reaction(dbcs, target):
    with _driving(dbcs, [f"no_timeout:{target}"]) as bench:
        bench.stop("VCU_Command")
        bench.run(13.0, step=0.05)
        mcu_reacts = bench.last("MCU_State.FaultCode") == mcu_mod.VCU_COMM_LOSS
        bms_reacts = bench.last("BMS_Status.HvState") == bms_mod.FAULT
        assert mcu_reacts == (target == "BMS")
        assert bms_reacts == (target == "MCU")


def test_short_gap_below_the_timeout_is_tolerated(dbcs):
    with _driving(dbcs) as bench:
        bench.stop("VCU_Command")
        bench.run(10.25, step=0.01)  # 250 ms < 300 ms
        bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 120})
        bench.run(12.0, step=0.05)
        assert max(v for _, v in bench.series("MCU_State.FaultLevel")) == mcu_mod.NONE
        assert bench.last("BMS_Status.HvState") == bms_mod.READY


def test_no_derate_fault_keeps_the_torque_limit_at_the_envelope(dbcs):
    keep = ["MCU_Status", "MCU_State", "MCU_Temps"]
    for faults, expect_derate in (([], True), (["no_derate"], False)):
        with Lockstep(dbcs, {"ambient_c": 45.0, "faults": faults}, keep=keep) as bench:
            bench.vehicle.mcu.drive.stator_c = 165.0  # a hot stator: 52 % of 450 Nm allowed
            bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 300}, t=0.0)
            bench.run(1.0)  # below 68 km/h: the envelope is 450 Nm
            assert (bench.last("MCU_State.DerateActive") == 1) == expect_derate
            limit = bench.last("MCU_Status.TorqueLimit")
            assert limit < 270.0 if expect_derate else limit == 450.0
