"""The ``bench`` command: a thin layer over the library. No logic of its own lives here.

Every command turns its options into a library call and the result into an exit code
(DESIGN.md: 0 pass, 1 a check failed, 2 usage/plan/DBC error, 3 aborted or harness error).
A :class:`~bench.errors.BenchError` becomes one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import EXIT_ABORTED, BenchError, one_line
from .interrupt import Interrupted


def _fail(message: str, code: int) -> None:
    click.echo(f"bench: error: {message}", err=True)
    sys.exit(code)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line and an exit code; set BENCH_DEBUG=1 for the traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BenchError as exc:
            if os.environ.get("BENCH_DEBUG"):
                raise
            _fail(str(exc), exc.exit_code)
        except Interrupted as exc:  # a signal during evaluation or reporting: what is undone
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_ABORTED)
        except Exception as exc:  # the last line of defence: still one line, exit 3
            if os.environ.get("BENCH_DEBUG"):
                raise
            _fail(
                f"internal error: {type(exc).__name__}: {one_line(exc)} "
                "(run with BENCH_DEBUG=1 for the traceback)",
                EXIT_ABORTED,
            )

    return wrapper


dbc_option = click.option(
    "--dbc",
    "dbc_paths",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="DBC file (repeatable). Default: the project's dbc/battery.dbc, motor.dbc, vehicle.dbc.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bench")
def cli() -> None:
    """EV validation test bench: run plans on CAN, record to Parquet, judge against limits."""


@cli.command("run")
@click.argument("plan_path", metavar="PLAN", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--interface", help="python-can interface (default: the plan's, else virtual).")
@click.option("--channel", help="Channel, e.g. vcan0, can0, PCAN_USBBUS1.")
@click.option("--bitrate", type=int, help="Nominal bitrate in bit/s.")
@click.option("--realtime", is_flag=True, help="Wall-clock time; no in-process vehicle.")
@click.option("--seed", type=int, help="Seed of the virtual vehicle (lockstep runs).")
@click.option(
    "--inject",
    multiple=True,
    metavar="FAULT",
    help="Fault on the virtual vehicle: KIND:TARGET[=V][@START[+DUR]] (repeatable).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Run directory, new or empty: one holding anything is refused (default: "
    "reports/<timestamp>-<plan>/).",
)
@click.option("--plain", is_flag=True, help="Plain log lines even on a terminal.")
@click.option(
    "--bench",
    "bench_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Bench profile (bench.toml): its buses replace the plan's bus, its chamber serves "
    "chamber/ambient steps. Default: $BENCH_CONFIG.",
)
@reports_errors
def run_command(
    plan_path: Path,
    interface: str | None,
    channel: str | None,
    bitrate: int | None,
    realtime: bool,
    seed: int | None,
    inject: tuple[str, ...],
    out_dir: Path | None,
    plain: bool,
    bench_path: Path | None,
) -> None:
    """Run PLAN on the bus; record, judge, report. Exit 0 pass, 1 fail, 2 bad input, 3 aborted."""
    from .plan import load_plan
    from .profile import load_profile
    from .run import RunOptions, run_plan

    plan = load_plan(plan_path)
    profile = load_profile(bench_path)
    options = RunOptions(
        interface=interface,
        channel=channel,
        bitrate=bitrate,
        realtime=realtime,
        seed=seed,
        inject=inject,
        out_dir=out_dir,
        force_plain=plain,
        bench=profile,
    )
    result = run_plan(plan, options)
    if result.stopped is not None and result.stopped.kind in ("error", "storage"):
        # An interface, harness or storage failure: one line a person can act on (the log, where
        # it could be written, has the rest).
        click.echo(f"bench: error: {one_line(result.stopped.reason)}", err=True)
    elif result.problem is not None:
        click.echo(f"bench: error: {result.problem}", err=True)
    sys.exit(result.exit_code)


@cli.group("diag", invoke_without_command=False)
@click.option(
    "--ecu", "ecu_names", multiple=True, required=True, help="ECU name: BMS, MCU (repeatable)."
)
@click.option("--interface", help="python-can interface (default: the in-process vehicle).")
@click.option("--channel", help="Channel, e.g. vcan0, can0, PCAN_USBBUS1.")
@click.option("--bitrate", type=int, help="Nominal bitrate in bit/s.")
@click.option(
    "--bench",
    "bench_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Bench profile: its first bus (or --bus) and its [diagnostics.*] addressing.",
)
@click.option("--bus", "bus_name", help="The bench profile's bus to use (default: the first).")
@click.option(
    "--inject",
    multiple=True,
    metavar="FAULT",
    help="Fault on the in-process virtual vehicle, as for bench run (repeatable).",
)
@click.option(
    "--at",
    "at_text",
    default="2s",
    show_default=True,
    help="In-process vehicle: ask after it has run this long (simulated).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.pass_context
def diag_group(
    ctx: click.Context,
    ecu_names: tuple[str, ...],
    interface: str | None,
    channel: str | None,
    bitrate: int | None,
    bench_path: Path | None,
    bus_name: str | None,
    inject: tuple[str, ...],
    at_text: str,
    as_json: bool,
) -> None:
    """UDS on an ECU: read-dtc | clear-dtc | read-did NAME... (the in-process virtual vehicle
    by default; a bench profile or --interface/--channel for a real bus).

    Exit 0 every request answered positively, 1 a negative or missing response, 2 bad input,
    3 interface error."""
    ctx.obj = dict(
        ecu_names=ecu_names,
        interface=interface,
        channel=channel,
        bitrate=bitrate,
        bench_path=bench_path,
        bus_name=bus_name,
        inject=inject,
        at_text=at_text,
        as_json=as_json,
    )


@diag_group.command("read-dtc")
@click.option("--mask", default="0xFF", show_default=True, help="DTCStatusMask, e.g. 0x08.")
@click.pass_obj
@reports_errors
def diag_read_dtc(obj: dict[str, Any], mask: str) -> None:
    """ReadDTCInformation reportDTCByStatusMask: the DTCs with their status bits."""
    from .errors import InputError

    try:
        value = int(mask, 0)
    except ValueError:
        raise InputError(f"--mask {mask!r}: expected a number 0-255, e.g. 0xFF") from None
    if not 0 <= value <= 0xFF:
        raise InputError(f"--mask {mask!r}: expected a number 0-255, e.g. 0xFF")
    _diag(obj, "read-dtc", (), value)


@diag_group.command("clear-dtc")
@click.pass_obj
@reports_errors
def diag_clear_dtc(obj: dict[str, Any]) -> None:
    """ClearDiagnosticInformation (all groups)."""
    _diag(obj, "clear-dtc", (), 0xFF)


@diag_group.command("read-did")
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.pass_obj
@reports_errors
def diag_read_did(obj: dict[str, Any], names: tuple[str, ...]) -> None:
    """ReadDataByIdentifier: DID names (pack_soh, software_version …) or ids (0xF195)."""
    _diag(obj, "read-did", names, 0xFF)


def _diag(obj: dict[str, Any], action: str, dids: tuple[str, ...], mask: int) -> None:
    from rich.console import Console

    from .bus import BusSettings
    from .diag.catalog import virtual_vehicle_ecus, with_addressing
    from .diag.cli_table import exchanges_json, print_tables
    from .diag.session import build_operations, on_bus, on_virtual_vehicle
    from .durations import parse_duration
    from .errors import InputError
    from .profile import load_profile

    profile = load_profile(obj["bench_path"])
    ecus = virtual_vehicle_ecus()
    if profile is not None:
        ecus = with_addressing(ecus, profile.diagnostic_addressing())
    unknown = [name for name in obj["ecu_names"] if name not in ecus]
    if unknown:
        raise InputError(f"--ecu {unknown[0]!r}: unknown ECU; known: {', '.join(ecus)}")
    chosen = [ecus[name] for name in obj["ecu_names"]]
    operations = build_operations(chosen, action, dids, mask)
    real = profile is not None or obj["interface"] is not None or obj["channel"] is not None
    if real:
        if obj["inject"]:
            raise InputError(
                "--inject needs the in-process virtual vehicle; for `python -m virtual_bus` "
                "pass --inject to it"
            )
        settings = BusSettings(interface=obj["interface"] or "socketcan", channel="can0")
        if profile is not None and profile.buses:
            bus = profile.bus(obj["bus_name"]) if obj["bus_name"] else profile.buses[0]
            settings = BusSettings.of_profile(bus)
        settings = settings.merged(
            interface=obj["interface"], channel=obj["channel"], bitrate=obj["bitrate"]
        )
        exchanges = on_bus(operations, settings)
    else:
        try:
            at = parse_duration(obj["at_text"])
        except ValueError as exc:
            raise InputError(f"--at: {exc}") from None
        from virtual_bus.faults import parse_faults

        faults = [str(f) for f in parse_faults(obj["inject"])]
        exchanges = on_virtual_vehicle(operations, faults=faults, at=at)
    if obj["as_json"]:
        click.echo(json.dumps(exchanges_json(exchanges, ecus), indent=2))
    else:
        print_tables(exchanges, ecus, Console())
    sys.exit(1 if any(not e.ok for e in exchanges) else 0)


@cli.command("evaluate")
# LOGs stay text: a URL (s3://bucket/x) must not become a Path, which would fold its "//"
@click.argument("logs", metavar="LOG...", nargs=-1, required=True)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Plan whose checks to judge (default: the run directory's plan.yaml).",
)
@dbc_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Output directory (default: LOG if it is a run directory, else reports/<time>-<plan>/). "
    "For a campaign: the campaign directory, one run directory per log in it.",
)
@click.option(
    "--jobs",
    type=int,
    help="Campaign: logs judged at once in local processes (default: one per core).",
)
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    help="Campaign: judge the logs on this Dask cluster instead of local processes.",
)
@reports_errors
def evaluate_command(
    logs: tuple[str, ...],
    plan_path: Path | None,
    dbc_paths: tuple[Path, ...],
    out_dir: Path | None,
    jobs: int | None,
    scheduler: str | None,
) -> None:
    """Judge recorded LOGs (run directories, Parquet, BLF, ASC, TRC, MF4, candump) against a plan.

    One LOG: writes signals/, summary.json, junit.xml, report.html into its run directory.
    A LOG may be a URL read through fsspec (s3://bucket/prefix/, https://…/log.parquet).
    Several LOGs, a directory to search, --jobs or --scheduler: a campaign (campaign.json,
    junit.xml, campaign.html). Exit 0 pass, 1 fail, 2 bad input, 3 aborted (worst over logs)."""
    from .campaign import is_log
    from .console import check_lines, report_line
    from .remote import is_url

    given = [log if is_url(log) else Path(log) for log in logs]
    if len(logs) > 1 or jobs is not None or scheduler is not None or not _single(logs[0], is_log):
        _campaign(given, plan_path, dbc_paths, out_dir, jobs, scheduler)
    from .evaluate import evaluate_path
    from .interrupt import ends_phase
    from .summary import exit_code

    log = given[0]
    undone = f"{log} not judged (summary.json, junit.xml, report.html not written); log untouched"
    with ends_phase("evaluation", undone):
        summary, target = evaluate_path(
            log, plan_path, dbc_paths=dbc_paths or None, out_dir=out_dir
        )
    for line in summary.skipped:
        click.echo(f"skipped {line}", err=True)
    for line in check_lines(summary.checks):
        click.echo(line)
    click.echo(f"verdict: {summary.verdict.upper()} ({len(summary.checks)} checks) -> {target}")
    click.echo(report_line(target))
    sys.exit(exit_code(summary.verdict))


def _single(log: str, is_log: Callable[[Path], bool]) -> bool:
    from .remote import is_log_url, is_url

    if is_url(log):
        try:
            return is_log_url(log)
        except BenchError:
            return True  # a URL that cannot be read is a single log's error (one line)
    # a path that does not exist is a single log's error ("no such log file"), as it always was
    return not Path(log).exists() or is_log(Path(log))


def _campaign(
    logs: Sequence[Path | str],
    plan_path: Path | None,
    dbc_paths: tuple[Path, ...],
    out_dir: Path | None,
    jobs: int | None,
    scheduler: str | None,
) -> None:
    """``bench evaluate`` of many logs: see :mod:`bench.campaign`."""
    from .campaign import run_campaign
    from .errors import InputError
    from .interrupt import ends_phase

    if plan_path is None:
        raise InputError("a campaign (several logs, or a folder to search) needs --plan PLAN")
    # run_campaign writes the summary of the logs judged so far before the signal ends it
    undone = "campaign interrupted: campaign.json, junit.xml and campaign.html hold the logs "
    undone += "judged so far; the logs are untouched"
    with ends_phase("a campaign", undone):
        outcome = run_campaign(
            logs, plan_path, dbc_paths=dbc_paths or None, out_dir=out_dir, jobs=jobs,
            scheduler=scheduler,
        )  # fmt: skip
    data = outcome.data
    counts = ", ".join(f"{n} {v}" for v, n in data["counts"].items())
    click.echo(f"campaign: {data['verdict'].upper()} ({len(outcome.results)} logs: {counts})")
    click.echo(f"-> {outcome.out_dir / 'campaign.html'}")
    sys.exit(outcome.exit_code)


@cli.command("dbc")
@dbc_option
@click.option("--json", "as_json", is_flag=True, help="Print the same as JSON.")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse (exit 2) what cantools' strict mode refuses: overlapping signals, "
    "signals that do not fit their message.",
)
@reports_errors
def dbc_command(dbc_paths: tuple[Path, ...], as_json: bool, strict: bool) -> None:
    """List the messages and signals of the DBC set; warnings (one line each) on stderr."""
    from .dbc import DbcSet

    dbcs = DbcSet.load(dbc_paths or None, strict=strict)
    _echo_dbc_warnings(dbcs.warnings)
    described = dbcs.describe()
    if as_json:
        files = [str(p) for p in dbcs.paths]
        warnings = [str(w) for w in dbcs.warnings]
        click.echo(
            json.dumps({"files": files, "warnings": warnings, "messages": described}, indent=2)
        )
        return
    from .console import print_dbc_table

    print_dbc_table(described, [str(p) for p in dbcs.paths])


def _echo_dbc_warnings(warnings: list[Any]) -> None:
    for warning in warnings:
        click.echo(f"bench: warning: {warning}", err=True)


@cli.command("doctor")
@dbc_option
@click.option(
    "--bench",
    "bench_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Bench profile (bench.toml) whose buses and instruments to check. Default: $BENCH_CONFIG.",
)
@click.option(
    "--plans",
    "plan_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of plans to parse. Default: the project's test_plans/.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@reports_errors
def doctor_command(
    dbc_paths: tuple[Path, ...], bench_path: Path | None, plan_dir: Path | None, as_json: bool
) -> None:
    """Check this machine and bench: python-can, SocketCAN, ports, DBCs, plans, devices.

    Exit 0 when all is well (warnings allowed), 1 with the list of what is not.
    """
    from .doctor import DEFAULT_PLAN_DIR, print_report, run_doctor

    report = run_doctor(
        dbc_paths=list(dbc_paths) or None,
        profile_path=bench_path,
        plan_dir=plan_dir or DEFAULT_PLAN_DIR,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report)
    sys.exit(report.exit_code)


@cli.command("convert")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@reports_errors
def convert_command(src: Path, dst: Path) -> None:
    """Convert a CAN log between formats: .parquet, .blf, .asc, .trc, .mf4, .log (candump),
    their .gz forms (not Parquet/MF4), or a directory of Parquet segments (a DST without
    suffix). Formats are chosen by suffix; the README says what each keeps."""
    from .logfiles import convert

    loaded = convert(src, dst)
    for line in loaded.skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(f"{src} -> {dst}: {loaded.frames} frames")


@cli.command("validate")
@click.argument("plan", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--dbc",
    "dbc_paths",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="DBC file (repeatable), instead of the plan's dbc list.",
)
@click.option("--schema", is_flag=True, help="Print the JSON Schema of plans instead.")
@reports_errors
def validate_command(plan: Path | None, dbc_paths: tuple[Path, ...], schema: bool) -> None:
    """Check PLAN against its DBCs without sending anything: every problem, one line each."""
    from .errors import EXIT_INPUT, InputError
    from .plan.loader import describe_plan, load
    from .plan.schema import plan_json_schema_text

    if schema:
        click.echo(plan_json_schema_text(), nl=False)
        return
    if plan is None:
        raise InputError("give a PLAN to validate (or --schema)")
    result = load(plan, dbc_paths=dbc_paths or None)
    if result.plan is not None:
        _echo_dbc_warnings(result.plan.dbcs.warnings)  # the DBCs loaded: a plan has a DBC set
    if result.errors or result.plan is None:
        for line in result.errors:
            click.echo(line, err=True)
        sys.exit(EXIT_INPUT)
    click.echo(describe_plan(result.plan))


@cli.command("report")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the page here instead of RUN_DIR/report.html.",
)
@reports_errors
def report_command(run_dir: Path, out: Path | None) -> None:
    """(Re)build the self-contained report.html of a run directory."""
    from .interrupt import ends_phase

    undone = f"{out or run_dir / 'report.html'} not written; {run_dir} untouched"
    with ends_phase("reporting", undone):
        from .report.html import write_report

        page = write_report(run_dir, out)
    click.echo(page)


@cli.command("compare")
@click.argument(
    "run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--signal",
    "signals",
    multiple=True,
    metavar="MSG.SIG",
    help="Signal to overlay (repeatable). Default: those of checks that did not pass.",
)
@click.option("--align", metavar="STEP", help="Put x = 0 at this step's start in every run.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("compare.html"),
    show_default=True,
    help="The page to write.",
)
@reports_errors
def compare_command(
    run_dirs: tuple[Path, ...], signals: tuple[str, ...], align: str | None, out: Path
) -> None:
    """Compare runs side by side in one self-contained HTML page."""
    from .report.compare import write_compare

    click.echo(write_compare(run_dirs, out, signals, align))


@cli.command("runs")
@click.argument("root", required=False, default=Path("reports"), type=click.Path(path_type=Path))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="MSG.SIG:AGG",
    help="Per-run aggregate of a signal (min, max, mean, median, std, first, last, count, p95); "
    "repeatable.",
)
@click.option("--plan", metavar="NAME|PLAN.yaml", help="Only the runs of this plan.")
@click.option("--json", "as_json", is_flag=True, help="Print the index as JSON.")
@reports_errors
def runs_command(root: Path, metrics: tuple[str, ...], plan: str | None, as_json: bool) -> None:
    """Index of the run directories under ROOT (default reports/), oldest first."""
    from .report.runs import Metric, index_runs, print_runs
    from .report.runs import as_json as runs_json

    parsed = [Metric.parse(text) for text in metrics]
    rows = index_runs(root, parsed, plan=plan)
    if as_json:
        click.echo(runs_json(rows, parsed))
    else:
        print_runs(rows, parsed, root)


def main() -> None:
    cli(prog_name="bench")


if __name__ == "__main__":
    main()
