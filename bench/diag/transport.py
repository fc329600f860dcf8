"""ISO-TP (ISO 15765-2) on a clock the caller owns: can-isotp's transport logic, stepped.

can-isotp's :class:`isotp.TransportLayer` runs its own threads on the wall clock. A lockstep run
has no wall clock: the runner and the virtual vehicle advance one simulated clock together, and a
frame must be answered at a simulated time, stamped with it, whatever the CPU's speed. So both the
runner's tester side and the virtual ECUs' server side use :class:`ClockedIsoTp`: can-isotp's
non-threaded :class:`isotp.TransportLayerLogic` (the same state machines, flow control, padding,
sequence numbers and N_Bs/N_Cr timeouts) with its timers reading the caller's clock, fed frames
by the caller (:meth:`ClockedIsoTp.feed`) and stepped by it (:meth:`ClockedIsoTp.step`).

Why a subclass and not a patched module: can-isotp 2.0.x creates its ``Timer`` objects in four
places (``__init__``, ``load_params``, ``_start_rx_fc_timer``, ``_start_rx_cf_timer``) from
``isotp.tools.Timer``, which reads ``time.perf_counter_ns``; overriding those four keeps the rest
of the library untouched and leaves other stacks in the process on the wall clock. The
override is checked against the installed version by ``tests/test_diag_transport.py``.

Frames on the bus: classic CAN, 8 data bytes, padded with 0xCC (``tx_padding``), as the
diagnostics contract says (README, "Diagnostics"); a block size of 0 and STmin 0 from the
receiver (the virtual ECUs and the tester both accept a whole message without pauses, which a
10 ms lockstep tick needs).

Why the idle short cut in :meth:`ClockedIsoTp.step`: the virtual vehicle steps each ECU's server
at every 10 ms physics step, and a diagnostic request comes a few times per run. can-isotp's
``process()`` on an endpoint with nothing fed, nothing queued, both state machines idle and
no timer running changes nothing and sends nothing, but costs a pass through both state machines
and three locked ``queue.Queue`` calls: profiled, about a tenth of a lockstep run's CPU time for
two ECUs (README, "Figures"). So after each ``process()`` the endpoint notes whether it is in
that state, and until something is fed or sent :meth:`step`, :meth:`take` and :attr:`busy`
answer without calling into can-isotp. ``tests/test_diag_transport.py`` runs random exchanges
through this endpoint and through one that always calls ``process()``: the frames, messages and
errors are the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import can
import isotp
from isotp.protocol import TransportLayerLogic

from .catalog import Ecu

PADDING = 0xCC
ISOTP_PARAMS = {
    "tx_padding": PADDING,
    "tx_data_length": 8,
    "tx_data_min_length": 8,
    "blocksize": 0,
    "stmin": 0,
    # ISO 15765-2 N_Bs / N_Cr: 1000 ms (can-isotp's defaults, stated here as the contract).
    "rx_flowcontrol_timeout": 1000,
    "rx_consecutive_frame_timeout": 1000,
    "max_frame_size": 4095,
}

Clock = Callable[[], float]


class ClockTimer:
    """can-isotp's ``Timer`` interface on a caller's clock (seconds, float)."""

    def __init__(self, clock: Clock, timeout: float) -> None:
        self._clock = clock
        self.timeout_s = float(timeout)
        self.start_time: float | None = None

    def set_timeout(self, timeout: float) -> None:
        self.timeout_s = float(timeout)

    def start(self, timeout: float | None = None) -> None:
        if timeout is not None:
            self.timeout_s = float(timeout)
        self.start_time = self._clock()

    def stop(self) -> None:
        self.start_time = None

    def elapsed(self) -> float:
        return 0.0 if self.start_time is None else self._clock() - self.start_time

    def elapsed_ns(self) -> int:
        return int(self.elapsed() * 1e9)

    def remaining(self) -> float:
        return 0.0 if self.start_time is None else max(0.0, self.timeout_s - self.elapsed())

    def remaining_ns(self) -> int:
        return int(self.remaining() * 1e9)

    def is_timed_out(self) -> bool:
        if self.start_time is None:
            return False
        return self.elapsed() > self.timeout_s or self.timeout_s == 0

    def is_stopped(self) -> bool:
        return self.start_time is None


def isotp_address(ecu: Ecu, *, server: bool = False) -> isotp.Address:
    """The ISO-TP address of the tester (or, ``server=True``, of the ECU) for ``ecu``."""
    if ecu.addressing == "normal_fixed_29bit":
        ta, sa = ecu.target_address, ecu.source_address
        if server:
            ta, sa = sa, ta
        return isotp.Address(
            isotp.AddressingMode.NormalFixed_29bits, target_address=ta, source_address=sa
        )
    tx, rx = (ecu.response_id, ecu.request_id) if server else (ecu.request_id, ecu.response_id)
    return isotp.Address(isotp.AddressingMode.Normal_11bits, txid=tx, rxid=rx)


class ClockedIsoTp(TransportLayerLogic):
    """One ISO-TP endpoint stepped by its owner on its owner's clock.

    ``send_frame(message)`` puts a python-can frame on the bus (the owner stamps and records it).
    Feed received frames with :meth:`feed` (any id: those not for this address are ignored),
    call :meth:`step` whenever time has moved or a frame came, take whole messages with
    :meth:`take`. ISO-TP errors (a wrong sequence number, a consecutive frame timeout, an
    unexpected frame) are kept in :attr:`errors`, in words.
    """

    def __init__(
        self,
        address: isotp.Address,
        clock: Clock,
        send_frame: Callable[[can.Message], None],
        params: dict | None = None,
    ) -> None:
        self._clock = clock
        self._inbox: deque[isotp.CanMessage] = deque()
        self._send_frame = send_frame
        self.errors: list[str] = []
        # Set after a process() that left nothing to do (see the module's docstring); cleared by
        # whatever can give it work: a fed frame, a send. False is always safe (one more pass).
        self._idle = False
        self._rx_ready = True  # rx_queue may hold a message (True is the safe answer)
        super().__init__(
            rxfn=self._rx,
            txfn=self._tx,
            address=address,
            error_handler=self._on_error,
            params={**ISOTP_PARAMS, **(params or {})},
        )
        self.timer_tx_stmin = ClockTimer(clock, 0)

    # -- the four places can-isotp makes wall-clock timers ----------------------------------------

    def load_params(self) -> None:
        super().load_params()
        self.timer_rx_fc = ClockTimer(self._clock, self.params.rx_flowcontrol_timeout / 1000)
        self.timer_rx_cf = ClockTimer(self._clock, self.params.rx_consecutive_frame_timeout / 1000)

    def _start_rx_fc_timer(self) -> None:
        self.timer_rx_fc = ClockTimer(self._clock, self.params.rx_flowcontrol_timeout / 1000)
        self.timer_rx_fc.start()

    def _start_rx_cf_timer(self) -> None:
        self.timer_rx_cf = ClockTimer(self._clock, self.params.rx_consecutive_frame_timeout / 1000)
        self.timer_rx_cf.start()

    # -- the owner's side -------------------------------------------------------------------------

    def feed(self, frame: can.Message) -> None:
        """A frame received from the bus (error and remote frames are ignored)."""
        if frame.is_error_frame or frame.is_remote_frame:
            return
        self._inbox.append(
            isotp.CanMessage(
                arbitration_id=frame.arbitration_id,
                data=bytes(frame.data),
                extended_id=frame.is_extended_id,
                is_fd=frame.is_fd,
                bitrate_switch=frame.bitrate_switch,
            )
        )
        self._idle = False

    def send(
        self,
        data: bytes | bytearray | TransportLayerLogic.SendGenerator,
        target_address_type: isotp.TargetAddressType | int | None = None,
        send_timeout: float | None = None,
    ) -> None:
        """can-isotp's ``send``: queues ``data`` (:meth:`step` puts its frames on the bus)."""
        self._idle = False
        super().send(data, target_address_type, send_timeout)

    def step(self) -> None:
        """Process the frames fed so far and send what is due now (never blocks)."""
        if self._idle:
            return  # process() would change nothing and send nothing (module docstring)
        self.process(rx_timeout=0.0)
        self._rx_ready = not self.rx_queue.empty()
        self._idle = self._nothing_to_do()

    def _nothing_to_do(self) -> bool:
        """True when ``process()`` can neither send, receive, time out nor change state: no
        frame fed, both state machines idle, nothing queued to send, no flow control owed or
        received, the N_Bs/N_Cr timers stopped.

        can-isotp's rate limiter (enabled by its constructor whatever ``rate_limit_enable``
        says, at 100 Mbit/s) only forgets wall-clock bursts older than its window in
        ``update()``; the next ``process()`` that has work calls it first, with the same result
        as any number of skipped calls before it."""
        return (
            not self._inbox
            and self.rx_state == self.RxState.IDLE
            and self.tx_state == self.TxState.IDLE
            and self.tx_queue.empty()
            and not self.pending_flow_control_tx
            and self.last_flow_control_frame is None
            and self.timer_rx_cf.is_stopped()
            and self.timer_rx_fc.is_stopped()
        )

    def take(self) -> bytes | None:
        """The next whole message received, or None."""
        if not self._rx_ready:
            return None  # only process() fills rx_queue, and the last one left it empty
        data = self.recv(block=False)
        if data is None:
            self._rx_ready = False
            return None
        return bytes(data)

    @property
    def busy(self) -> bool:
        """True while a message is being sent or received (multi-frame in progress)."""
        if self._idle:
            return False
        return self.transmitting() or self.is_rx_active()

    @property
    def idle(self) -> bool:
        """True when neither :meth:`step` nor :meth:`take` has anything to do until a frame is
        fed or a message sent: :attr:`busy` is False, nothing is queued either way."""
        return self._idle and not self._rx_ready

    def _rx(self, _timeout: float) -> isotp.CanMessage | None:
        return self._inbox.popleft() if self._inbox else None

    def _tx(self, message: isotp.CanMessage) -> None:
        self._send_frame(
            can.Message(
                arbitration_id=message.arbitration_id,
                is_extended_id=message.is_extended_id,
                data=bytes(message.data),
                is_fd=message.is_fd,
                bitrate_switch=message.bitrate_switch,
            )
        )

    def _on_error(self, error: Exception) -> None:
        self.errors.append(f"{type(error).__name__}: {error}")
