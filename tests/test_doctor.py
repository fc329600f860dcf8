"""bench doctor: exit 0 when all is well (warnings allowed), 1 with the list of what is not.

Devices are real: simulated instruments on ptys, python-can virtual buses, an slcan adapter
simulator; the CLI runs in-process through click's runner (same code path as the console script).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.doctor import can_netdevs, run_doctor, socketcan_error
from bench.instruments.simulator import (
    SimulatedChamber,
    SimulatedPowerSupply,
    SimulatedSlcanAdapter,
)
from bench.profile import PROFILE_ENV
from tests.conftest import DBC_DIR

HAS_SOCKETCAN = socketcan_error() is None


@pytest.fixture(autouse=True)
def no_profile_from_the_environment(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)


@pytest.fixture
def empty_plans(tmp_path) -> Path:
    plans = tmp_path / "plans"
    plans.mkdir()
    return plans


def doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["doctor", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def finding(report, check: str):
    matches = [f for f in report.findings if f.check == check]
    assert matches, [f.check for f in report.findings]
    return matches[0]


def profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def test_machine_without_profile_is_well(empty_plans):
    report = run_doctor(plan_dir=empty_plans)
    assert report.exit_code == 0, report.problems
    assert finding(report, "python-can").detail.startswith("python-can 4.")
    assert "virtual" in finding(report, "python-can interfaces").detail
    assert finding(report, "DBC").status == "ok"
    assert "none given" in finding(report, "bench profile").detail
    socketcan = finding(report, "SocketCAN")
    if HAS_SOCKETCAN:
        assert socketcan.status == "ok"
    else:
        # Said plainly, and a warning only: a virtual setup needs no SocketCAN.
        assert socketcan.status == "warn"
        assert socketcan.detail.startswith("the kernel lacks SocketCAN")
        assert "Not a failure" in socketcan.detail


def test_cli_plain_output_and_exit_code(empty_plans):
    code, output = doctor("--plans", str(empty_plans))
    assert code == 0
    lines = output.splitlines()
    assert lines[0].startswith("ok    python-can: python-can 4.")
    assert any(line.startswith(("ok    SocketCAN:", "warn  SocketCAN:")) for line in lines)
    assert lines[-1].startswith("All well")


def test_cli_json(empty_plans):
    code, output = doctor("--json", "--plans", str(empty_plans))
    assert code == 0
    data = json.loads(output)
    assert data["ok"] is True and data["exit_code"] == 0 and data["problems"] == []
    checks = {f["check"]: f["status"] for f in data["findings"]}
    assert checks["DBC"] == "ok"
    assert checks["SocketCAN"] in ("ok", "warn")


def test_broken_dbc_is_a_problem(tmp_path, empty_plans):
    broken = tmp_path / "broken.dbc"
    broken.write_text('VERSION ""\n\nBO_ 100 Foo 8 ECU\n')  # the colon after Foo is missing
    code, output = doctor("--dbc", str(broken), "--plans", str(empty_plans))
    assert code == 1
    assert "FAIL  DBC:" in output
    assert f"  - DBC: {broken}:3:13: invalid DBC syntax" in output
    assert "1 problem" in output


def test_dbc_warnings_are_shown_counted_with_the_first_few(tmp_path, empty_plans):
    # four messages with an 8-bit IEEE float (the case float-signal-8-bit.dbc): the DBC loads,
    # and `bench dbc` prints four warnings; the doctor counts them and shows the first three
    odd = tmp_path / "odd.dbc"
    text = 'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: NodeA\n\n'
    for n in range(4):
        text += f'BO_ {200 + n} Odd{n}: 8 NodeA\n SG_ F{n} : 0|8@1+ (1,0) [0|0] "" NodeA\n\n'
    text += "".join(f"SIG_VALTYPE_ {200 + n} F{n} : 1;\n" for n in range(4))
    odd.write_text(text)
    report = run_doctor(dbc_paths=[odd], plan_dir=empty_plans)
    assert finding(report, "DBC").status == "ok" and report.exit_code == 0
    from bench.dbc import DbcSet

    expected = [str(w) for w in DbcSet.load([odd]).warnings]
    assert len(expected) == 4
    shown = finding(report, "DBC warnings")
    assert shown.status == "warn"
    assert shown.detail == (
        f"4 warnings (bench dbc lists them): {'; '.join(expected[:3])}; … 1 more"
    )
    assert str(odd) in shown.detail


def test_project_dbcs_have_no_warning_line(empty_plans):
    report = run_doctor(plan_dir=empty_plans)
    assert not [f for f in report.findings if f.check == "DBC warnings"]


def test_profile_devices_that_answer(tmp_path, empty_plans):
    with (
        SimulatedChamber() as chamber,
        SimulatedPowerSupply() as supply,
        SimulatedSlcanAdapter() as adapter,
    ):
        path = profile(
            tmp_path,
            f"""\
name = "pty bench"
[buses.battery]
interface = "virtual"
channel = "doctor-test"
dbc = ["{DBC_DIR / "battery.dbc"}"]
[buses.diag]
interface = "slcan"
channel = "{adapter.port}"
bitrate = 500000
options = {{sleep_after_open = 0}}
[instruments.chamber]
driver = "chamber"
port = "{chamber.port}"
timeout_s = 5
[instruments.supply]
driver = "power_supply"
port = "{supply.port}"
timeout_s = 5
""",
        )
        # generous timeouts: answering devices must not look silent on a loaded CI machine
        code, output = doctor("--bench", str(path), "--plans", str(empty_plans))
        assert code == 0, output
        assert adapter.bitrate_command == "S6"  # python-can set 500 kbit/s on the adapter
    assert "ok    bench profile:" in output and "'pty bench', 2 buses, 2 instruments" in output
    assert f"ok    instrument chamber: chamber on {chamber.port}: BENCH-SIM,CHAMBER" in output
    assert f"ok    instrument supply: power_supply on {supply.port}: BENCH-SIM,PSU" in output
    assert "ok    bus battery: virtual doctor-test opens" in output
    assert f"ok    bus diag: slcan {adapter.port} opens" in output
    assert "ok    bus battery DBC:" in output


def test_profile_devices_that_do_not_answer(tmp_path, empty_plans, monkeypatch):
    # A port that does not exist (not a closed pty's name: under pytest-xdist another worker may
    # get the same /dev/pts number at once) and a silent instrument that times out.
    gone_port = str(tmp_path / "ttyUSB-unplugged")
    with SimulatedChamber() as silent:
        silent.silence(10)
        path = profile(
            tmp_path,
            f"""\
[buses.motor]
interface = "socketcan"
channel = "can9"
[instruments.chamber]
driver = "chamber"
port = "{silent.port}"
timeout_s = 0.3
retries = 0
[instruments.supply]
driver = "power_supply"
port = "{gone_port}"
""",
        )
        monkeypatch.setenv(PROFILE_ENV, str(path))  # found through the environment this time
        report = run_doctor(plan_dir=empty_plans)
    assert report.exit_code == 1
    problems = {f.check: f.detail for f in report.problems}
    assert problems["instrument chamber"] == (
        f"chamber on {silent.port}: no answer to '*IDN?' after 1 tries"
    )
    assert problems["instrument supply"] == (
        f"power supply on {gone_port}: cannot open port: No such file or directory"
    )
    assert problems["bus motor"].startswith("socketcan can9: cannot open: ")
    if HAS_SOCKETCAN:
        assert (
            "no network interface can9 (a virtual one: sudo scripts/vcan-up.sh can9)"
            in (problems["bus motor"])
        )
    if not HAS_SOCKETCAN:
        # A profile that needs SocketCAN makes its absence a failure, not a warning.
        assert problems["SocketCAN"].startswith("the kernel lacks SocketCAN")
        assert "need it: motor" in problems["SocketCAN"]
        assert "the kernel lacks SocketCAN" in problems["bus motor"]


def test_broken_profile_is_a_problem_not_a_crash(tmp_path, empty_plans):
    path = profile(tmp_path, '[buses.a]\ninterface = "virtual"\nchanel = "x"\n')
    code, output = doctor("--bench", str(path), "--plans", str(empty_plans))
    assert code == 1
    assert f"FAIL  bench profile: {path}:3: buses.a.chanel: unknown key" in output


def test_missing_profile_is_a_problem(tmp_path, empty_plans):
    code, output = doctor("--bench", str(tmp_path / "none.toml"), "--plans", str(empty_plans))
    assert code == 1
    assert "bench profile not found" in output


def test_plans_without_a_loader_are_a_warning(tmp_path, monkeypatch):
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "a.yaml").write_text("name: a\n")
    monkeypatch.setitem(sys.modules, "bench.plan", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "bench.plan.loader", None)
    report = run_doctor(plan_dir=plans)
    plan = finding(report, "plans")
    assert (plan.status, plan.detail) == (
        "warn",
        f"plan loader not available: 1 plan in {plans} not checked",
    )
    assert report.exit_code == 0


def test_broken_plan_is_a_problem_when_plans_can_be_loaded(tmp_path):
    from bench.doctor import _plan_loader

    if _plan_loader() is None:
        pytest.skip("bench.plan has no load_plan yet")
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "broken.yaml").write_text("name: [unclosed\n")
    report = run_doctor(plan_dir=plans)
    assert finding(report, "plan broken.yaml").status == "fail"
    assert report.exit_code == 1


def test_can_netdevs_read_from_sysfs(tmp_path):
    def netdev(name: str, kind: int, state: str, mtu: int, device: bool = False) -> None:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "type").write_text(f"{kind}\n")
        (folder / "operstate").write_text(f"{state}\n")
        (folder / "mtu").write_text(f"{mtu}\n")
        if device:
            (folder / "device").mkdir()

    netdev("eth0", 1, "up", 1500)
    netdev("vcan0", 280, "unknown", 72)
    netdev("can0", 280, "down", 16, device=True)
    assert can_netdevs(tmp_path) == [
        {"name": "can0", "state": "down", "mtu": 16, "virtual": False},
        {"name": "vcan0", "state": "unknown", "mtu": 72, "virtual": True},
    ]
    report = run_doctor(sys_class_net=tmp_path, plan_dir=tmp_path / "none")
    assert finding(report, "vcan vcan0").detail == "unknown, mtu 72, CAN FD"
    can0 = finding(report, "can can0")
    assert can0.status == "warn" and "ip link set can0 up" in can0.detail
