"""``python -m virtual_bus``: the virtual vehicle as a process of its own, on any python-can bus.

    python -m virtual_bus --duration 10min --record run.parquet            # alone, fast
    python -m virtual_bus --interface socketcan --channel vcan0 --ambient -30   # real time

With ``--interface`` the vehicle runs on the wall clock (the harness in another process drives it
like a real car); on SocketCAN its cyclic messages are then kernel (BCM) cyclic send tasks
(``--no-kernel-cyclic``: the Python scheduler sends them), and ``--cycle-jitter BMS=2`` /
``--startup-delay MCU=150`` add a seeded imperfection on request. Without ``--interface`` it runs
alone on an in-process ``virtual`` bus, as fast as the CPU
allows, and needs ``--duration`` (or ``--realtime``). ``--record`` writes every frame it sent as a
frame table (bench.frames schema, direction ``tx``), in row groups as it goes, so memory stays flat
and an interrupted run (Ctrl-C, SIGTERM) still leaves a readable file.

The BMS and MCU answer UDS (ISO 14229 over ISO-TP) on 0x7E4/0x7EC and 0x7E2/0x7EA: ask them with
``bench diag --ecu BMS --interface socketcan --channel vcan0 read-dtc`` (README, "Diagnostics").
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import can
import click
import pyarrow.parquet as pq

from bench.dbc import DbcSet
from bench.durations import parse_duration
from bench.errors import EXIT_ABORTED, EXIT_INPUT, BenchError, InputError, one_line
from bench.frames import FRAME_SCHEMA, from_messages

from .clock import RealClock
from .faults import describe_faults, parse_faults
from .vehicle import VirtualVehicle

DEFAULT_CHANNEL = "virtual_bus"
FAST_CHUNK_S = 1.0
RECORD_BATCH = 50_000


class FrameRecorder:
    """Appends sent frames to a Parquet frame table, one row group per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._batch: list[can.Message] = []
        self._writer = pq.ParquetWriter(str(path), FRAME_SCHEMA)
        self.rows = 0

    def __call__(self, frame: can.Message) -> None:
        self._batch.append(frame)
        if len(self._batch) >= RECORD_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._batch:
            self._writer.write_table(from_messages(self._batch, direction="tx"))
            self.rows += len(self._batch)
            self._batch = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


def _duration(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def _per_ecu(texts: tuple[str, ...], option: str) -> dict[str, float]:
    """``ECU=MS`` pairs (``BMS=2``) into a dict; the vehicle checks the ECU names and ranges."""
    found: dict[str, float] = {}
    for text in texts:
        ecu, sep, value = text.partition("=")
        try:
            found[ecu.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(f"{option} {text!r}: expected ECU=MILLISECONDS, e.g. BMS=2")
    return found


def _open_bus(
    interface: str | None, channel: str | None, bitrate: int | None, fd: bool
) -> can.BusABC:
    if interface is None:
        return can.Bus(interface="virtual", channel=channel or DEFAULT_CHANNEL)
    kwargs: dict[str, object] = {"interface": interface}
    if fd and interface == "socketcan":
        kwargs["fd"] = True  # BMS_ModuleData is a 64-byte CAN FD frame (vcan0 needs mtu 72)
    if channel is not None:
        kwargs["channel"] = channel
    if bitrate is not None:
        kwargs["bitrate"] = bitrate
    if interface == "virtual":
        kwargs["preserve_timestamps"] = False
    try:
        return can.Bus(**kwargs)
    except (can.CanError, OSError, ValueError, ImportError, NotImplementedError) as exc:
        where = f"{interface}:{channel}" if channel else interface
        raise _BusError(f"cannot open CAN interface {where}: {one_line(exc)}") from None


class _BusError(BenchError):
    exit_code = EXIT_ABORTED


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and Ctrl-C set ``stop`` (the loop then ends and the recording is closed)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals can only be caught in the main thread; the caller stops us otherwise
        return

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(
    *,
    interface: str | None,
    channel: str | None,
    bitrate: int | None,
    ambient: float,
    initial_temp: float | None,
    soc: float,
    duration: str | None,
    seed: int,
    realtime: bool | None,
    record: Path | None,
    inject: tuple[str, ...],
    dbc_paths: tuple[Path, ...],
    cycle_jitter: tuple[str, ...] = (),
    startup_delay: tuple[str, ...] = (),
    kernel_cyclic: bool = True,
) -> str:
    """Run the vehicle; returns the one-line summary. Raises BenchError on bad input."""
    dbcs = DbcSet.load(dbc_paths or None)
    faults = parse_faults(inject, dbcs)
    seconds = _duration(duration, "--duration")
    live = realtime if realtime is not None else interface is not None
    if not live and seconds is None:
        raise InputError("--duration is needed to run alone as fast as possible (or --realtime)")
    if record is not None and record.suffix != ".parquet":
        raise InputError(f"--record {record}: expected a .parquet file")
    if record is not None and not record.parent.is_dir():
        raise InputError(f"--record {record}: directory {record.parent} does not exist")
    stop = threading.Event()
    has_fd = any(m.is_fd for m in dbcs.messages)
    bus = _open_bus(interface, channel, bitrate, has_fd)
    recorder = None
    wall = time.monotonic()
    try:
        vehicle = VirtualVehicle(
            bus,
            dbcs,
            seed=seed,
            ambient_c=ambient,
            initial_temp_c=initial_temp,
            soc=soc,
            faults=faults,
            cycle_jitter_ms=_per_ecu(cycle_jitter, "--cycle-jitter"),
            startup_delay_ms=_per_ecu(startup_delay, "--startup-delay"),
            kernel_cyclic=kernel_cyclic,
        )
        if record is not None:
            recorder = vehicle.on_frame = FrameRecorder(record)
        with _stop_on_signals(stop):
            if live:
                vehicle.run_realtime(RealClock(), duration=seconds, stop_event=stop)
            else:
                _run_fast(vehicle, float(seconds or 0.0), stop)
    finally:
        if recorder is not None:
            recorder.close()
        bus.shutdown()
    simulated = vehicle.now - vehicle.start_time
    elapsed = time.monotonic() - wall
    summary = f"sent {vehicle.frames_sent} frames, {simulated:.1f} s simulated in {elapsed:.1f} s"
    if vehicle.kernel_messages:
        summary += f" ({vehicle.kernel_messages} messages sent by kernel cyclic send tasks"
        summary += ", counted above)" if recorder is not None else ", not counted)"
    if stop.is_set():
        summary += " (stopped)"
    if vehicle.send_errors:
        summary += f", {vehicle.send_errors} frames could not be sent"
    if recorder is not None:
        summary += f", recorded to {record}"
    return summary


def _run_fast(vehicle: VirtualVehicle, seconds: float, stop: threading.Event) -> None:
    t = 0.0
    while t < seconds and not stop.is_set():
        t = min(seconds, t + FAST_CHUNK_S)
        vehicle.advance_to(vehicle.start_time + t)


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\n" + describe_faults(),
)
@click.option("--interface", help="python-can interface (socketcan, pcan, vector, ...).")
@click.option("--channel", help="Channel of the interface (e.g. vcan0).")
@click.option("--bitrate", type=int, help="Bitrate in bit/s, for interfaces that take one.")
@click.option("--ambient", type=float, default=25.0, show_default=True, help="Ambient °C.")
@click.option("--initial-temp", type=float, help="Start temperature of pack/motor °C [ambient].")
@click.option("--soc", type=float, default=80.0, show_default=True, help="Initial SOC %.")
@click.option("--duration", help="How long to run: 30s, 10min, 2h [until stopped].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: same seed, same bytes.")
@click.option(
    "--realtime/--fast",
    default=None,
    help="Wall clock, or as fast as possible [realtime with --interface, fast without].",
)
@click.option("--record", type=click.Path(path_type=Path, dir_okay=False), help="Frames → .parquet")
@click.option("--inject", multiple=True, metavar="FAULT", help="Inject a fault (repeatable).")
@click.option(
    "--cycle-jitter",
    multiple=True,
    metavar="ECU=MS",
    help="Cyclic frames of ECU (BMS, MCU) within ± MS of their slot, seeded (repeatable).",
)
@click.option(
    "--startup-delay", multiple=True, metavar="ECU=MS", help="ECU's first frames MS later."
)
@click.option(
    "--kernel-cyclic/--no-kernel-cyclic",
    default=True,
    show_default=True,
    help="On SocketCAN, cyclic messages as kernel (BCM) cyclic send tasks.",
)
@click.option(
    "--dbc",
    "dbc_paths",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="DBC file (repeatable) [the project's three].",
)
def main(**options: object) -> None:
    """A virtual EV (BMS + MCU) on a CAN bus."""
    try:
        summary = run(**options)  # type: ignore[arg-type]
    except BenchError as exc:
        click.echo(f"virtual_bus: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"virtual_bus: {summary}", err=True)


def _entry() -> None:
    try:
        main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(EXIT_ABORTED)
    except click.UsageError as exc:
        click.echo(f"virtual_bus: error: {one_line(exc.format_message())}", err=True)
        sys.exit(EXIT_INPUT)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    _entry()
