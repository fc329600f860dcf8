"""Open python-can buses from plan, bench-profile and command-line settings.

python-can does the work (one ``can.Bus`` per backend); this module only merges settings in the
order *command line > bench profile > plan > defaults* and turns the many ways an adapter can fail
to open into one line a bench engineer can act on.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, replace
from typing import Any

import can

from .errors import HarnessError, InputError

LOCKSTEP_INTERFACES = frozenset({"virtual"})


@dataclass(frozen=True)
class BusSettings:
    """Where to find the bus: python-can interface, channel and bit rates."""

    interface: str = "virtual"
    channel: str = "bench0"
    bitrate: int | None = 500_000
    fd: bool = False
    data_bitrate: int | None = None

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
    kwargs: dict[str, Any] = {"interface": settings.interface, "channel": settings.channel, **extra}
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
    if settings.interface == "socketcan" and not kernel_has_socketcan():
        raise HarnessError(
            f"cannot open {settings.describe()}: this kernel lacks SocketCAN (AF_CAN); "
            "use a Linux kernel with the can and vcan modules, or --interface virtual"
        )
    try:
        return can.Bus(**kwargs)
    except can.CanInterfaceNotImplementedError as exc:
        raise HarnessError(f"cannot open {settings.describe()}: {exc}") from None
    except (can.CanError, OSError, ValueError, ImportError) as exc:
        reason = _reason(exc)
        raise HarnessError(f"cannot open {settings.describe()}: {reason}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENODEV:
        return "no such network interface (is it up? see scripts/vcan-up.sh)"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
