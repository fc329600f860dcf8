"""Open python-can buses from plan, bench-profile and command-line settings.

python-can does the work (one ``can.Bus`` per backend); this module only merges settings in the
order *command line > bench profile > plan > defaults* and turns the many ways an adapter can fail
to open into one line a bench engineer can act on.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import select
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import can

from .errors import HarnessError, InputError, one_line

LOCKSTEP_INTERFACES = frozenset({"virtual"})

# Receive buffer asked for on SocketCAN sockets. A real kernel drops frames once an unread socket's
# buffer is full; each classic frame costs about 770 bytes of it (skb overhead), so the default
# 208 KiB holds only ~280 frames: 0.03 s of a full 1 Mbit/s bus. 16 MiB holds ~22,000 frames,
# about 2.5 s of a full 1 Mbit/s bus, longer than any pause of the runner (a Parquet segment
# write, a chamber query, a garbage collection).
SOCKETCAN_RCVBUF_BYTES = 16 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

# Error-frame classes of linux/can/error.h (in the CAN id of an error frame).
CAN_ERR_TX_TIMEOUT = 0x001
CAN_ERR_LOSTARB = 0x002
CAN_ERR_CRTL = 0x004
CAN_ERR_PROT = 0x008
CAN_ERR_TRX = 0x010
CAN_ERR_ACK = 0x020
CAN_ERR_BUSOFF = 0x040
CAN_ERR_BUSERROR = 0x080
CAN_ERR_RESTARTED = 0x100
ERROR_CLASSES = {
    CAN_ERR_TX_TIMEOUT: "tx timeout",
    CAN_ERR_LOSTARB: "lost arbitration",
    CAN_ERR_CRTL: "controller problem",
    CAN_ERR_PROT: "protocol violation",
    CAN_ERR_TRX: "transceiver status",
    CAN_ERR_ACK: "no ACK",
    CAN_ERR_BUSOFF: "bus-off",
    CAN_ERR_BUSERROR: "bus error",
    CAN_ERR_RESTARTED: "controller restarted",
}


@dataclass(frozen=True)
class BusSettings:
    """Where to find the bus: python-can interface, channel and bit rates."""

    interface: str = "virtual"
    channel: str = "bench0"
    bitrate: int | None = 500_000
    fd: bool = False
    data_bitrate: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Passed on to ``can.Bus`` as they are (a bench profile's ``options``)."""

    @classmethod
    def of_profile(cls, bus: Any) -> BusSettings:
        """The settings of one bus of a bench profile (a :class:`bench.profile.BusProfile`)."""
        return cls(
            interface=bus.interface,
            channel=bus.channel,
            bitrate=bus.bitrate,
            fd=bus.fd,
            data_bitrate=bus.data_bitrate,
            options=dict(bus.options),
        )

    def merged(self, **overrides: Any) -> BusSettings:
        """A copy with every override that is not None applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def is_virtual(self) -> bool:
        return self.interface in LOCKSTEP_INTERFACES

    def describe(self) -> str:
        rate = f" @ {self.bitrate // 1000} kbit/s" if self.bitrate else ""
        fd = (
            f", FD data {self.data_bitrate // 1000} kbit/s" if self.fd and self.data_bitrate else ""
        )
        return f"{self.interface}:{self.channel}{rate}{fd}"


def kernel_has_socketcan() -> bool:
    """True when this kernel can open an AF_CAN raw socket."""
    if not hasattr(socket, "AF_CAN"):
        return False
    try:
        sock = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    except OSError:
        return False
    sock.close()
    return True


def open_bus(
    settings: BusSettings, *, preserve_timestamps: bool = False, **extra: Any
) -> can.BusABC:
    """Open a python-can bus; failures become a HarnessError with one clear line.

    ``preserve_timestamps`` (virtual bus only) keeps the simulated time a sender stamped on a
    frame, which lockstep runs depend on.
    """
    if settings.interface not in can.interfaces.VALID_INTERFACES:
        known = ", ".join(sorted(can.interfaces.VALID_INTERFACES))
        raise InputError(
            f"unknown CAN interface {settings.interface!r} (python-can knows: {known})"
        )
    kwargs: dict[str, Any] = {
        "interface": settings.interface,
        "channel": settings.channel,
        **settings.options,
        **extra,
    }
    if settings.interface == "virtual":
        kwargs["preserve_timestamps"] = preserve_timestamps
        if settings.fd:
            kwargs["protocol"] = can.CanProtocol.CAN_FD
    else:
        if settings.bitrate and settings.interface not in ("socketcan", "udp_multicast"):
            kwargs["bitrate"] = settings.bitrate
        if settings.fd:
            kwargs["fd"] = True
            if settings.data_bitrate and settings.interface not in ("socketcan", "udp_multicast"):
                kwargs["data_bitrate"] = settings.data_bitrate
    if settings.interface == "socketcan":
        # Receive CAN FD frames whatever the plan says: a classic plan on a bus that also
        # carries FD frames (BMS_ModuleData) must still record every frame. Sending FD on a
        # classic-MTU interface fails loudly, as it should.
        kwargs["fd"] = True
    if settings.interface == "socketcan" and not kernel_has_socketcan():
        raise HarnessError(
            f"cannot open {settings.describe()}: this kernel lacks SocketCAN (AF_CAN); "
            "use a Linux kernel with the can and vcan modules, or --interface virtual"
        )
    try:
        bus = can.Bus(**kwargs)
    except can.CanInterfaceNotImplementedError as exc:
        raise HarnessError(f"cannot open {settings.describe()}: {exc}") from None
    except (can.CanError, OSError, ValueError, ImportError) as exc:
        reason = _reason(exc)
        raise HarnessError(f"cannot open {settings.describe()}: {reason}") from None
    if settings.interface == "socketcan":
        size_receive_buffer(bus)
    return bus


def size_receive_buffer(bus: can.BusABC, size: int = SOCKETCAN_RCVBUF_BYTES) -> int:
    """Enlarge a SocketCAN bus's receive buffer; returns the size the kernel granted (bytes).

    SO_RCVBUFFORCE (root or CAP_NET_ADMIN) passes the ``net.core.rmem_max`` cap; without the
    capability SO_RCVBUF gets at most that cap — ``sysctl -w net.core.rmem_max=33554432`` lifts
    it on a bench that runs unprivileged. The kernel reports twice the size it was asked for
    (it counts its bookkeeping); the figure returned is what the socket really holds.
    """
    sock = getattr(bus, "socket", None)
    if sock is None:
        return 0
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENODEV:
        return "no such network interface (is it up? see scripts/vcan-up.sh)"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def error_classes(frame: can.Message) -> list[str]:
    """The error classes an error frame reports (linux/can/error.h), e.g. ``["bus-off"]``."""
    return [name for bit, name in ERROR_CLASSES.items() if frame.arbitration_id & bit]


def is_bus_off(frame: can.Message) -> bool:
    return bool(frame.is_error_frame and frame.arbitration_id & CAN_ERR_BUSOFF)


class BusFault(HarnessError):
    """One bus of the run failed (send or receive error, bus-off, adapter gone).

    ``sent`` holds the frames of the failing call that did reach other buses, so the runner can
    still record them.
    """

    def __init__(self, bus_name: str, message: str, sent: Sequence[can.Message] = ()) -> None:
        super().__init__(message)
        self.bus_name = bus_name
        self.sent = list(sent)


# What python-can and the OS raise when an adapter fails mid-run: CanOperationError (socketcan
# ENETDOWN, slcan's serial port gone), OSError, and ValueError/TypeError from a closed pyserial.
_BUS_ERRORS = (can.CanError, OSError, ValueError, TypeError, AttributeError)


@dataclass
class NamedBus:
    """One open bus of a run: its name (the profile's table key), settings and state."""

    name: str
    settings: BusSettings
    bus: Any  # can.BusABC, or anything with send/recv/shutdown (the lockstep vehicle's side)
    label: str | None = None  # written as the frame's channel; None keeps python-can's
    failed: str | None = None
    head: can.Message | None = None

    @property
    def where(self) -> str:
        return f"CAN bus {self.name!r} ({self.settings.describe()})"

    @property
    def uses_bcm(self) -> bool:
        """True where the kernel's broadcast manager can send periodic frames for us."""
        return self.settings.interface == "socketcan"


Route = tuple[int, bool]  # (arbitration id, extended)


class BusGroup:
    """The buses of one run, used like one bus: a frame goes to the buses that carry it.

    Without a bench profile there is one bus and every frame goes to it. With a profile each
    message goes to the buses whose DBCs define it (``routes``); a message on none goes to the
    buses that name no DBC (``default``). Receiving merges all buses in timestamp order of the
    frames at hand. A bus that fails is marked and skipped from then on, so the safe state still
    reaches the others.
    """

    def __init__(
        self,
        buses: Sequence[NamedBus],
        routes: dict[Route, tuple[str, ...]] | None = None,
        default: Iterable[str] | None = None,
    ) -> None:
        if not buses:
            raise ValueError("a bus group needs at least one bus")
        self.buses = list(buses)
        self._by_name = {bus.name: bus for bus in self.buses}
        self._routes = {
            key: [self._by_name[name] for name in names] for key, names in (routes or {}).items()
        }
        names = [bus.name for bus in self.buses] if default is None else list(default)
        self._default = [self._by_name[name] for name in names]
        self._single = self.buses[0] if len(self.buses) == 1 else None

    def __len__(self) -> int:
        return len(self.buses)

    def targets(self, frame: can.Message) -> list[NamedBus]:
        return self._routes.get((frame.arbitration_id, frame.is_extended_id), self._default)

    @property
    def failures(self) -> dict[str, str]:
        return {bus.name: bus.failed for bus in self.buses if bus.failed}

    @property
    def alive(self) -> list[NamedBus]:
        return [bus for bus in self.buses if not bus.failed]

    def fail(self, bus: NamedBus, reason: str) -> BusFault:
        """Mark ``bus`` failed; returns the error to raise."""
        if not bus.failed:
            bus.failed = reason
            with contextlib.suppress(Exception):
                bus.bus.stop_all_periodic_tasks()
        return BusFault(bus.name, f"{bus.where}: {reason}")

    # -- sending --------------------------------------------------------------------------------

    def send(self, frame: can.Message) -> list[can.Message]:
        """Send on every bus that carries the frame; returns the frames as sent (one per bus)."""
        single = self._single
        if single is not None and single.label is None and not single.failed:
            try:
                single.bus.send(frame)
            except _BUS_ERRORS as exc:
                raise self.fail(single, f"send failed: {_describe(exc)}") from None
            return [frame]
        sent: list[can.Message] = []
        fault: BusFault | None = None
        for bus in self.targets(frame):
            if bus.failed:
                fault = fault or BusFault(bus.name, f"{bus.where} is down: {bus.failed}")
                continue
            out = copy.copy(frame)
            if bus.label is not None:
                out.channel = bus.label
            try:
                bus.bus.send(out)
            except _BUS_ERRORS as exc:
                fault = fault or self.fail(bus, f"send failed: {_describe(exc)}")
                continue
            sent.append(out)
        if fault is not None:
            fault.sent = sent
            raise fault
        return sent

    # -- receiving ------------------------------------------------------------------------------

    def recv(self, timeout: float | None = 0.0) -> can.Message | None:
        """The next frame of any bus (the earliest of those at hand), or None after ``timeout``."""
        single = self._single
        if single is not None:
            if single.failed:
                _sleep(timeout)
                return None
            return self._recv_one(single, timeout)
        deadline = time.monotonic() + (timeout or 0.0)
        while True:
            alive = self.alive
            for bus in alive:
                if bus.head is None:
                    bus.head = self._recv_one(bus, 0.0)
            ready = [bus for bus in alive if bus.head is not None]
            if ready:
                first = min(ready, key=lambda bus: bus.head.timestamp)  # type: ignore[union-attr]
                frame, first.head = first.head, None
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            _wait_readable([bus.bus for bus in alive], remaining)

    def _recv_one(self, bus: NamedBus, timeout: float | None) -> can.Message | None:
        try:
            frame = bus.bus.recv(timeout=timeout)
        except _BUS_ERRORS as exc:
            raise self.fail(bus, f"receive failed: {_describe(exc)}") from None
        if frame is not None and bus.label is not None:
            frame.channel = bus.label
        return frame

    def bus_of(self, frame: can.Message) -> NamedBus | None:
        """The bus a received frame came from (by its channel label), when labelled."""
        for bus in self.buses:
            if bus.label is not None and bus.label == frame.channel:
                return bus
        return self._single

    # -- periodic sending in the kernel ---------------------------------------------------------

    def can_send_periodic(self, route: Route) -> bool:
        targets = self._routes.get(route, self._default)
        return bool(targets) and all(bus.uses_bcm and not bus.failed for bus in targets)

    def send_periodic(self, frames: Sequence[can.Message], period: float) -> list[Any]:
        """Have the kernel (BCM) cycle through ``frames`` every ``period`` on each target bus."""
        tasks = []
        for bus in self.targets(frames[0]):
            try:
                tasks.append(bus.bus.send_periodic(list(frames), period, store_task=True))
            except _BUS_ERRORS as exc:
                for task in tasks:
                    with contextlib.suppress(Exception):
                        task.stop()
                raise self.fail(bus, f"periodic send failed: {_describe(exc)}") from None
        return tasks

    def shutdown(self) -> None:
        for bus in self.buses:
            with contextlib.suppress(Exception):
                bus.bus.stop_all_periodic_tasks()
            with contextlib.suppress(Exception):
                bus.bus.shutdown()


_ERRNO_MEANING = {
    errno.ENETDOWN: "network is down (interface set down, or the controller went bus-off)",
    errno.ENODEV: "no such device (adapter unplugged?)",
    errno.ENXIO: "no such device (adapter unplugged?)",
    errno.ENOBUFS: "transmit queue full (nobody acknowledges: cable, termination, bit rate?)",
}


def _describe(exc: BaseException) -> str:
    code = exc.errno if isinstance(exc, OSError) else getattr(exc, "error_code", None)
    if code in _ERRNO_MEANING:
        return f"{_ERRNO_MEANING[code]} [errno {code}]"
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sleep(timeout: float | None) -> None:
    if timeout:
        time.sleep(timeout)


def _wait_readable(buses: Sequence[Any], timeout: float) -> None:
    """Block until one of ``buses`` may have a frame (select where they have file numbers)."""
    filenos = []
    for bus in buses:
        try:
            filenos.append(bus.fileno())
        except Exception:  # virtual, slcan …: no selectable file; poll briefly instead
            time.sleep(min(timeout, 0.001))
            return
    if filenos:
        with contextlib.suppress(Exception):
            select.select(filenos, [], [], timeout)
    else:
        time.sleep(min(timeout, 0.001))
