"""``bench doctor``: what a bench engineer runs first. Everything the harness depends on, checked.

Each check adds :class:`Finding` lines with a status:

- ``ok``   works;
- ``info`` a fact worth knowing (the serial ports present, no bench profile given);
- ``warn`` something is missing that this setup does not need (no SocketCAN in the kernel while
  no bench profile asks for a socketcan bus: the virtual bus, serial instruments and USB adapters
  still work);
- ``fail`` a problem: a DBC or plan that does not parse, a profile device that does not answer,
  a socketcan bus on a kernel without SocketCAN.

Exit code (:attr:`DoctorReport.exit_code`): 0 when nothing failed (warnings allowed), 1 otherwise.
Doctor never raises for what it finds: every failure, even an unexpected exception inside a check,
becomes a ``fail`` line, so one broken device never hides the rest of the report.
"""

from __future__ import annotations

import importlib
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import BenchError, one_line

Status = Literal["ok", "info", "warn", "fail"]

ARPHRD_CAN = 280  # /sys/class/net/<if>/type of can and vcan devices (linux/if_arp.h)
SYS_CLASS_NET = Path("/sys/class/net")
DEFAULT_PLAN_DIR = Path(__file__).resolve().parent.parent / "test_plans"
PLAN_PATTERNS = ("*.yaml", "*.yml")


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: Status, detail: str) -> None:
        self.findings.append(Finding(check, status, one_line(detail)))

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "fail"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "warn"]

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def summary(self) -> str:
        warned = f" ({_count(len(self.warnings), 'warning')})" if self.warnings else ""
        if not self.problems:
            return f"All well{warned}."
        return f"{_count(len(self.problems), 'problem')}{warned}:"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "exit_code": self.exit_code,
            "findings": [asdict(f) for f in self.findings],
            "problems": [f"{f.check}: {f.detail}" for f in self.problems],
            "warnings": [f"{f.check}: {f.detail}" for f in self.warnings],
        }


def run_doctor(
    *,
    dbc_paths: Sequence[Path] | None = None,
    profile_path: Path | None = None,
    plan_dir: Path = DEFAULT_PLAN_DIR,
    sys_class_net: Path = SYS_CLASS_NET,
) -> DoctorReport:
    """Run every check; ``profile_path`` None falls back to ``$BENCH_CONFIG`` (then no profile)."""
    report = DoctorReport()
    # The profile is read first (the SocketCAN verdict depends on its buses); its line is
    # shown after the machine's own lines, where a reader looks for it.
    profile_lines = DoctorReport()
    profile = _guarded(
        profile_lines, "bench profile", lambda: check_profile_file(profile_lines, profile_path)
    )
    _guarded(report, "python-can", lambda: check_python_can(report))
    _guarded(report, "SocketCAN", lambda: check_socketcan(report, profile))
    _guarded(report, "CAN interfaces", lambda: check_can_netdevs(report, sys_class_net))
    _guarded(report, "serial ports", lambda: check_serial_ports(report))
    _guarded(report, "DBC", lambda: check_dbcs(report, dbc_paths))
    _guarded(report, "plans", lambda: check_plans(report, plan_dir))
    report.findings += profile_lines.findings
    if profile is not None:
        _guarded(report, "profile DBCs", lambda: check_profile_dbcs(report, profile))
        _guarded(report, "buses", lambda: check_buses(report, profile))
        _guarded(report, "instruments", lambda: check_instruments(report, profile))
    return report


def _guarded(report: DoctorReport, name: str, step: Callable[[], Any]) -> Any:
    try:
        return step()
    except Exception as exc:  # a doctor reports, it does not crash
        report.add(name, "fail", f"check crashed: {type(exc).__name__}: {exc}")
        return None


# -- environment ---------------------------------------------------------------------------------


def check_python_can(report: DoctorReport) -> None:
    import can
    import cantools
    import serial
    from can.interfaces import VALID_INTERFACES

    report.add("python-can", "ok", f"python-can {can.__version__}")
    report.add("python-can interfaces", "info", ", ".join(sorted(VALID_INTERFACES)))
    report.add(
        "libraries", "info", f"cantools {cantools.__version__}, pyserial {serial.__version__}"
    )


def socketcan_error() -> str | None:
    """None when the kernel can open a raw CAN socket, else why not (one line)."""
    family = getattr(socket, "AF_CAN", None)
    if family is None:
        return "this Python has no socket.AF_CAN"
    try:
        with socket.socket(family, socket.SOCK_RAW, socket.CAN_RAW):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def check_socketcan(report: DoctorReport, profile: Any) -> None:
    error = socketcan_error()
    if error is None:
        report.add("SocketCAN", "ok", "the kernel has SocketCAN (AF_CAN raw sockets open)")
        return
    needing = [b.name for b in (profile.buses if profile else []) if b.interface == "socketcan"]
    lacks = f"the kernel lacks SocketCAN (AF_CAN: {error})"
    if needing:
        needed = ", ".join(needing)
        report.add("SocketCAN", "fail", f"{lacks}; bench profile buses need it: {needed}")
        return
    report.add(
        "SocketCAN",
        "warn",
        f"{lacks}: no socketcan/vcan buses here. Not a failure: nothing configured needs it; "
        "the virtual bus, serial instruments and USB CAN adapters still work",
    )


def can_netdevs(sys_class_net: Path = SYS_CLASS_NET) -> list[dict[str, Any]]:
    """The can/vcan network interfaces the kernel has: name, state, MTU (72 means CAN FD)."""
    found = []
    for device in sorted(sys_class_net.glob("*")):
        if _read(device / "type") != str(ARPHRD_CAN):
            continue
        mtu = _read(device / "mtu")
        found.append(
            {
                "name": device.name,
                "state": _read(device / "operstate") or "unknown",
                "mtu": int(mtu) if mtu and mtu.isdigit() else None,
                # vcan has no device behind it; a real controller (or USB adapter) does.
                "virtual": not (device / "device").exists(),
            }
        )
    return found


def check_can_netdevs(report: DoctorReport, sys_class_net: Path) -> None:
    devices = can_netdevs(sys_class_net)
    if not devices:
        report.add(
            "CAN interfaces",
            "info",
            "no can/vcan network interfaces (scripts/vcan-up.sh adds vcan0)",
        )
        return
    for dev in devices:
        kind = "vcan" if dev["virtual"] else "can"
        fd = ", CAN FD" if dev["mtu"] == 72 else ""
        status: Status = "ok" if dev["state"] in ("up", "unknown") else "warn"
        hint = "" if status == "ok" else f" (raise it: sudo ip link set {dev['name']} up)"
        report.add(f"{kind} {dev['name']}", status, f"{dev['state']}, mtu {dev['mtu']}{fd}{hint}")


def check_serial_ports(report: DoctorReport) -> None:
    from serial.tools import list_ports

    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    if not ports:
        report.add("serial ports", "info", "none found")
        return
    described = [
        p.device + (f" ({p.description})" if p.description and p.description != "n/a" else "")
        for p in ports
    ]
    report.add("serial ports", "info", ", ".join(described))


# -- data: DBCs and plans ------------------------------------------------------------------------


def check_dbcs(report: DoctorReport, dbc_paths: Sequence[Path] | None) -> None:
    from .dbc import DbcSet

    try:
        dbcs = DbcSet.load(list(dbc_paths) if dbc_paths else None)
    except BenchError as exc:
        report.add("DBC", "fail", str(exc))
        return
    signals = sum(len(m.signals) for m in dbcs.messages)
    names = ", ".join(p.name for p in dbcs.paths)
    report.add("DBC", "ok", f"{names}: {len(dbcs.messages)} messages, {signals} signals")
    _dbc_warnings(report, "DBC warnings", dbcs)


#: How many of a DBC set's warnings the doctor spells out (``bench dbc`` prints them all).
SHOWN_DBC_WARNINGS = 3


def _dbc_warnings(report: DoctorReport, check: str, dbcs: Any) -> None:
    """The non-strict load warnings ``bench dbc`` prints, counted, the first few with their
    file: a warning, not a problem (the DBCs load and decode; ``bench dbc`` says how)."""
    warnings = [str(w) for w in dbcs.warnings]
    if not warnings:
        return
    shown = "; ".join(warnings[:SHOWN_DBC_WARNINGS])
    more = len(warnings) - SHOWN_DBC_WARNINGS
    rest = f"; … {more} more" if more > 0 else ""
    report.add(
        check, "warn", f"{_count(len(warnings), 'warning')} (bench dbc lists them): {shown}{rest}"
    )


def _plan_loader() -> Callable[[Path], Any] | None:
    # bench.plan is written alongside this module; find its loader without depending on it.
    for module_name in ("bench.plan", "bench.plan.loader"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        loader = getattr(module, "load_plan", None)
        if callable(loader):
            return loader
    return None


def plan_files(plan_dir: Path) -> list[Path]:
    # Top level only, as the nightly run takes them: sub-folders hold data (drive cycles).
    found: set[Path] = set()
    for pattern in PLAN_PATTERNS:
        found.update(plan_dir.glob(pattern))
    return sorted(found)


def check_plans(report: DoctorReport, plan_dir: Path) -> None:
    plans = plan_files(plan_dir) if plan_dir.is_dir() else []
    if not plans:
        report.add("plans", "info", f"no plans in {plan_dir}")
        return
    loader = _plan_loader()
    if loader is None:
        report.add(
            "plans",
            "warn",
            f"plan loader not available: {_count(len(plans), 'plan')} in {plan_dir} not checked",
        )
        return
    for plan in plans:
        try:
            loaded = loader(plan)
        except BenchError as exc:
            report.add(f"plan {plan.name}", "fail", str(exc))
        except Exception as exc:
            report.add(f"plan {plan.name}", "fail", f"{plan}: {type(exc).__name__}: {exc}")
        else:
            report.add(f"plan {plan.name}", "ok", str(getattr(loaded, "name", plan.stem)))


# -- the bench profile ---------------------------------------------------------------------------


def check_profile_file(report: DoctorReport, profile_path: Path | None) -> Any:
    from .profile import PROFILE_ENV, load_profile

    try:
        profile = load_profile(profile_path)
    except BenchError as exc:
        report.add("bench profile", "fail", str(exc))
        return None
    if profile is None:
        report.add(
            "bench profile",
            "info",
            f"none given (--bench or {PROFILE_ENV}): checked this machine and the virtual setup",
        )
        return None
    report.add(
        "bench profile",
        "ok",
        f"{profile.path}: {profile.name!r}, {_count(len(profile.buses), 'bus', 'buses')}, "
        f"{_count(len(profile.instruments), 'instrument')}",
    )
    return profile


def check_profile_dbcs(report: DoctorReport, profile: Any) -> None:
    from .dbc import DbcSet

    for bus in profile.buses:
        if not bus.dbc:
            continue
        try:
            dbcs = DbcSet.load(bus.dbc)
        except BenchError as exc:
            report.add(f"bus {bus.name} DBC", "fail", str(exc))
        else:
            report.add(f"bus {bus.name} DBC", "ok", f"{len(dbcs.messages)} messages")
            _dbc_warnings(report, f"bus {bus.name} DBC warnings", dbcs)


def check_buses(report: DoctorReport, profile: Any) -> None:
    for bus in profile.buses:
        name = f"bus {bus.name}"
        where = f"{bus.interface} {bus.channel}"
        error = open_bus_error(bus.can_kwargs())
        if error is None:
            report.add(name, "ok", f"{where} opens")
        else:
            report.add(name, "fail", f"{where}: cannot open: {error}")


def open_bus_error(kwargs: dict[str, Any]) -> str | None:
    """Open and close a python-can bus; None when that worked, else why not (one line)."""
    import can

    if kwargs.get("interface") == "socketcan":
        lacking = socketcan_error()
        if lacking is not None:
            return f"the kernel lacks SocketCAN ({lacking})"
        channel = str(kwargs.get("channel"))
        if not (SYS_CLASS_NET / channel).exists():
            return (
                f"no network interface {channel} (a virtual one: sudo scripts/vcan-up.sh {channel})"
            )
    # python-can logs its own copy of the failure; the finding already says it, once.
    can_logger = logging.getLogger("can")
    level = can_logger.level
    can_logger.setLevel(logging.CRITICAL)
    try:
        bus = can.Bus(**kwargs)
    except Exception as exc:  # python-can raises many kinds, by interface: all mean "no"
        return f"{type(exc).__name__}: {one_line(exc) or 'no reason given'}"
    finally:
        can_logger.setLevel(level)
    try:
        bus.shutdown()
    except Exception as exc:
        return f"opened, but shutting down failed: {type(exc).__name__}: {one_line(exc)}"
    return None


def check_instruments(report: DoctorReport, profile: Any) -> None:
    from .instruments import open_instrument

    for instrument in profile.instruments:
        name = f"instrument {instrument.name}"
        try:
            with open_instrument(instrument) as device:
                identity = device.identify()
        except BenchError as exc:
            report.add(name, "fail", str(exc))
        else:
            report.add(name, "ok", f"{instrument.driver} on {instrument.port}: {identity}")


# -- output --------------------------------------------------------------------------------------

_STYLE = {"ok": "green", "info": "dim", "warn": "yellow", "fail": "bold red"}
_LABEL = {"ok": "ok", "info": "info", "warn": "warn", "fail": "FAIL"}


def print_report(report: DoctorReport, console: Any = None) -> None:
    """A rich table on a terminal; plain ``status  check: detail`` lines otherwise.

    Either way it ends with the summary and, when something failed, the list of what did.
    """
    from rich.console import Console

    console = console or Console()
    if console.is_terminal:
        _print_table(report, console)
        for f in report.problems:
            console.print(f"  - {f.check}: {f.detail}", markup=False, highlight=False)
        return
    lines = [f"{_LABEL[f.status]:<5} {f.check}: {f.detail}" for f in report.findings]
    lines.append(report.summary())
    lines += [f"  - {f.check}: {f.detail}" for f in report.problems]
    console.file.write("\n".join(lines) + "\n")


def _print_table(report: DoctorReport, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="bench doctor", show_lines=False)
    table.add_column("Check", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Detail", overflow="fold")
    for f in report.findings:
        table.add_row(f.check, Text(_LABEL[f.status], style=_STYLE[f.status]), Text(f.detail))
    console.print(table)
    style = "bold red" if report.problems else "bold green"
    console.print(Text(report.summary(), style=style))


# -- helpers -------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"
