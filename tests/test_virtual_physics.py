"""Plausibility of the virtual vehicle's physics, seen on the bus.

Long stretches use ``fast_forward`` (physics without frames) and then look at the bus: the
frames are what a plan judges, and minutes of restbus traffic would only slow the suite.
"""

from __future__ import annotations

import pytest

from virtual_bus.ecus import bms as bms_mod
from virtual_bus.ecus import mcu as mcu_mod
from virtual_bus.lockstep import Lockstep
from virtual_bus.physics import battery, motor
from virtual_bus.physics.climate import Climate

READY = {"KeyOn": 1, "HvRequest": 1, "DriveMode": 3, "TorqueRequest": 0}


def _slope_per_min(series: list[tuple[float, float]], t0: float, t1: float) -> float:
    first = next(v for t, v in series if t >= t0)
    last = next(v for t, v in reversed(series) if t <= t1)
    return (last - first) / ((t1 - t0) / 60.0)


@pytest.mark.parametrize("ambient", [-30.0, 25.0, 45.0])
def test_pack_starting_at_ambient_stays_within_2_degrees(dbcs, ambient):
    keep = ["BMS_Temps", "BMS_Status"]
    with Lockstep(dbcs, {"ambient_c": ambient}, keep=keep) as bench:
        bench.send("VCU_Command", READY)
        bench.send("VCU_Ambient", {"AmbientTemp": ambient})
        for minute in range(5, 61, 5):  # an hour idling at READY, 2 s of bus every 5 min
            bench.vehicle.fast_forward(60.0 * minute - 2.0)
            bench.run(60.0 * minute)
        assert bench.last("BMS_Status.HvState") == bms_mod.READY
        temps = bench.decoded("BMS_Temps")
    assert len(temps) >= 12 * 20
    for _, values in temps:
        assert abs(values["MaxCellTemp"] - ambient) <= 2.0
        assert abs(values["MinCellTemp"] - ambient) <= 2.0
    assert temps[-1][1]["MaxCellTemp"] > temps[-1][1]["MinCellTemp"]  # sensors differ


def _cold_run(dbcs, heater: bool) -> Lockstep:
    keep = ["BMS_Temps", "BMS_Status", "BMS_PackStatus"]
    bench = Lockstep(dbcs, {"ambient_c": -30.0, "seed": 3}, keep=keep)
    bench.send("VCU_Command", READY)
    bench.send("VCU_Ambient", {"AmbientTemp": -30.0})
    bench.send("VCU_Thermal", {"HeaterRequest": 1 if heater else 0})
    for t in (180.0, 1080.0):  # read the bus at 3 min and at 18 min
        bench.vehicle.fast_forward(t - 2.0)
        bench.run(t)
    return bench


def test_heater_warms_a_cold_pack_at_a_realistic_rate(dbcs):
    with _cold_run(dbcs, heater=True) as bench:
        rate = _slope_per_min(bench.series("BMS_Temps.AvgCellTemp"), 178.0, 1080.0)
        assert 0.3 <= rate <= 1.0
        assert bench.last("BMS_Status.HeaterActive") == 1
        assert 4000 <= bench.last("BMS_Status.HeaterPower") <= 7000
        assert bench.last("BMS_PackStatus.PackCurrent") > 5  # the heater runs off the pack
        assert bench.last("BMS_Temps.CoolantInletTemp") > bench.last("BMS_Temps.MaxCellTemp")
        # heating through the cold plate spreads the sensors apart, realistically a few K
        spread = bench.last("BMS_Temps.MaxCellTemp") - bench.last("BMS_Temps.MinCellTemp")
        assert 0.5 < spread < 8.0


def test_without_heater_a_cold_pack_does_not_warm(dbcs):
    with _cold_run(dbcs, heater=False) as bench:
        rate = _slope_per_min(bench.series("BMS_Temps.AvgCellTemp"), 178.0, 1080.0)
        assert abs(rate) < 0.05
        assert bench.last("BMS_Status.HeaterActive") == 0


def test_heater_needs_hv_ready(dbcs):
    with Lockstep(dbcs, {"ambient_c": -30.0}, keep=["BMS_Status"]) as bench:
        bench.send("VCU_Thermal", {"HeaterRequest": 1})
        bench.run(30.0, step=5.0)
        assert bench.last("BMS_Status.HvState") == bms_mod.OFF
        assert bench.last("BMS_Status.HeaterActive") == 0


def _charge_limit(dbcs, temp: float) -> float:
    with Lockstep(dbcs, {"ambient_c": temp, "soc": 50.0}, keep=["BMS_Limits"]) as bench:
        bench.run(2.0)
        return bench.last("BMS_Limits.ChargeCurrentLimit")


def test_charge_current_limit_in_the_cold_is_a_small_fraction(dbcs):
    warm, cold = _charge_limit(dbcs, 25.0), _charge_limit(dbcs, -20.0)
    assert warm >= 200.0
    assert cold / warm < 0.1


def test_charging_a_cold_pack_is_limited_by_the_bms(dbcs):
    keep = ["BMS_PackStatus", "BMS_Limits"]
    with Lockstep(dbcs, {"ambient_c": -20.0, "soc": 50.0}, keep=keep) as bench:
        bench.send("VCU_Charge", {"ChargeRequest": 1, "ChargeMode": 2, "ChargeCurrentRequest": 300})
        bench.run(5.0)
        limit = bench.last("BMS_Limits.ChargeCurrentLimit")
        assert -bench.last("BMS_PackStatus.PackCurrent") == pytest.approx(limit, abs=1.0)
        assert limit < 20.0


def test_hill_climb_in_the_heat_derates_the_motor(dbcs):
    keep = ["MCU_State", "MCU_Status", "MCU_Temps", "MCU_Power"]
    with Lockstep(dbcs, {"ambient_c": 45.0, "seed": 5}, keep=keep) as bench:
        bench.send("VCU_Ambient", {"AmbientTemp": 45.0, "SolarLoad": 1000, "RoadGrade": 12.0})
        bench.send("VCU_Thermal", {"CoolantPumpRequest": 1})
        bench.send("VCU_Command", READY)
        bench.run(2.0)
        bench.send("VCU_Command", {**READY, "TorqueRequest": 450})
        for t in range(20, 241, 20):  # the bus every 20 s, 2 s at a time
            bench.vehicle.fast_forward(t - 2.0)
            bench.run(float(t))
        state = bench.decoded("MCU_State")
        derated = [(t, v) for t, v in state if v["DerateActive"] == 1]
        assert derated, "no derating in 4 min of full-load climbing at +45 °C"
        t_derate, first = derated[0]
        assert first["DerateReason"] == mcu_mod.REASON_STATOR
        assert 30.0 < t_derate < 240.0
        assert all(v["DerateActive"] == 0 for t, v in state if t < 20.0)
        status = bench.decoded("MCU_Status")[-1][1]
        assert status["MotorState"] == mcu_mod.DERATED
        # less torque than the machine could give at this speed: thermal derating
        assert status["TorqueLimit"] < motor.torque_envelope(status["MotorSpeed"]) - 5.0
        assert bench.last("MCU_State.TorqueAvailable") < 100.0
        assert bench.last("MCU_Temps.StatorTemp") > 150.0
        assert bench.last("MCU_Power.VehicleSpeed") > 50.0


def test_same_climb_in_mild_weather_for_a_short_time_does_not_derate(dbcs):
    with Lockstep(dbcs, {"ambient_c": 20.0}, keep=["MCU_State"]) as bench:
        bench.send("VCU_Ambient", {"AmbientTemp": 20.0, "RoadGrade": 12.0})
        bench.send("VCU_Command", {**READY, "TorqueRequest": 450})
        bench.run(30.0, step=5.0)
        assert all(v["DerateActive"] == 0 for _, v in bench.decoded("MCU_State"))


def test_ambient_set_point_is_approached_at_the_chamber_ramp_rate(dbcs):
    with Lockstep(dbcs, {"ambient_c": 25.0}, keep=[]) as bench:
        bench.send("VCU_Ambient", {"AmbientTemp": -30.0})
        bench.vehicle.fast_forward(60.0)
        assert bench.vehicle.climate.air_c == pytest.approx(25.0 - 2.0, abs=0.05)


def test_climate_ramp_stops_at_the_set_point():
    climate = Climate(air_c=20.0, target_c=21.0)
    for _ in range(10_000):
        climate.step(0.1)
    assert climate.air_c == pytest.approx(21.0)
    climate.solar_w_m2 = 1000.0
    assert climate.motor_ambient_c() > climate.pack_ambient_c() > climate.air_c


def test_cell_model_is_plausible():
    assert 95.0 <= battery.NOMINAL_KWH <= 105.0
    ocv = [battery.ocv_cell(s, 25.0) for s in range(0, 101, 5)]
    assert ocv == sorted(ocv) and 2.9 < ocv[0] < 3.3 and 4.1 < ocv[-1] < 4.25
    ratio = battery.cell_resistance(-30.0) / battery.cell_resistance(25.0)
    assert 5.0 < ratio < 20.0
    assert battery.charge_c_rate(-20.0) < 0.1 * battery.charge_c_rate(25.0)
    assert battery.charge_c_rate(55.0) < battery.charge_c_rate(40.0)
    assert battery.discharge_c_rate(-30.0) < battery.discharge_c_rate(25.0)


def test_motor_envelope_and_gear():
    assert motor.torque_envelope(0.0) == motor.PEAK_TORQUE_NM
    assert motor.torque_envelope(15_000.0) * 15_000.0 / motor.RPM_PER_RAD_S == pytest.approx(
        motor.PEAK_POWER_W
    )
    assert motor.torque_envelope(motor.MAX_RPM) == 0.0
    assert 200.0 < motor.vehicle_speed_kmh(motor.MAX_RPM) <= 250.0
    assert 9.0 <= motor.GEAR_RATIO <= 11.0


def test_charger_feeds_the_heater_of_a_cold_pack(dbcs):
    keep = ["BMS_PackStatus", "BMS_Limits", "BMS_Status"]
    with Lockstep(dbcs, {"ambient_c": -20.0, "soc": 30.0}, keep=keep) as bench:
        bench.send("VCU_Charge", {"ChargeRequest": 1, "ChargeMode": 2, "ChargeCurrentRequest": 300})
        bench.send("VCU_Thermal", {"HeaterRequest": 1})
        bench.run(5.0)
        assert bench.last("BMS_Status.HeaterActive") == 1
        limit = bench.last("BMS_Limits.ChargeCurrentLimit")
        # the cells get exactly what they accept, the heater's current comes from the charger
        assert -bench.last("BMS_PackStatus.PackCurrent") == pytest.approx(limit, abs=1.0)


def _bms(soc: float, temp_c: float):
    import random

    from virtual_bus.ecus.bms import Bms
    from virtual_bus.ecus.commands import Commands
    from virtual_bus.physics.battery import Battery

    battery = Battery(soc=soc, cell_c=temp_c, coolant_c=temp_c, rng=random.Random(1))
    commands = Commands(key_on=True, hv_request=True)
    return Bms(battery, commands, [], random.Random(2))


@pytest.mark.parametrize(
    ("soc", "temp", "load_a", "code"),
    [
        (2.0, -30.0, 300.0, bms_mod.CELL_UNDERVOLT),  # an empty, cold pack pulled hard
        (99.5, 0.0, -400.0, bms_mod.CELL_OVERVOLT),  # a full pack pushed hard
    ],
)
def test_cell_voltage_limits_shut_the_pack_down(soc, temp, load_a, code):
    """The BMS's own limits keep the cells inside 2.5-4.25 V in normal use, so force a load."""
    bms = _bms(soc, temp)
    for step in range(100):  # HV up first
        bms.control(step * 0.01, 0.01, 0.0)
    assert bms.state == bms_mod.READY
    for step in range(100, 150):
        bms.control(step * 0.01, 0.01, load_a)
    assert bms.state == bms_mod.FAULT
    assert bms.reported_fault() == (bms_mod.SHUTDOWN, code)
    assert bms.battery.current_a == 0.0  # contactors open
