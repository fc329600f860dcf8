"""What the bench (in place of the VCU) commands, decoded from the ``VCU_*`` frames of vehicle.dbc.

:data:`INBOUND` maps each message and signal the virtual vehicle reacts to onto a field of
:class:`Commands`. Every entry is required (a DBC set lacking one is an input error), except
those in :data:`OPTIONAL`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INBOUND: dict[str, dict[str, str]] = {
    "VCU_Command": {
        "KeyOn": "key_on",
        "HvRequest": "hv_request",
        "DriveMode": "drive_mode",
        "TorqueRequest": "torque_request",
    },
    "VCU_Charge": {
        "ChargeRequest": "charge_request",
        "ChargeMode": "charge_mode",
        "ChargeCurrentRequest": "charge_current_request",
        "ChargeVoltageLimit": "charge_voltage_limit",
        "TargetSOC": "target_soc",
    },
    "VCU_Thermal": {
        "HeaterRequest": "heater_request",
        "CoolantPumpRequest": "coolant_pump_request",
        "ChillerRequest": "chiller_request",
        "HeaterPowerRequest": "heater_power_request",
        "CoolantPumpSpeed": "coolant_pump_speed",
        "CoolantTargetTemp": "coolant_target_temp",
    },
    "VCU_Ambient": {
        "AmbientTemp": "ambient_temp",
        "SolarLoad": "solar_load",
        "RoadGrade": "road_grade",
        "Headwind": "headwind",
    },
}

OPTIONAL: frozenset[tuple[str, str]] = frozenset({("VCU_Ambient", "Headwind")})
"""Signals of :data:`INBOUND` a DBC set may lack (added later; older DBCs do without)."""

DRIVE_MODE_DRIVE = 3
CHARGE_MODE_AC = 1


@dataclass
class Commands:
    """Latest values received from the bench; the defaults hold until a first frame arrives."""

    key_on: bool = False
    hv_request: bool = False
    drive_mode: int = 0
    torque_request: float = 0.0
    charge_request: bool = False
    charge_mode: int = 0
    charge_current_request: float = 0.0
    charge_voltage_limit: float = 0.0
    target_soc: float = 0.0
    heater_request: bool = False
    coolant_pump_request: bool = False
    chiller_request: bool = False
    heater_power_request: float = 0.0
    coolant_pump_speed: float = 0.0
    coolant_target_temp: float = 65.0
    ambient_temp: float | None = None
    solar_load: float = 0.0
    road_grade: float = 0.0
    headwind: float = 0.0
    last_seen: dict[str, float] = field(default_factory=dict)
    """Simulated time (s) each ``VCU_*`` message last arrived: the ECUs' timeout monitoring."""

    def apply(self, message: str, values: dict[str, float], t: float | None = None) -> None:
        """Take the signals of one decoded ``VCU_*`` frame, received at ``t`` (s)."""
        if t is not None:
            self.last_seen[message] = t
        for signal, name in INBOUND[message].items():
            if signal in values:
                current = getattr(self, name)
                value = values[signal]
                setattr(self, name, bool(value) if isinstance(current, bool) else float(value))
        self.drive_mode = int(self.drive_mode)
        self.charge_mode = int(self.charge_mode)
