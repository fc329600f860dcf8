"""Simulated instruments on a pseudo-terminal: the real pyserial path, no hardware.

Each simulator opens a pty, serves the protocol of :mod:`bench.instruments.scpi` on the master
side from a thread, and publishes the slave side (``/dev/pts/N``) as :attr:`SimulatedDevice.port`:
drivers open that path exactly like ``/dev/ttyUSB0``.

From tests::

    with SimulatedChamber(clock=fake_clock) as sim:
        chamber = Chamber(sim.port)

From a shell, for a bench without hardware (Ctrl-C stops it)::

    python -m bench.instruments.simulator chamber --link /tmp/chamber
    python -m bench.instruments.simulator psu --link /tmp/psu
    python -m bench.instruments.simulator slcan --link /tmp/slcan \
        --interface socketcan --channel vcan0     # a USB-serial CAN adapter on vcan0

The chamber approaches its set point at a finite ramp rate (``ramp_c_per_min``) while running and
drifts back to ambient at the same rate when stopped. Its time comes from ``clock`` (DESIGN.md:
time is a parameter), so a test moves a fake clock instead of waiting.

Test hooks: :meth:`SimulatedDevice.silence` (stay silent for the next N queries),
:meth:`SimulatedDevice.close` (the port disappears), :attr:`SimulatedDevice.received` (every line
the host sent, in order).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import select
import signal
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import can
from can.util import CAN_FD_DLC, len2dlc

Clock = Callable[[], float]

NO_ERROR = (0, "No error")
UNDEFINED_HEADER = (-113, "Undefined header")
DATA_TYPE_ERROR = (-104, "Data type error")
OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_VALUE = (-224, "Illegal parameter value")
MISSING_PARAMETER = (-109, "Missing parameter")


class SimulatedDevice:
    """A device behind a pty: a thread reads lines from the master and answers them.

    Subclasses implement :meth:`answer` (a line in, an answer or None out) and set
    :attr:`terminators` (the bytes that end a line) and :attr:`reply_end`.
    """

    terminators: bytes = b"\n"
    reply_end: str = "\n"
    kind = "device"

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        # Raw mode for whoever opens the slave next (settings belong to the pty, not the fd):
        # a client that does not configure the port (cat, screen) sees no echo or CR mangling.
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.received: list[str] = []
        self._silent = 0
        self._state_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"sim-{self.kind}", daemon=True)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close both pty ends: for a connected client the port disappears."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join()
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Self:
        if not self._thread.is_alive():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- test hooks --------------------------------------------------------------------------

    def silence(self, queries: int = 1) -> None:
        """Leave the next ``queries`` queries unanswered (a lost line, a busy instrument)."""
        with self._state_lock:
            self._silent += queries

    def count(self, line: str) -> int:
        """How many times the host sent exactly ``line``."""
        return self.received.count(line)

    def send_line(self, text: str) -> None:
        """Write one unsolicited line to the host."""
        os.write(self._master, (text + self.reply_end).encode("ascii"))

    # -- protocol ----------------------------------------------------------------------------

    def answer(self, line: str) -> str | None:
        raise NotImplementedError

    def is_query(self, line: str) -> bool:
        return line.endswith("?")

    # -- serving -----------------------------------------------------------------------------

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                chunk = os.read(self._master, 4096)
            except OSError:
                return  # the pty is gone
            buffer += chunk
            lines, buffer = _split(buffer, self.terminators)
            for raw in lines:
                self._handle(raw.decode("ascii", errors="replace"))

    def _handle(self, raw: str) -> None:
        line = raw.strip(" \t")
        self.received.append(line)
        with self._state_lock:
            reply = self.answer(line)
            if self.is_query(line) and self._silent > 0:
                self._silent -= 1
                return
        if reply is not None:
            try:
                os.write(self._master, (reply + self.reply_end).encode("ascii"))
            except OSError:
                return


def _split(buffer: bytes, terminators: bytes) -> tuple[list[bytes], bytes]:
    """Cut complete lines (ended by any byte of ``terminators``) off the front of ``buffer``."""
    lines: list[bytes] = []
    start = 0
    for index, byte in enumerate(buffer):
        if byte in terminators:
            lines.append(buffer[start:index])
            start = index + 1
    return lines, buffer[start:]


class SimulatedScpiInstrument(SimulatedDevice):
    """Common SCPI parts: ``*IDN?``, the error queue, set/query dispatch."""

    terminators = b"\r\n"
    idn = "BENCH-SIM,INSTRUMENT,0,1.0"

    def __init__(self) -> None:
        super().__init__()
        self.errors: deque[tuple[int, str]] = deque(maxlen=16)

    def answer(self, line: str) -> str | None:
        if not line:
            return None  # the \n of a \r\n pair
        header, _, argument = line.partition(" ")
        header = header.upper()
        argument = argument.strip()
        if header == "*IDN?":
            return self.idn
        if header == "SYST:ERR?":
            code, message = self.errors.popleft() if self.errors else NO_ERROR
            return f'{code},"{message}"'
        if header.endswith("?"):
            value = self.query(header)
            if value is None:
                self.errors.append(UNDEFINED_HEADER)
            return value
        result = self.set(header, argument or None)
        if result is None:
            self.errors.append(UNDEFINED_HEADER)
        elif result is not True:
            self.errors.append(result if argument else MISSING_PARAMETER)
        return None

    def query(self, header: str) -> str | None:
        """Answer a query header, or None for an unknown one."""
        raise NotImplementedError

    def set(self, header: str, argument: str | None) -> tuple[int, str] | bool | None:
        """Apply a set command: True when done, an error tuple, or None for an unknown header."""
        raise NotImplementedError


def _number(argument: str | None, low: float, high: float) -> float | tuple[int, str]:
    try:
        value = float(argument or "")
    except ValueError:
        return DATA_TYPE_ERROR
    if not low <= value <= high or value != value:
        return OUT_OF_RANGE
    return value


def _flag(argument: str | None) -> bool | tuple[int, str]:
    text = (argument or "").upper()
    if text in ("1", "ON"):
        return True
    if text in ("0", "OFF"):
        return False
    return ILLEGAL_VALUE


class SimulatedChamber(SimulatedScpiInstrument):
    """A climate chamber: ramps towards its set point at ``ramp_c_per_min`` while running."""

    kind = "chamber"
    idn = "BENCH-SIM,CHAMBER-1,SIM0001,1.0"
    min_c = -70.0
    max_c = 180.0

    def __init__(
        self,
        *,
        ambient_c: float = 20.0,
        ramp_c_per_min: float = 2.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        if ramp_c_per_min <= 0:
            raise ValueError("ramp_c_per_min must be positive")
        self.ambient_c = ambient_c
        self.ramp_c_per_min = ramp_c_per_min
        self.clock = clock
        self.setpoint_c = ambient_c
        self.temperature_c = ambient_c
        self.running = False
        self._last = clock()

    def advance(self) -> None:
        """Bring the air temperature up to the clock's now: a straight ramp, no overshoot."""
        now = self.clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        target = self.setpoint_c if self.running else self.ambient_c
        step = self.ramp_c_per_min * elapsed / 60.0
        gap = target - self.temperature_c
        self.temperature_c = target if abs(gap) <= step else self.temperature_c + step * _sign(gap)

    def query(self, header: str) -> str | None:
        self.advance()
        if header == "TEMP?":
            return f"{self.temperature_c:.2f}"
        if header == "TEMP:SET?":
            return f"{self.setpoint_c:.2f}"
        if header == "RUN?":
            return "1" if self.running else "0"
        return None

    def set(self, header: str, argument: str | None) -> tuple[int, str] | bool | None:
        self.advance()  # the old target applies up to now
        if header == "TEMP:SET":
            value = _number(argument, self.min_c, self.max_c)
            if isinstance(value, tuple):
                return value
            self.setpoint_c = value
            return True
        if header == "RUN":
            flag = _flag(argument)
            if isinstance(flag, tuple):
                return flag
            self.running = flag
            return True
        return None


class SimulatedPowerSupply(SimulatedScpiInstrument):
    """A DC supply with a current limit, feeding a resistive load of ``load_ohm``."""

    kind = "psu"
    idn = "BENCH-SIM,PSU-1000-500,SIM0002,1.0"
    max_voltage = 1000.0
    max_current = 500.0

    def __init__(self, *, load_ohm: float = 100.0) -> None:
        super().__init__()
        if load_ohm <= 0:
            raise ValueError("load_ohm must be positive")
        self.load_ohm = load_ohm
        self.voltage_set = 0.0
        self.current_limit = 1.0
        self.output_on = False

    def measured(self) -> tuple[float, float]:
        """(V, A) at the output: constant voltage until the load wants more than the limit."""
        if not self.output_on:
            return 0.0, 0.0
        wanted = self.voltage_set / self.load_ohm
        if wanted <= self.current_limit:
            return self.voltage_set, wanted
        return self.current_limit * self.load_ohm, self.current_limit

    def query(self, header: str) -> str | None:
        volts, amps = self.measured()
        answers = {
            "VOLT?": self.voltage_set,
            "CURR?": self.current_limit,
            "MEAS:VOLT?": volts,
            "MEAS:CURR?": amps,
        }
        if header in answers:
            return f"{answers[header]:.3f}"
        if header == "OUTP?":
            return "1" if self.output_on else "0"
        return None

    def set(self, header: str, argument: str | None) -> tuple[int, str] | bool | None:
        if header in ("VOLT", "CURR"):
            high = self.max_voltage if header == "VOLT" else self.max_current
            value = _number(argument, 0.0, high)
            if isinstance(value, tuple):
                return value
            if header == "VOLT":
                self.voltage_set = value
            else:
                self.current_limit = value
            return True
        if header == "OUTP":
            flag = _flag(argument)
            if isinstance(flag, tuple):
                return flag
            self.output_on = flag
            return True
        return None


class SimulatedSlcanAdapter(SimulatedDevice):
    """A LAWICEL/slcan USB-serial CAN adapter, as python-can's ``slcan`` interface drives it.

    Answers the set-up commands (``C``, ``S0``…``S8``, ``Y2``/``Y5``, ``O``, ``L``, ``V``, ``N``,
    and the empty command python-can sends for "no data bitrate") with ``\\r``; unknown ones with
    ``\\a``. Frames the host sends (``t``/``T``/``r``/``R``/``d``/``D``/``b``/``B``) are
    acknowledged (``z``/``Z``, as CANable firmware does) and put on :attr:`transmitted`, or sent
    on to ``bus`` when one is given; :meth:`inject` and frames from ``bus`` go to the host.
    """

    terminators = b"\r"
    reply_end = "\r"
    kind = "slcan"
    OK = ""
    ERROR = "\a"

    def __init__(self, bus: can.BusABC | None = None) -> None:
        super().__init__()
        # Bounded: a long simulator run with nobody reading must not grow without end.
        self.transmitted: queue.Queue[can.Message] = queue.Queue(maxsize=100_000)
        self.is_open = False
        self.bitrate_command: str | None = None
        self.bus = bus
        self._bridge = threading.Thread(target=self._forward_from_bus, daemon=True)

    def start(self) -> Self:
        super().start()
        if self.bus is not None:
            self._bridge.start()
        return self

    def close(self) -> None:
        super().close()  # sets the stop event the bridge watches
        if self._bridge.is_alive():
            self._bridge.join()

    def _forward_from_bus(self) -> None:
        """Frames on the bridged bus go to the host while the channel is open (as on hardware)."""
        assert self.bus is not None
        while not self._stop.is_set():
            message = self.bus.recv(timeout=0.1)
            if message is None or not self.is_open:
                continue
            try:
                self.inject(message)
            except OSError:
                return  # the pty is gone

    def is_query(self, line: str) -> bool:
        return line[:1] in ("V", "N")

    def answer(self, line: str) -> str | None:
        head = line[:1]
        if head in ("O", "L") and len(line) == 1:
            self.is_open = True
            return self.OK
        if line == "C":
            self.is_open = False
            return self.OK
        if head in ("S", "Y", "s") or line == "":
            if self.is_open and line:
                return self.ERROR  # LAWICEL: bit timing only while the channel is closed
            self.bitrate_command = line or self.bitrate_command
            return self.OK
        if line == "V":
            return "V1013"
        if line == "N":
            return "NSIM1"
        if head in "tTrRdDbB" and head:
            return self._transmit(line)
        return self.ERROR

    def _transmit(self, line: str) -> str:
        if not self.is_open:
            return self.ERROR
        try:
            message = parse_slcan_frame(line)
        except ValueError:
            return self.ERROR
        if self.bus is not None:
            self.bus.send(message)
        else:
            with contextlib.suppress(queue.Full):
                self.transmitted.put_nowait(message)
        return "Z" if message.is_extended_id else "z"

    def inject(self, message: can.Message) -> None:
        """Deliver a frame to the host, as if the adapter had received it from the bus."""
        self.send_line(format_slcan_frame(message))


def parse_slcan_frame(line: str) -> can.Message:
    """One slcan frame line (without ``\\r``) → :class:`can.Message`; ValueError when malformed."""
    head = line[0]
    extended = head in "TRDB"
    id_len = 8 if extended else 3
    arbitration_id = int(line[1 : 1 + id_len], 16)
    dlc_code = int(line[1 + id_len], 16)
    fd = head in "dDbB"
    length = CAN_FD_DLC[dlc_code] if fd else dlc_code
    if not fd and length > 8:
        raise ValueError("classic frame longer than 8 bytes")
    remote = head in "rR"
    payload = b"" if remote else bytes.fromhex(line[2 + id_len : 2 + id_len + 2 * length])
    if not remote and len(payload) != length:
        raise ValueError("payload shorter than its DLC")
    return can.Message(
        arbitration_id=arbitration_id,
        is_extended_id=extended,
        is_remote_frame=remote,
        is_fd=fd,
        bitrate_switch=head in "bB",
        dlc=length,
        data=payload,
    )


def format_slcan_frame(message: can.Message) -> str:
    """:class:`can.Message` → one slcan frame line (without ``\\r``)."""
    ident = (
        f"{message.arbitration_id:08X}"
        if message.is_extended_id
        else (f"{message.arbitration_id:03X}")
    )
    if message.is_remote_frame:
        return ("R" if message.is_extended_id else "r") + ident + f"{message.dlc:d}"
    if message.is_fd:
        head = "b" if message.bitrate_switch else "d"
        head = head.upper() if message.is_extended_id else head
        return head + ident + f"{len2dlc(len(message.data)):X}" + bytes(message.data).hex().upper()
    head = "T" if message.is_extended_id else "t"
    return head + ident + f"{len(message.data):d}" + bytes(message.data).hex().upper()


def _sign(value: float) -> float:
    return 1.0 if value > 0 else -1.0


# -- command line ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instruments.simulator",
        description="Serve a simulated instrument on a pseudo-terminal until Ctrl-C.",
    )
    parser.add_argument("kind", choices=["chamber", "psu", "slcan"])
    parser.add_argument("--link", type=Path, help="also reach the port through this symlink")
    parser.add_argument("--ambient", type=float, default=20.0, help="chamber: ambient °C")
    parser.add_argument("--ramp", type=float, default=2.0, help="chamber: ramp rate in °C/min")
    parser.add_argument("--load-ohm", type=float, default=100.0, help="psu: load resistance")
    parser.add_argument("--interface", help="slcan: python-can interface of the bus to bridge")
    parser.add_argument("--channel", help="slcan: channel of that bus (e.g. vcan0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    bus: can.BusABC | None = None
    if args.kind == "chamber":
        device: SimulatedDevice = SimulatedChamber(ambient_c=args.ambient, ramp_c_per_min=args.ramp)
    elif args.kind == "psu":
        device = SimulatedPowerSupply(load_ohm=args.load_ohm)
    else:
        if args.interface:
            bus = can.Bus(interface=args.interface, channel=args.channel)
        device = SimulatedSlcanAdapter(bus)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with device:
        if args.link:
            with contextlib.suppress(FileNotFoundError):
                args.link.unlink()
            args.link.symlink_to(device.port)
        where = f"{device.port}" + (f" (also {args.link})" if args.link else "")
        print(f"simulated {args.kind} on {where}; Ctrl-C stops it", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            if args.link:
                with contextlib.suppress(FileNotFoundError):
                    args.link.unlink()
    if bus is not None:
        bus.shutdown()  # after the adapter's bridge thread has stopped reading from it
    return 0


if __name__ == "__main__":
    sys.exit(main())
