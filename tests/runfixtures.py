"""Build realistic run directories for report tests, following the DESIGN.md contract.

A run here is a compressed Heihe (cold) or Turpan (hot) plan: soak, key_on, warm_up, drive, 60 s of
restbus traffic at the DBC cycle times (~23 k frames). Frames are really encoded (cantools + the
E2E counter/CRC of :mod:`bench.e2e`) and the signal tables are those frames decoded again with
cantools, so the run directory is consistent from frames to summary. Verdicts in ``summary.json``
are computed from the same signals with plain numpy, the way a reviewer would check them by hand.

Variants: ``abort=True`` (BMS fault at 50 s → safe state, run aborted), ``zero_frames=True`` (an
empty log), ``evil=True`` (plan, check and DBC text full of HTML/JS, to test escaping).
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from bench.dbc import DbcSet
from bench.e2e import Protector
from bench.frames import FRAME_SCHEMA
from bench.summary import Abort, CheckResult, StepRecord, Summary, run_verdict, write_summary

ROOT = Path(__file__).resolve().parent.parent
DBC_DIR = ROOT / "dbc"
T0 = 1_763_712_000.0  # 2025-11-21 08:00:00 UTC: real logs carry wall-clock timestamps
EVIL = "<script>alert(1)</script>"
EVIL_LABEL = "<img src=x onerror=alert(3)>"

MESSAGES = [
    "BMS_PackStatus",
    "BMS_Cells",
    "BMS_Temps",
    "BMS_Status",
    "BMS_Limits",
    "MCU_Status",
    "MCU_Temps",
    "MCU_Power",
    "MCU_State",
    "VCU_Command",
    "VCU_Charge",
    "VCU_Thermal",
]
SENT = {"VCU_Command", "VCU_Charge", "VCU_Thermal"}  # the harness transmits these: direction tx


@dataclass(frozen=True)
class Scenario:
    site: str
    ambient: float
    heat: float  # °C the pack gains while driving
    spike: float  # extra °C for a few seconds in the drive (a hot-spot)


SCENARIOS = {
    "heihe": Scenario("Heihe", -30.0, 5.0, 0.0),
    "turpan": Scenario("Turpan", 45.0, 7.0, 4.5),
}
STEPS = [
    ("soak", 0.0, 10.0),
    ("key_on", 10.0, 14.0),
    ("warm_up", 14.0, 35.0),
    ("drive", 35.0, 60.0),
]


def _physics(
    scenario: Scenario, t: np.ndarray, abort_at: float | None, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every modelled signal as a function of time since start (s)."""
    drive = (t >= 35).astype(float)
    warm = np.clip((t - 14) / 21, 0, 1)
    heater_on = (t >= 14) & (t < 35) & (scenario.ambient < 0)
    base = scenario.ambient + (33.0 * warm if scenario.ambient < 0 else 1.5 * warm)
    drive_heat = scenario.heat * np.clip((t - 35) / 25, 0, 1)
    spike = scenario.spike * np.exp(-(((t - 52.0) / 1.2) ** 2))
    max_temp = base + drive_heat + spike + rng.normal(0, 0.15, len(t))
    current = drive * (160 + 130 * np.sin((t - 35) / 2.3)) + drive * 260 * (np.abs(t - 47) < 0.3)
    current = np.clip(current + rng.normal(0, 2.0, len(t)), -50, 600)
    hv = np.select([t < 11, t < 12.5], [0, 1], 2)
    fault = np.zeros(len(t))
    if abort_at is not None:
        fault = np.where(t >= abort_at - 0.05, 3, 0)
        hv = np.where(t >= abort_at - 0.05, 4, hv)
    speed = drive * np.clip(800 * (t - 35), 0, 5200) * (1 + 0.05 * np.sin(t))
    inverter = scenario.ambient + 10 * warm + 30 * drive_heat / max(scenario.heat, 1)
    return {
        "MaxCellTemp": max_temp,
        "MinCellTemp": max_temp - 2.5,
        "AvgCellTemp": max_temp - 1.2,
        "CoolantInletTemp": base - 1.0,
        "PackCurrent": current,
        "PackVoltage": 720 - 0.08 * current,
        "SOC": 80 - 0.02 * np.cumsum(np.maximum(current, 0)) * 0.001,
        "MainContactorsClosed": (hv >= 2).astype(float),
        "MinCellVolt": 3.75 - 0.0012 * current,
        "MaxCellVolt": 3.78 - 0.0010 * current,
        "AvgCellVolt": 3.765 - 0.0011 * current,
        "MaxCellVoltId": np.full(len(t), 17.0),
        "MinCellVoltId": np.full(len(t), 93.0),
        "HvState": hv.astype(float),
        "FaultLevel": fault,
        "FaultCode": np.where(fault > 0, 17, 0).astype(float),
        "HeaterActive": heater_on.astype(float),
        "HeaterPower": heater_on * 6000.0,
        "InsulationResistance": np.full(len(t), 12000.0),
        "ChargeCurrentLimit": np.full(len(t), 200.0),
        "DischargeCurrentLimit": np.full(len(t), 600.0),
        "ChargePowerLimit": np.full(len(t), 150.0),
        "DischargePowerLimit": np.full(len(t), 300.0),
        "MaxChargeVoltage": np.full(len(t), 800.0),
        "MotorSpeed": speed,
        "MotorTorque": drive * 0.4 * current,
        "TorqueLimit": np.full(len(t), 400.0),
        "MotorState": np.where(drive > 0, 2, np.where(hv >= 2, 1, 0)).astype(float),
        "StatorTemp": inverter + 8,
        "InverterTemp": inverter,
        "CoolantTemp": base,
        "RotorTempEstimate": inverter + 12,
        "DcLinkVoltage": 720 - 0.08 * current,
        "DcLinkCurrent": current,
        "MechanicalPower": drive * 0.2 * current,
        "VehicleSpeed": speed / 60,
        "TorqueAvailable": np.full(len(t), 100.0),
        "KeyOn": (t >= 10).astype(float),
        "HvRequest": (t >= 10).astype(float),
        "DriveMode": np.where(drive > 0, 3, 0).astype(float),
        "TorqueRequest": drive * 0.4 * current,
        "HeaterRequest": heater_on.astype(float),
        "HeaterPowerRequest": heater_on * 6000.0,
        "CoolantPumpRequest": (t >= 14).astype(float),
        "CoolantPumpSpeed": np.where(t >= 14, 60.0, 0.0),
        "CoolantTargetTemp": np.full(len(t), 25.0),
    }


def _frames(
    dbcs: DbcSet, scenario: Scenario, duration: float, abort_at: float | None, seed: int
) -> tuple[pa.Table, dict[str, pa.Table]]:
    """Encode the restbus into frames, then decode them back into one table per message."""
    rng = np.random.default_rng(seed)
    end = duration if abort_at is None else abort_at + 0.2
    rows: dict[str, list] = {name: [] for name in FRAME_SCHEMA.names}
    decoded: dict[str, dict[str, list]] = {}
    for name in MESSAGES:
        message = dbcs.message(name)
        period = message.cycle_time / 1000.0
        t = np.arange(rng.uniform(0, period), end, period)
        t = t + rng.normal(0, period * 0.01, len(t))  # a little jitter, like a real ECU
        values = _physics(scenario, t, abort_at, rng)
        protector = Protector(message)
        columns: dict[str, list] = {"timestamp": []}
        for i, time in enumerate(t):
            signals = {
                s.name: int(values[s.name][i]) if s.choices else float(values[s.name][i])
                for s in message.signals
                if s.name in values
            }
            data = protector.encode(signals)
            rows["timestamp"].append(T0 + float(time))
            rows["channel"].append("bench0")
            rows["arbitration_id"].append(message.frame_id)
            rows["is_extended_id"].append(False)
            rows["is_remote_frame"].append(False)
            rows["is_error_frame"].append(False)
            rows["is_fd"].append(False)
            rows["bitrate_switch"].append(False)
            rows["dlc"].append(len(data))
            rows["data"].append(data)
            rows["direction"].append("tx" if name in SENT else "rx")
            physical = message.decode(data, decode_choices=False)
            columns["timestamp"].append(T0 + float(time))
            for key, value in physical.items():
                columns.setdefault(key, []).append(value)
        decoded[name] = columns
    frames = pa.table(rows, schema=FRAME_SCHEMA)
    frames = frames.take(pa.compute.sort_indices(frames, [("timestamp", "ascending")]))
    tables = {}
    for name, columns in decoded.items():
        arrays = {k: pa.array(v, type=pa.float64()) for k, v in columns.items()}
        if len(columns["timestamp"]) == 0:
            message = dbcs.message(name)
            arrays = {"timestamp": pa.array([], pa.float64())}
            arrays.update({s.name: pa.array([], pa.float64()) for s in message.signals})
        tables[name] = pa.table(arrays)
    return frames, tables


def _column(tables: dict[str, pa.Table], ref: str) -> tuple[np.ndarray, np.ndarray]:
    message, _, signal = ref.partition(".")
    table = tables[message]
    return (
        table.column("timestamp").to_numpy(),
        table.column(signal).to_numpy(zero_copy_only=False).astype(float),
    )


def _windows(t: np.ndarray, bad: np.ndarray) -> list[tuple[float, float]]:
    """[start, end] of each run of True in ``bad``."""
    if not bad.any():
        return []
    edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(float(t[a]), float(t[b])) for a, b in zip(starts, stops, strict=True)]


def _range_check(
    name: str,
    tables: dict[str, pa.Table],
    ref: str,
    unit: str,
    *,
    low: float | None = None,
    high: float | None = None,
    marginal_low: float | None = None,
    marginal_high: float | None = None,
    mask: np.ndarray | None = None,
    abort: bool = False,
) -> CheckResult:
    t, y = _column(tables, ref)
    if mask is not None:
        t, y = t[mask(t)], y[mask(t)]
    limit = {
        k: v
        for k, v in {
            "min": low,
            "max": high,
            "marginal_min": marginal_low,
            "marginal_max": marginal_high,
        }.items()
        if v is not None
    }
    if len(y) == 0:
        return CheckResult(
            name=name, kind="range", verdict="inconclusive", limit=limit, unit=unit, signals=[ref],
            message="no samples to judge", abort=abort,
        )  # fmt: skip
    fail = np.zeros(len(y), bool)
    marginal = np.zeros(len(y), bool)
    margins = []
    if high is not None:
        fail |= y > high
        margins.append(high - y.max())
        if marginal_high is not None:
            marginal |= y > marginal_high
    if low is not None:
        fail |= y < low
        margins.append(y.min() - low)
        if marginal_low is not None:
            marginal |= y < marginal_low
    verdict = "fail" if fail.any() else "marginal" if marginal.any() else "pass"
    evidence = _windows(t, fail if fail.any() else marginal)
    if not evidence:
        worst = int(np.argmax(y)) if high is not None else int(np.argmin(y))
        evidence = [(float(t[worst]), float(t[worst]))]
    # like bench.checks.range: both sides → {min, max}; one side → that extreme
    extremes = {"min": round(float(y.min()), 4), "max": round(float(y.max()), 4)}
    side = "max" if high is not None else "min"
    observed: Any = extremes if low is not None and high is not None else extremes[side]
    bound = high if side == "max" else low
    relation = {"fail": "outside", "marginal": "close to", "pass": "within"}[verdict]
    message = f"{side} {extremes[side]:g} {unit} {relation} the limit of {bound:g} {unit}"
    return CheckResult(
        name=name, kind="range", verdict=verdict, observed=observed, limit=limit,
        margin=round(float(min(margins)), 4), unit=unit, evidence=evidence, message=message,
        signals=[ref], abort=abort,
    )  # fmt: skip


def _checks(tables: dict[str, pa.Table], evil: bool, empty: bool) -> list[CheckResult]:
    def during(step: str):
        start, end = next((a, b) for n, a, b in STEPS if n == step)
        return lambda t: (t >= T0 + start) & (t < T0 + end)

    checks = [
        _range_check("Max cell temperature", tables, "BMS_Temps.MaxCellTemp", "degC",
                     high=55, marginal_high=50),
        _range_check("No BMS fault", tables, "BMS_Status.FaultLevel", "", high=1, abort=True),
        _range_check("Min cell voltage under load", tables, "BMS_Cells.MinCellVolt", "V",
                     low=3.3, marginal_low=3.42, mask=during("drive")),
        _range_check("Inverter temperature", tables, "MCU_Temps.InverterTemp", "degC",
                     high=85, marginal_high=75),
        _range_check("Motor speed", tables, "MCU_Status.MotorSpeed", "rpm", high=16000),
    ]  # fmt: skip
    checks.append(_reaches_check(tables, "Pack warms to 0 °C within 30 s of warm_up",
                                 "BMS_Temps.MinCellTemp", 0.0, "warm_up", 30.0))  # fmt: skip
    checks.append(_reaches_check(tables, "HV ready within 5 s of key_on",
                                 "BMS_Status.HvState", 2.0, "key_on", 5.0))  # fmt: skip
    checks.append(_cycle_check(tables, "Pack status cycle time", "BMS_PackStatus", 20.0))
    checks.append(
        _counter_check(tables, "Pack status alive counter", "BMS_PackStatus.AliveCounter")
    )
    checks.append(
        CheckResult(
            name="Bus health",
            kind="bus",
            verdict="pass",
            observed={"error_frames": 0, "unknown_ids": 0},
            limit={"max_error_frames": 0, "max_unknown_ids": 0},
            message="no error frames, no unknown ids",
        )
    )
    if evil:
        checks[0] = checks[0].model_copy(update={"name": EVIL, "message": f"{EVIL} & <b>bold</b>"})
        checks[-1] = checks[-1].model_copy(update={"name": "<img src=x onerror=alert(2)>"})
    if empty:
        checks = [
            c.model_copy(update={"verdict": "inconclusive", "observed": None, "margin": None,
                                 "evidence": [], "message": "no samples to judge"})
            for c in checks
        ]  # fmt: skip
    return checks


def _reaches_check(
    tables: dict[str, pa.Table], name: str, ref: str, target: float, step: str, within: float
) -> CheckResult:
    after = T0 + next(a for n, a, _ in STEPS if n == step)
    t, y = _column(tables, ref)
    hit = np.flatnonzero((t >= after) & (y >= target))
    limit = {"within": within, "after": step}
    if len(hit) == 0:
        return CheckResult(name=name, kind="reaches", verdict="fail" if len(t) else "inconclusive",
                           limit=limit, signals=[ref], unit="s", details={"anchor": after},
                           evidence=[(after, after + within)], message="never reached")  # fmt: skip
    at = float(t[hit[0]])
    verdict = "pass" if at - after <= within else "fail"
    return CheckResult(
        name=name, kind="reaches", verdict=verdict, observed=round(at - after, 3), limit=limit,
        margin=round(within - (at - after), 3), unit="s", evidence=[(after, at)], signals=[ref],
        message=f"{ref} >= {target:g} reached {at - after:.1f} s after {step}, within {within:g} s",
        details={"anchor": after, "reached_at": at},
    )  # fmt: skip


def _cycle_check(
    tables: dict[str, pa.Table], name: str, message: str, period_ms: float
) -> CheckResult:
    # the shape of bench.checks.cycle_time: seconds, no signals, the message only in the plan
    t = tables[message].column("timestamp").to_numpy()
    gaps = np.diff(t)
    period = period_ms / 1000
    limit = {"period": period, "min": period * 0.9, "max": period * 1.1, "max_violations": 0}
    if len(gaps) == 0:
        return CheckResult(name=name, kind="cycle_time", verdict="inconclusive", limit=limit,
                           unit="s", message=f"0 frames of {message}: no gap to judge")  # fmt: skip
    bad = (gaps < limit["min"]) | (gaps > limit["max"])
    verdict = "fail" if bad.any() else "pass"
    windows = np.column_stack((t[:-1][bad], t[1:][bad])) if bad.any() else [[t[0], t[-1]]]
    return CheckResult(
        name=name, kind="cycle_time", verdict=verdict,
        observed={"min": float(gaps.min()), "mean": float(gaps.mean()), "max": float(gaps.max()),
                  "violations": int(bad.sum())},
        limit=limit, unit="s", details={"gaps": len(gaps)},
        margin=float(min(gaps.min() - limit["min"], limit["max"] - gaps.max())),
        evidence=[(float(a), float(b)) for a, b in windows][:50],
        message=f"{int(bad.sum())} of {len(gaps)} gaps outside {period_ms:g} ms ± 10%",
    )  # fmt: skip


def _counter_check(tables: dict[str, pa.Table], name: str, ref: str) -> CheckResult:
    _, y = _column(tables, ref)
    errors = int(((np.diff(y) % 16) != 1).sum()) if len(y) > 1 else 0
    verdict = "inconclusive" if len(y) < 2 else ("fail" if errors else "pass")
    return CheckResult(name=name, kind="counter", verdict=verdict,
                       observed={"errors": errors, "steps": max(len(y) - 1, 0)},
                       limit={"max_errors": 0, "modulus": 16}, signals=[ref],
                       message=f"{errors} counter errors")  # fmt: skip


def _plan_yaml(name: str, site: str, evil: bool) -> str:
    """The plan as it would have run (the run directory keeps a copy)."""
    ambient = SCENARIOS[site.lower()].ambient
    checks: list[dict[str, Any]] = [
        {"name": EVIL if evil else "Max cell temperature", "signal": "BMS_Temps.MaxCellTemp",
         "max": 55, "marginal_max": 50},
        {"name": "No BMS fault", "signal": "BMS_Status.FaultLevel", "max": 1, "abort": True},
        {"name": "Min cell voltage under load", "signal": "BMS_Cells.MinCellVolt", "min": 3.3,
         "marginal_min": 3.42, "during": ["drive"]},
        {"name": "Inverter temperature", "signal": "MCU_Temps.InverterTemp", "max": 85,
         "marginal_max": 75},
        {"name": "Motor speed", "signal": "MCU_Status.MotorSpeed", "max": 16000},
        {"name": "Pack warms to 0 °C within 30 s of warm_up", "signal": "BMS_Temps.MinCellTemp",
         "reaches": ">= 0", "within": "30s", "after": "warm_up"},
        {"name": "HV ready within 5 s of key_on", "reaches": 'BMS_Status.HvState == "READY"',
         "within": "5s", "after": "key_on"},
        {"name": "Pack status cycle time", "cycle_time": "BMS_PackStatus", "tolerance": "10%"},
        {"name": "Pack status alive counter", "counter": "BMS_PackStatus.AliveCounter"},
        {"name": "Bus health", "bus": {"max_error_frames": 0}},
    ]  # fmt: skip
    plan = {
        "name": name,
        "site": site,
        "dbc": ["dbc/battery.dbc", "dbc/motor.dbc", "dbc/vehicle.dbc"],
        "bus": {"interface": "virtual", "channel": "bench0", "bitrate": 500000},
        "safe_state": [{"message": "VCU_Command", "signals": {"TorqueRequest": 0, "HvRequest": 0}}],
        "steps": [
            {"name": "soak", "ambient_c": ambient, "duration": "10s"},
            {
                "name": "key_on",
                "send": {
                    "message": "VCU_Command",
                    "signals": {"KeyOn": 1, "HvRequest": 1},
                    "every": "100ms",
                },
                "until": 'BMS_Status.HvState == "READY"',
                "timeout": "30s",
            },
            {"name": "warm_up", "duration": "21s"},
            {"name": "drive", "duration": "25s"},
        ],
        "checks": checks,
    }
    return yaml.safe_dump(plan, sort_keys=False, allow_unicode=True, width=100)


def _copy_dbcs(run: Path, evil: bool) -> list[Path]:
    target = run / "dbc"
    target.mkdir()
    copies = []
    for source in sorted(DBC_DIR.glob("*.dbc")):
        text = source.read_text()
        if evil and source.name == "battery.dbc":
            text = text.replace('2 "READY"', f'2 "{EVIL_LABEL}"')
        (target / source.name).write_text(text)
        copies.append(target / source.name)
    return copies


def build_run(
    root: Path,
    *,
    scenario: str = "heihe",
    abort: bool = False,
    zero_frames: bool = False,
    evil: bool = False,
    started: dt.datetime | None = None,
    seed: int = 7,
    duration: float = 60.0,
) -> Path:
    """Write one run directory under ``root`` and return its path."""
    sc = SCENARIOS[scenario]
    started = started or dt.datetime(2025, 11, 21, 8, 0, 0, tzinfo=dt.UTC)
    stem = f"{scenario}_cold_start" if sc.ambient < 0 else f"{scenario}_hot_drive"
    run = root / f"{started:%Y%m%d-%H%M%S}-{stem}"
    run.mkdir(parents=True)
    plan_name = f"{sc.site} {'cold soak and start' if sc.ambient < 0 else 'hot drive'}"
    if evil:
        plan_name = f"{plan_name} <img src=x onerror=alert(4)>"
    (run / "plan.yaml").write_text(_plan_yaml(plan_name, sc.site, evil))
    copies = _copy_dbcs(run, evil)
    dbcs = DbcSet.load(copies)
    abort_at = 50.0 if abort else None
    frames, tables = _frames(dbcs, sc, 0.0 if zero_frames else duration, abort_at, seed)
    (run / "frames").mkdir()
    pq.write_table(frames, run / "frames" / "part-00000.parquet")
    (run / "signals").mkdir()
    for name, table in tables.items():
        pq.write_table(table, run / "signals" / f"{name}.parquet")

    end = (abort_at + 0.2) if abort_at is not None else duration
    steps = []
    for name, a, b in STEPS:
        if abort_at is not None and a >= abort_at:
            steps.append(StepRecord(name=name, start=T0 + a, end=T0 + a, status="skipped"))
        elif abort_at is not None and b > abort_at:
            steps.append(StepRecord(name=name, start=T0 + a, end=T0 + abort_at, status="aborted"))
        else:
            steps.append(StepRecord(name=name, start=T0 + a, end=T0 + b, status="done"))
    software = {"bench": "0.1.0", "python-can": "4.5.0", "cantools": "40.2.1"}
    inject = ["bms_overtemp@50s"] if abort else []
    _write_events(run, steps, abort_at, end, started, seed, software, inject, evil)

    checks = _checks(tables, evil, zero_frames)
    aborted = None
    if abort_at is not None:
        checks = [
            c.model_copy(update={"verdict": "fail"}) if c.name == "No BMS fault" else c
            for c in checks
        ]
        aborted = Abort(
            reason="No BMS fault: BMS_Status.FaultLevel 3 (SHUTDOWN) above 1",
            time=T0 + abort_at,
            check="No BMS fault",
        )
    span = None
    if frames.num_rows:
        ts = frames.column("timestamp").to_numpy()
        span = (float(ts[0]), float(ts[-1]))
    dut = {"pack": "P800-96S", "serial": "PK-2025-0042"}
    if evil:
        dut["note"] = "</script><script>alert(5)</script>"
    summary = Summary(
        plan=plan_name,
        plan_file="plan.yaml",
        site=sc.site,
        dut=dut,
        bench={"name": "bench-3", "chamber": "CTS-600"},
        verdict=run_verdict(checks, aborted=aborted is not None),
        mode="lockstep",
        started_at=started.isoformat(),
        ended_at=(started + dt.timedelta(seconds=end)).isoformat(),
        time_span=span,
        frames=frames.num_rows,
        interface="virtual",
        channel="bench0",
        seed=seed,
        software=software,
        dbc=[{"file": p.name, "sha256": "0" * 64} for p in copies],
        skipped=["BMS_ModuleData: not in this bench's restbus"] if not zero_frames else [],
        aborted=aborted,
        steps=steps,
        bus={"error_frames": 0, "unknown_ids": 0, "bitrate": 500000},
        checks=checks,
    )
    write_summary(summary, run / "summary.json")
    return run


def _write_events(
    run: Path,
    steps: list[StepRecord],
    abort_at: float | None,
    end: float,
    started: dt.datetime,
    seed: int,
    software: dict[str, str],
    inject: list[str],
    evil: bool,
) -> None:
    events: list[tuple[float, str, str, dict[str, Any]]] = [
        (T0, "run_start", "", {"started_at": started.isoformat(), "mode": "lockstep",
                              "interface": "virtual", "channel": "bench0", "seed": seed,
                              "software": software, "inject": inject}),
    ]  # fmt: skip
    for step in steps:
        if step.status == "skipped":
            continue
        events.append((step.start, "step_start", step.name, {}))
        if step.name == "key_on":
            events.append((step.start + 0.01, "stimulus", "VCU_Command",
                           {"signals": {"KeyOn": 1, "HvRequest": 1}, "every": 0.1}))  # fmt: skip
        if step.name == "soak":
            note = EVIL if evil else "chamber at -30 °C"
            events.append((step.start + 0.5, "note", "chamber", {"text": note}))
        events.append((step.end or step.start, "step_end", step.name, {"status": step.status}))
    if abort_at is not None:
        events.append((T0 + abort_at, "abort", "No BMS fault", {"reason": "FaultLevel 3"}))
    events.append((T0 + end, "run_end", "", {}))
    events.sort(key=lambda e: e[0])
    table = pa.table(
        {
            "timestamp": pa.array([e[0] for e in events], pa.float64()),
            "kind": pa.array([e[1] for e in events], pa.string()),
            "name": pa.array([e[2] for e in events], pa.string()),
            "detail": pa.array([json.dumps(e[3]) for e in events], pa.string()),
        }
    )
    pq.write_table(table, run / "events.parquet")


def copy_run(run: Path, root: Path) -> Path:
    """A copy of a built run directory under ``root`` (building takes ~1 s, copying much less)."""
    target = root / run.name
    shutil.copytree(run, target)
    return target


_CACHE: dict[tuple, Path] = {}
_CACHE_DIR: list[Path] = []


def cached_run(root: Path, **options: Any) -> Path:
    """:func:`build_run` once per test session for each set of options, copied into ``root``.

    Several test modules need the same few runs; building them (real encoding and decoding of
    ~23 k frames) is the slow part, copying is not. Each caller gets its own copy to change.
    """
    key = tuple(sorted(options.items()))
    if key not in _CACHE:
        if not _CACHE_DIR:
            _CACHE_DIR.append(Path(tempfile.mkdtemp(prefix="bench-runs-")))
            atexit.register(shutil.rmtree, _CACHE_DIR[0], True)
        _CACHE[key] = build_run(_CACHE_DIR[0] / str(len(_CACHE)), **options)
    root.mkdir(parents=True, exist_ok=True)
    return copy_run(_CACHE[key], root)
