"""Line-based SCPI-style transport over pyserial: one command per line, timeouts, retries.

Protocol (what the drivers send and :mod:`bench.instruments.simulator` serves). Commands are ASCII
lines ending in ``\\n``; answers end in ``\\n`` (``\\r\\n`` accepted). A *set* command gets no
answer (as in SCPI): the driver follows it with ``SYST:ERR?`` so that every set is confirmed and a
rejected value or a dead port shows up at once, not minutes later in a verdict.

==============  ========  =====================================  =====================
command         for       meaning                                answer
==============  ========  =====================================  =====================
``*IDN?``       both      identify                               ``maker,model,sn,fw``
``SYST:ERR?``   both      pop the oldest error (FIFO)            ``0,"No error"``
``TEMP:SET c``  chamber   set point in °C (−70 … 180)            —
``TEMP:SET?``   chamber   set point in °C                        ``-30.00``
``TEMP?``       chamber   actual (air) temperature in °C         ``-12.37``
``RUN 1|0``     chamber   start / stop conditioning              —
``RUN?``        chamber   running?                               ``1`` or ``0``
``VOLT v``      supply    voltage set point in V (0 … 1000)      —
``VOLT?``       supply    voltage set point in V                 ``400.000``
``CURR a``      supply    current limit in A (0 … 500)           —
``CURR?``       supply    current limit in A                     ``10.000``
``MEAS:VOLT?``  supply    measured output voltage in V           ``399.981``
``MEAS:CURR?``  supply    measured output current in A           ``4.002``
``OUTP 1|0``    supply    output on / off                        —
``OUTP?``       supply    output on?                             ``1`` or ``0``
==============  ========  =====================================  =====================

Error numbers follow SCPI: ``-113`` undefined header, ``-222`` data out of range, ``-224`` illegal
parameter value, ``-104`` data type error. An unknown or malformed *query* gets no answer (SCPI
again) and an entry in the error queue; the driver then reports it as unanswered.

Failure semantics: a query without an answer within ``timeout_s`` is sent again, ``retries`` more
times, then :class:`~bench.errors.HarnessError` ``"chamber on /dev/pts/5: no answer to 'TEMP?'
after 3 tries"``. A port that disappears (adapter unplugged, simulator gone) raises
:class:`~bench.errors.HarnessError` at the next command, one line, never a traceback. All commands
are idempotent, which is what makes resending safe.
"""

from __future__ import annotations

import contextlib
import math
import os
import termios
import threading
from types import TracebackType
from typing import Self

import serial

from ..errors import HarnessError, one_line

ENCODING = "ascii"
TERMINATOR = b"\n"
NO_ERROR_CODE = 0

# What pyserial and the OS raise when the device node or the other end goes away.
_PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class ScpiTransport:
    """One serial port speaking the line protocol above; thread-safe (one exchange at a time).

    ``label`` names the instrument in errors ("chamber", "power supply"), so a person reading
    one line knows which cable to check.
    """

    def __init__(
        self,
        port: str,
        *,
        label: str,
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        retries: int = 2,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.port = port
        self.label = label
        self.timeout_s = timeout_s
        self.retries = retries
        self._lock = threading.Lock()
        self._serial: serial.Serial | None = None
        try:
            # exclusive: two processes talking to one instrument interleave lines; refuse instead.
            self._serial = serial.Serial(
                port,
                baudrate=baudrate,
                timeout=timeout_s,
                write_timeout=timeout_s,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise HarnessError(f"{self.where}: cannot open port: {_open_reason(exc)}") from None

    @property
    def where(self) -> str:
        return f"{self.label} on {self.port}"

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    # -- exchanges ---------------------------------------------------------------------------

    def query(self, command: str) -> str:
        """Send a query and return its answer line (stripped); retried on silence."""
        with self._lock:
            return self._query_locked(command)

    def command(self, command: str) -> None:
        """Send a set command and confirm it through ``SYST:ERR?``; a rejection is an error.

        The pair is resent as a whole when the confirmation does not come: set commands are
        idempotent, and a lost line is the usual cause of silence on a serial link.
        """
        with self._lock:
            tries = self.retries + 1
            for _ in range(tries):
                self._send(command)
                answer = self._exchange("SYST:ERR?")
                if answer is None:
                    continue
                code, message = parse_error(answer, self.where)
                if code != NO_ERROR_CODE:
                    raise HarnessError(f"{self.where}: {command!r} rejected: {code},{message!r}")
                return
            raise HarnessError(
                f"{self.where}: no answer to 'SYST:ERR?' confirming {command!r} after {tries} tries"
            )

    def close(self) -> None:
        if self._serial is not None:
            # Closing a vanished port: nothing left to release, nothing to report.
            with contextlib.suppress(*_PORT_ERRORS):
                self._serial.close()
            self._serial = None

    def __enter__(self) -> ScpiTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _query_locked(self, command: str) -> str:
        tries = self.retries + 1
        for _ in range(tries):
            answer = self._exchange(command)
            if answer is not None:
                return answer
        raise HarnessError(f"{self.where}: no answer to {command!r} after {tries} tries")

    def _exchange(self, command: str) -> str | None:
        """One try: drop stale input, send, read one line. None when nothing came in time."""
        port = self._port()
        try:
            # A late answer to an earlier, timed-out try must not be taken for this one.
            port.reset_input_buffer()
            self._write(port, command)
            raw = port.readline()
        except _PORT_ERRORS as exc:
            raise self._gone(exc) from None
        if not raw.endswith(TERMINATOR):
            return None  # silence, or half a line when the timeout struck: both are no answer
        try:
            return raw.decode(ENCODING).strip()
        except UnicodeDecodeError:
            return None  # line noise (wrong baud rate): treat as no answer, retry

    def _send(self, command: str) -> None:
        port = self._port()
        try:
            port.reset_input_buffer()
            self._write(port, command)
        except _PORT_ERRORS as exc:
            raise self._gone(exc) from None

    @staticmethod
    def _write(port: serial.Serial, command: str) -> None:
        port.write(command.encode(ENCODING) + TERMINATOR)
        port.flush()

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise HarnessError(f"{self.where}: port is closed")
        return self._serial

    def _gone(self, exc: BaseException) -> HarnessError:
        return HarnessError(f"{self.where}: port disappeared or failed: {_reason(exc)}")


def parse_error(answer: str, where: str) -> tuple[int, str]:
    """``-222,"Data out of range"`` → ``(-222, "Data out of range")``."""
    code_text, _, message = answer.partition(",")
    try:
        code = int(code_text.strip())
    except ValueError:
        raise HarnessError(f"{where}: unexpected answer to 'SYST:ERR?': {answer!r}") from None
    return code, message.strip().strip('"')


def _open_reason(exc: BaseException) -> str:
    # pyserial repeats the port name and nests the OS error; the errno alone says it best.
    if "exclusively lock" in str(exc):
        return "in use by another program (it holds the port's exclusive lock)"
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and number > 0:
        return os.strerror(number)
    return _reason(exc)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, termios.error) and len(exc.args) == 2:
        return one_line(exc.args[1])
    return one_line(exc) or type(exc).__name__


class ScpiInstrument:
    """What every driver shares: the transport, ``*IDN?``, number/flag parsing, context manager."""

    label = "instrument"

    def __init__(
        self, port: str, baudrate: int = 9600, timeout_s: float = 1.0, retries: int = 2
    ) -> None:
        self.transport = ScpiTransport(
            port, label=self.label, baudrate=baudrate, timeout_s=timeout_s, retries=retries
        )

    @property
    def port(self) -> str:
        return self.transport.port

    def identify(self) -> str:
        """The ``*IDN?`` line: maker, model, serial number, firmware."""
        return self.transport.query("*IDN?")

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.port!r})"

    def _set(self, header: str, value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"{self.label}: {header} needs a finite number, not {value!r}")
        # repr-free fixed notation: SCPI parsers on instruments rarely accept "1e-05".
        self.transport.command(f"{header} {format_number(value)}")

    def _set_flag(self, header: str, on: bool) -> None:
        self.transport.command(f"{header} {1 if on else 0}")

    def _number(self, query: str) -> float:
        answer = self.transport.query(query)
        try:
            value = float(answer)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise self._unexpected(query, answer)
        return value

    def _flag(self, query: str) -> bool:
        answer = self.transport.query(query)
        if answer in ("1", "ON"):
            return True
        if answer in ("0", "OFF"):
            return False
        raise self._unexpected(query, answer)

    def _unexpected(self, query: str, answer: str) -> HarnessError:
        return HarnessError(f"{self.transport.where}: unexpected answer to {query!r}: {answer!r}")


def format_number(value: float) -> str:
    """Fixed-point text with no exponent and no trailing zeros: 400 → "400", -0.5 → "-0.5"."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
