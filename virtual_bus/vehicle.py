"""The virtual vehicle: BMS + MCU on a python-can bus, stepped on a clock.

Lockstep (the default, in-process with the runner): the runner calls :meth:`advance_to` with
simulated time. The vehicle first takes every frame waiting on its bus (the bench's ``VCU_*``
commands, stamped with simulated time), then steps the physics on a fixed 10 ms step and
transmits every frame due up to that time, stamped with its due time, in time order. At equal
times the physics step comes first, so a frame shows the state at its own timestamp. A command
stamped ``ts`` takes effect at the first physics step at or after ``ts`` (no later than the end of
the ``advance_to`` call that read it).

Time inside is an integer count of microseconds since ``start_time``: float sums would drift
and make "the same seed gives the same bytes" depend on rounding. Randomness (cell spread,
send phase offsets, noise faults) comes from :class:`random.Random` instances seeded from
``seed`` only, each stream separate so that adding a fault does not change the cells.

Real time (standalone process): :meth:`run_realtime` follows a :class:`RealClock`, applies
commands as they arrive and stamps frames with the wall clock. Its cycle times must not depend on
how busy the host is (a bench PC also records, decodes and draws), so:

- On SocketCAN the cyclic messages are python-can cyclic send tasks: the kernel's broadcast
  manager (BCM) sends them on its own timer. Each task repeats one full cycle of alive counter
  (and multiplexer) values, and the vehicle replaces the payloads with ``modify_data`` once per
  cycle time when a value changed: the task keeps running, its timer and its place in the frame
  list, so counters and CRCs stay consistent while the values follow the physics (at most one
  cycle late). Messages with a frame fault, or with cycle jitter, stay with the scheduler below.
- Elsewhere (and for those), the scheduler paces on absolute deadlines: every frame has a due time
  on the integer microsecond grid of its cycle, the loop wakes for the earliest one (waiting on
  the bus meanwhile, so commands apply as they arrive) and a late wake-up never shifts later
  deadlines; more than a cycle late, the missed frames are skipped, not burst.

Realistic imperfection, on request only: ``cycle_jitter_ms`` (per ECU, uniform ± that much around
each nominal send time, no drift; seeded) and ``startup_delay_ms`` (per ECU: its first frames come
that much later). Both default to none.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import can
from cantools.database.can import Message

from bench.dbc import DbcSet
from bench.diag.catalog import Ecu, virtual_vehicle_ecus
from bench.e2e import COUNTER_SIGNAL, CRC_SIGNAL, crc8_j1850, crc_byte_index
from bench.errors import InputError

from .clock import RealClock, SimClock
from .ecus.bms import MONITOR_PERIOD_S, Bms
from .ecus.commands import INBOUND, OPTIONAL, Commands
from .ecus.mcu import COMMAND_MESSAGE, DEFAULT_TIMEOUT_S, Mcu
from .ecus.restbus import Transmitter, error_frame, multiplexer_values
from .ecus.uds import UdsServer
from .ecus.uds_dtc import MONITOR_PERIOD_S as DTC_MONITOR_S
from .ecus.uds_dtc import DtcMemory
from .faults import VEHICLE_SENDERS, FaultSpec, parse_faults
from .physics.battery import Battery
from .physics.climate import Climate
from .physics.motor import Drivetrain

log = logging.getLogger(__name__)

STEP_US = 10_000
BCM_MAX_FRAMES = 256  # frames one BCM TX_SETUP may carry (linux/can/bcm.h MAX_NFRAMES)
# fast_forward steps 10x coarser: the thermal and electrical time constants are seconds or more,
# and the fast transients (torque lag, precharge, DC-link discharge) use implicit or exact
# exponential updates that stay stable and close at 100 ms.
FAST_STEP_US = 100_000
FAST_MONITOR_S = 1.0
_US = 1_000_000
TEMP_RANGE_C = (-50.0, 70.0)
_ERROR_SOURCE = -1
_DTC_MONITOR_US = round(DTC_MONITOR_S * _US)


class VirtualVehicle:
    """A simulated EV (BMS + MCU) that only talks CAN. See the module docstring."""

    def __init__(
        self,
        bus: can.BusABC,
        dbcs: DbcSet | None = None,
        *,
        seed: int = 0,
        ambient_c: float = 25.0,
        initial_temp_c: float | None = None,
        soc: float = 80.0,
        faults: Iterable[FaultSpec | str] = (),
        start_time: float = 0.0,
        on_frame: Callable[[can.Message], None] | None = None,
        cycle_jitter_ms: Mapping[str, float] | None = None,
        startup_delay_ms: Mapping[str, float] | None = None,
        kernel_cyclic: bool = True,
        diag_ecus: Mapping[str, Ecu] | None = None,
    ) -> None:
        self.bus = bus
        self.dbcs = dbcs if dbcs is not None else DbcSet.load()
        if not 0.0 <= soc <= 100.0:
            raise InputError(f"soc must be 0-100 %, got {soc}")
        for what, value in (("ambient", ambient_c), ("initial temperature", initial_temp_c)):
            # The models are made for the climates of the DBC's AmbientTemp range, with margin.
            if value is not None and not TEMP_RANGE_C[0] <= value <= TEMP_RANGE_C[1]:
                low, high = TEMP_RANGE_C
                raise InputError(f"{what} must be {low:g} to {high:g} °C, got {value:g}")
        self.faults = parse_faults(faults, self.dbcs)
        self.seed = seed
        self.start_time = float(start_time)
        self.on_frame = on_frame
        self.frames_sent = 0
        self.frames_rejected = 0
        self.send_errors = 0
        self.frames_skipped = 0
        self._send_error_ids: set[int] = set()
        self._now_us = 0
        self._phys_us = 0
        self._realtime = False
        self._pending: list[tuple[int, str, dict[str, float]]] = []
        self.channel = _channel(bus)
        self.kernel_cyclic = kernel_cyclic
        self._jitter = _per_ecu(cycle_jitter_ms, "cycle_jitter_ms")
        self._delay = _per_ecu(startup_delay_ms, "startup_delay_ms")
        self._jitter_rng = random.Random(f"{seed}:jitter")
        self._nominal: dict[int, int] = {}  # jittered messages: their nominal next send time
        self._kernel_tasks: dict[int, can.broadcastmanager.CyclicSendTaskABC] = {}
        self._kernel_data: dict[int, list[bytes]] = {}
        self._kernel_ids: set[tuple[int, bool]] = set()
        self._kernel_ok: set[int] = set()
        self._use_kernel = False
        self.kernel_messages = 0  # messages handed to the kernel as cyclic send tasks (ever)

        t0 = ambient_c if initial_temp_c is None else initial_temp_c
        self.climate = Climate(ambient_c)
        self.commands = Commands()
        battery = Battery(soc=soc, cell_c=t0, coolant_c=t0, rng=random.Random(f"{seed}:battery"))
        self.bms = Bms(battery, self.commands, self.faults, random.Random(f"{seed}:bms"))
        drive = Drivetrain(stator_c=t0, inverter_c=t0, coolant_c=t0, rotor_c=t0)
        self.mcu = Mcu(drive, self.commands, self.bms, self.faults)
        self.bms.command_timeout_s = self.mcu.command_timeout_s = self._command_timeout_s()
        self.mcu.serial = random.Random(f"{seed}:mcu").randrange(10_000_000, 99_999_999)
        self._build_diagnostics(diag_ecus)

        self._inbound = self._build_inbound()
        self._transmitters: list[Transmitter] = []
        self._events: list[int] = []
        self._heap: list[tuple[int, int]] = []
        self._build_restbus(random.Random(f"{seed}:phase"), random.Random(f"{seed}:noise"))
        self._build_error_sources()

    # -- construction -----------------------------------------------------------------------------

    def _build_inbound(self) -> dict[tuple[int, bool], _Inbound]:
        inbound: dict[tuple[int, bool], _Inbound] = {}
        for name, signals in INBOUND.items():
            message = self._need_message(name, "receives")
            have = {s.name for s in message.signals}
            for signal in signals:
                if signal not in have and (name, signal) not in OPTIONAL:
                    raise InputError(
                        f"DBC set: message {name!r} lacks signal {signal!r} "
                        "(the virtual vehicle reads it)"
                    )
            key = (message.frame_id, message.is_extended_frame)
            inbound[key] = _Inbound(message, crc_byte_index(message), _volatile_bits(message))
        return inbound

    def _command_timeout_s(self) -> float:
        """VCU_Command's receive timeout: its DBC attribute GenMsgTimeoutTime (ms), else 300 ms."""
        if not self.dbcs.has_message(COMMAND_MESSAGE):
            return DEFAULT_TIMEOUT_S
        message = self.dbcs.message(COMMAND_MESSAGE)
        attribute = message.dbc.attributes.get("GenMsgTimeoutTime") if message.dbc else None
        if attribute is None or not attribute.value:
            return DEFAULT_TIMEOUT_S
        return int(attribute.value) / 1000.0

    def _need_message(self, name: str, verb: str) -> Message:
        if not self.dbcs.has_message(name):
            raise InputError(f"DBC set lacks message {name!r} (the virtual vehicle {verb} it)")
        return self.dbcs.message(name)

    def _build_restbus(self, phase_rng: random.Random, noise_rng: random.Random) -> None:
        sources = {**self.bms.sources, **self.mcu.sources}
        for name, source in sources.items():
            message = self._need_message(name, "sends")
            have = {s.name for s in message.signals}
            for mux in _mux_probe(message):
                missing = set(source(mux)) - have
                if missing:
                    raise InputError(
                        f"DBC set: message {name!r} lacks signal {sorted(missing)[0]!r} "
                        "(the virtual vehicle sends it)"
                    )
        for message in self.dbcs.messages:
            if not set(message.senders) & set(VEHICLE_SENDERS):
                continue
            # A message the model does not know still goes out, with its DBC start values.
            source = sources.get(message.name, _no_values)
            cyclic = DbcSet.is_cyclic(message)
            period = DbcSet.cycle_time_s(message)
            period_us = round(period * _US) if cyclic and period else None
            if period_us is None and message.send_type not in ("Event", "CyclicAndEvent"):
                continue  # neither cyclic nor event: nothing says when to send it
            delay = message.dbc.attributes.get("GenMsgDelayTime") if message.dbc else None
            tx = Transmitter(
                message=message,
                source=source,
                period_us=period_us,
                send=self._send,
                faults=[f for f in self.faults if f.message == message.name],
                rng=noise_rng,
                delay_us=int(delay.value) * 1000 if delay is not None else 0,
                channel=self.channel,
            )
            index = len(self._transmitters)
            self._transmitters.append(tx)
            if period_us is None:
                self._events.append(index)
                tx.changed()  # the state at power-up is sent once, at time 0
                self._heap.append((0, index))
            else:
                # ECUs do not all start in the same millisecond: a seeded phase per message.
                first = phase_rng.randrange(0, period_us, 1000)
                ecu = _ecu_of(message)
                first += round(self._delay.get(ecu, 0.0) * 1000)
                if self._jitter.get(ecu):
                    self._nominal[index] = first
                elif not tx.has_frame_faults and tx.kernel_cycle_length <= BCM_MAX_FRAMES:
                    self._kernel_ok.add(index)
                self._heap.append((first, index))
        heapq.heapify(self._heap)

    def _build_diagnostics(self, diag_ecus: Mapping[str, Ecu] | None) -> None:
        """The BMS's and MCU's UDS servers (bench.diag.catalog's addressing, or ``diag_ecus``'s:
        a plan's ``diagnostics:`` section) and their fault memories."""
        ecus = {**virtual_vehicle_ecus(), **(diag_ecus or {})}
        self._uds_now = self.start_time
        self._dtc_us = 0
        self._awake = False
        self.dtc_memory: dict[str, DtcMemory] = {}
        self.uds: dict[str, UdsServer] = {}
        self._uds_by_id: dict[tuple[int, bool], UdsServer] = {}
        self._uds_pending: list[tuple[int, UdsServer, can.Message]] = []
        for name, ecu_model in (("BMS", self.bms), ("MCU", self.mcu)):
            ecu = ecus[name]
            monitors = ecu_model.dtc_monitors()
            memory = DtcMemory((dtc, *monitors[dtc.name]) for dtc in ecu.dtcs)
            refused = getattr(ecu_model, "clear_refused", lambda: False)
            server = UdsServer(
                ecu, memory, ecu_model.did_sources(), self._uds_clock, self._send_uds, refused
            )
            self.dtc_memory[name] = memory
            self.uds[name] = server
            self._uds_by_id[server.request_key] = server

    def _uds_clock(self) -> float:
        return self._uds_now

    def _send_uds(self, frame: can.Message) -> None:
        frame.timestamp = self._uds_now
        frame.channel = self.channel
        self._send(frame)

    def _diagnostics(self, at_us: int, step_us: int) -> None:
        """Age the DTCs every monitoring cycle and answer UDS requests (every physics step)."""
        cmd = self.commands
        awake = bool(cmd.key_on or cmd.charge_request)
        if awake and not self._awake:  # key-on or charge start: a new operation cycle
            for memory in self.dtc_memory.values():
                memory.new_operation_cycle()
        self._awake = awake
        self._dtc_us += step_us
        if self._dtc_us >= _DTC_MONITOR_US:
            for memory in self.dtc_memory.values():
                memory.sample(self._dtc_us / _US)
            self._dtc_us = 0
        self._uds_now = self.start_time + at_us / _US
        if self._uds_pending:
            keep = []
            for entry in self._uds_pending:
                if entry[0] <= at_us:
                    entry[1].feed(entry[2])
                else:
                    keep.append(entry)
            self._uds_pending = keep
        for server in self.uds.values():
            server.step()

    def _build_error_sources(self) -> None:
        self._error_faults = [
            f for f in self.faults if f.kind == "error_frames" and f.target == "bus"
        ]
        for i, fault in enumerate(self._error_faults):
            heapq.heappush(self._heap, (round(fault.start * _US), _ERROR_SOURCE - i))

    # -- public API -------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Simulated time the vehicle has reached (same scale as frame timestamps)."""
        return self.start_time + self._now_us / _US

    def next_due(self) -> float:
        """Time of the vehicle's next transmission."""
        return self.start_time + self._heap[0][0] / _US if self._heap else float("inf")

    def advance_to(self, t: float) -> None:
        """Read the bench's frames, step the physics and send every frame due up to ``t``.

        ``t`` is on the frames' time scale (``start_time`` + simulated seconds). A ``t`` earlier
        than the vehicle's present time does nothing: time never goes back.
        """
        target = round((t - self.start_time) * _US)
        if target < self._now_us:
            return
        self._read_bus(target)
        heap = self._heap
        transmitters = self._transmitters
        start = self.start_time
        while True:
            due = heap[0][0] if heap else target + 1
            phys = self._phys_us
            if phys <= due:
                if phys > target:
                    break
                self._step(phys)
                self._phys_us = phys + STEP_US
                continue
            if due > target:
                break
            _, index = heap[0]
            if self._realtime and index >= 0:
                period = transmitters[index].period_us
                if period is not None and target - due >= period:
                    # On the wall clock, more than a cycle late (the process was stalled): a real
                    # ECU sends the current value once, it does not burst out the missed frames.
                    missed = (target - due) // period
                    self.frames_skipped += missed
                    heapq.heapreplace(heap, (due + missed * period, index))
                    continue
            t_rel = due / _US
            if index < 0:
                nxt = self._fire_error_source(-index + _ERROR_SOURCE, due, t_rel)
            elif self._use_kernel and index in self._kernel_ok:
                nxt = self._kernel_refresh(index, due, t_rel)
            else:
                nxt = transmitters[index].fire(due, t_rel, start + t_rel)
                if index in self._nominal and nxt is not None:
                    nxt = self._jittered(index, nxt - due)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt, index))
        self._now_us = target

    def fast_forward(self, t: float) -> None:
        """Step the physics to ``t`` without transmitting anything (nobody listens meanwhile).

        The physics takes 100 ms steps here instead of 10 ms (see :data:`FAST_STEP_US`), so an
        hour takes about a second.

        For long stretches that only matter for their physical outcome: an overnight soak before
        a run, or hour-long plausibility tests. Commands waiting on the bus are applied as in
        :meth:`advance_to` and taken as repeated throughout (the ECUs' command timeouts do not
        expire: the bench is assumed to go on sending). Cyclic messages resume after ``t`` on their
        own phase; event messages send their state just after ``t`` if it changed.
        """
        target = round((t - self.start_time) * _US)
        if target < self._now_us:
            return
        self._read_bus(target)
        # The bench is taken to go on sending its commands meanwhile (nobody records them): the
        # ECUs' receive timeouts (VCU_Command loss) see them as fresh throughout.
        held = list(dict.fromkeys([*self.commands.last_seen, *(p[1] for p in self._pending)]))
        # Cell measurements (192 voltages, 48 sensors) once a second instead of every 100 ms.
        self.bms.monitor_period_s = FAST_MONITOR_S
        try:
            while self._phys_us + FAST_STEP_US <= target:
                self.commands.last_seen.update(dict.fromkeys(held, self._phys_us / _US))
                self._step(self._phys_us, FAST_STEP_US)
                self._phys_us += FAST_STEP_US
        finally:
            self.bms.monitor_period_s = MONITOR_PERIOD_S
        while self._phys_us <= target:
            self.commands.last_seen.update(dict.fromkeys(held, self._phys_us / _US))
            self._step(self._phys_us)
            self._phys_us += STEP_US
        rescheduled = []
        for due, index in self._heap:
            if due <= target:
                period = self._transmitters[index].period_us if index >= 0 else None
                if period is None:
                    due = target + 1  # event messages and error frames: just after t
                else:
                    due += ((target - due) // period + 1) * period
            rescheduled.append((due, index))
        heapq.heapify(rescheduled)
        self._heap = rescheduled
        self._now_us = target

    def run_realtime(
        self,
        clock: RealClock | SimClock,
        duration: float | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        """Run on ``clock`` until ``duration`` has passed or ``stop_event`` is set.

        With a :class:`RealClock` the vehicle waits on its bus between transmissions (so commands
        are applied as they arrive) and stamps frames with the clock; with a :class:`SimClock` it
        jumps from transmission to transmission.
        """
        self.start_time = clock.now() - self._now_us / _US
        self._realtime = bool(getattr(clock, "realtime", False))
        self._use_kernel = self._realtime and self.kernel_cyclic and _has_bcm(self.bus)
        if self._use_kernel and self.on_frame is None:
            # The kernel loops our own cyclic frames back to our socket (hundreds a second): let
            # it pass only what we read, so a stalled moment cannot fill the receive buffer with
            # our own frames and drop a VCU_Command (a false comm loss).
            self.bus.set_filters(
                [
                    {"can_id": e.message.frame_id, "can_mask": 0x1FFFFFFF, "extended": ext}
                    for (_, ext), e in self._inbound.items()
                ]
                + [
                    {"can_id": can_id, "can_mask": 0x1FFFFFFF, "extended": ext}
                    for can_id, ext in self._uds_by_id
                ]
            )
        end = float("inf") if duration is None else clock.now() + duration
        stop = stop_event or threading.Event()
        try:
            self._run_loop(clock, end, stop)
        finally:
            self.stop_kernel_tasks()

    @property
    def kernel_tasks(self) -> int:
        """How many messages the kernel (SocketCAN BCM) is sending for the vehicle right now."""
        return len(self._kernel_tasks)

    def stop_kernel_tasks(self) -> None:
        """Stop every cyclic send task (the vehicle falls silent; the scheduler is unaffected)."""
        for task in self._kernel_tasks.values():
            try:
                task.stop()
            except (can.CanError, OSError) as exc:
                log.warning("stopping a cyclic send task failed: %s", exc)
        self._kernel_tasks.clear()
        self._kernel_data.clear()

    def _run_loop(self, clock: RealClock | SimClock, end: float, stop: threading.Event) -> None:
        while not stop.is_set():
            now = clock.now()
            if now >= end:
                self.advance_to(end)
                break
            self.advance_to(now)
            wake = min(self.next_due(), end)
            if not self._realtime:
                clock.sleep_until(wake)
                continue
            wait = wake - clock.now()
            if wait > 0:
                self._wait_for_frame(min(wait, 0.1))

    # -- internals --------------------------------------------------------------------------------

    def _jittered(self, index: int, period_us: int) -> int:
        """Next send time of a jittered message: its nominal slot ± the ECU's jitter, no drift."""
        nominal = self._nominal[index] + period_us
        self._nominal[index] = nominal
        ecu = _ecu_of(self._transmitters[index].message)
        spread = round(self._jitter.get(ecu, 0.0) * 1000)
        # never earlier than 1 µs after the previous frame: the order of a message's frames holds
        return max(nominal + self._jitter_rng.randint(-spread, spread), nominal - period_us + 1)

    def _kernel_refresh(self, index: int, due_us: int, t: float) -> int | None:
        """Start the message's cyclic send task, or give it this cycle's values if they changed."""
        tx = self._transmitters[index]
        assert tx.period_us is not None
        frames = tx.cycle_frames(t, self.start_time + t)
        data = [bytes(frame.data) for frame in frames]
        task = self._kernel_tasks.get(index)
        try:
            if task is None:
                task = self.bus.send_periodic(frames, tx.period_us / _US)
                self._kernel_tasks[index] = task
                self.kernel_messages += 1
                message = tx.message
                self._kernel_ids.add((message.frame_id, message.is_extended_frame))
            elif data != self._kernel_data[index]:
                task.modify_data(frames)  # type: ignore[attr-defined]
        except (can.CanError, OSError, NotImplementedError, ValueError) as exc:
            # The kernel refused (no BCM, too many frames …): this message goes back to Python.
            log.warning(
                "cyclic send task for %s failed (%s): sent by the scheduler", tx.message.name, exc
            )
            self._kernel_ok.discard(index)
            self._kernel_tasks.pop(index, None)
            return tx.fire(due_us, t, self.start_time + t)
        self._kernel_data[index] = data
        return due_us + tx.period_us

    def _wait_for_frame(self, timeout: float) -> None:
        try:
            msg = self.bus.recv(timeout=timeout)
        except can.CanError as exc:
            log.warning("receive failed: %s", exc)
            return
        if msg is not None:
            self._accept(msg, self._now_us, self._now_us)

    def _read_bus(self, target: int) -> None:
        while True:
            try:
                msg = self.bus.recv(timeout=0)
            except can.CanError as exc:
                log.warning("receive failed: %s", exc)
                return
            if msg is None:
                return
            self._accept(msg, self._now_us, target)

    def _accept(self, msg: can.Message, now_us: int, latest_us: int) -> None:
        if msg.is_error_frame or msg.is_remote_frame:
            return
        if self._kernel_ids and (msg.arbitration_id, msg.is_extended_id) in self._kernel_ids:
            # One of our own cyclic send tasks' frames, looped back: what the kernel sent for us.
            self.frames_sent += 1
            if self.on_frame is not None:
                self.on_frame(msg)
            return
        key = (msg.arbitration_id, msg.is_extended_id)
        server = self._uds_by_id.get(key)
        if server is not None:  # a diagnostic request frame: answered at the next physics step
            at = min(latest_us, max(now_us, round((msg.timestamp - self.start_time) * _US)))
            self._uds_pending.append((at, server, msg))
            return
        entry = self._inbound.get(key)
        if entry is None:
            return
        message, crc_index = entry.message, entry.crc_index
        data = bytes(msg.data)
        if len(data) != message.length:
            self.frames_rejected += 1
            return
        if crc_index is not None and data[crc_index] != crc8_j1850(
            data[:crc_index] + data[crc_index + 1 :]
        ):
            self.frames_rejected += 1  # a real ECU drops frames failing their E2E check
            return
        # The bench repeats the same command every 10 ms with only counter and CRC changing:
        # decode (cantools) only when the rest of the payload changed.
        key = int.from_bytes(data, "little") & ~entry.volatile
        if key == entry.last_key and entry.last_values is not None:
            values = entry.last_values
        else:
            try:
                values = message.decode(data, decode_choices=False, scaling=True)
            except Exception:  # any undecodable frame is dropped, as a real ECU would
                self.frames_rejected += 1
                return
            entry.last_key, entry.last_values = key, values
        # Stamped with its arrival (the bus's receive timestamp, on the clock's time.time scale in
        # real time too), within what this read covers: after a stall of this process the frames
        # that arrived meanwhile keep their own times, so the command timeouts see no gap the
        # bus did not have.
        at = min(latest_us, max(now_us, round((msg.timestamp - self.start_time) * _US)))
        self._pending.append((at, message.name, values))

    def _apply_commands(self, now_us: int) -> None:
        pending = self._pending
        keep = []
        for entry in pending:
            if entry[0] <= now_us:
                self.commands.apply(entry[1], entry[2], entry[0] / _US)
                if entry[1] == "VCU_Ambient":
                    self._apply_environment()
            else:
                keep.append(entry)
        self._pending = keep

    def _apply_environment(self) -> None:
        cmd = self.commands
        if cmd.ambient_temp is not None:
            self.climate.target_c = cmd.ambient_temp
        self.climate.solar_w_m2 = cmd.solar_load
        self.climate.road_grade_pct = cmd.road_grade
        self.climate.headwind_kmh = cmd.headwind

    def _step(self, at_us: int, step_us: int = STEP_US) -> None:
        if self._pending:
            self._apply_commands(at_us)
        dt = step_us / _US
        t = at_us / _US
        climate = self.climate
        climate.step(dt)
        self.mcu.control(
            t, dt, climate.motor_ambient_c(), climate.road_grade_pct, climate.headwind_kmh
        )
        self.bms.control(t, dt, self.mcu.dc_current())
        self.bms.step_thermal(dt, climate.pack_ambient_c())
        self._diagnostics(at_us, step_us)
        for index in self._events:
            tx = self._transmitters[index]
            if tx.changed():
                last = tx.last_sent_us
                due = at_us if last is None else max(at_us, last + tx.delay_us)
                if not any(i == index for _, i in self._heap):
                    heapq.heappush(self._heap, (due, index))

    def _fire_error_source(self, which: int, due_us: int, t: float) -> int | None:
        fault = self._error_faults[which]
        if t >= fault.end:
            return None
        self._send(error_frame(self.start_time + t, self.channel))
        return due_us + max(1, round(_US / float(fault.value)))

    def _send(self, frame: can.Message) -> None:
        try:
            self.bus.send(frame)
        except can.CanError as exc:
            # A full TX queue or an FD frame on a classic socket: count it, say it once per id.
            self.send_errors += 1
            if frame.arbitration_id not in self._send_error_ids:
                self._send_error_ids.add(frame.arbitration_id)
                log.warning("sending 0x%X failed: %s", frame.arbitration_id, exc)
            return
        self.frames_sent += 1
        if self.on_frame is not None:
            self.on_frame(frame)


@dataclass
class _Inbound:
    """A bench message the vehicle reads, with the last decoded payload (see ``_accept``)."""

    message: Message
    crc_index: int | None
    volatile: int  # bits of the alive counter and CRC: they change in every frame
    last_key: int | None = None
    last_values: dict[str, float] | None = None


def _volatile_bits(message: Message) -> int:
    """Bit mask (little-endian int) of the message's AliveCounter and CRC, as cantools lays them."""
    fields = {
        s.name: (1 << s.length) - 1
        for s in message.signals
        if s.name in (COUNTER_SIGNAL, CRC_SIGNAL)
    }
    if not fields:
        return 0
    zeros = {s.name: 0 for s in message.signals}
    payload = message.encode({**zeros, **fields}, scaling=False, strict=False, padding=False)
    return int.from_bytes(payload, "little")


def _has_bcm(bus: can.BusABC) -> bool:
    """True for a SocketCAN bus: the kernel's broadcast manager can send cyclic frames."""
    return type(bus).__name__ == "SocketcanBus"


def _ecu_of(message: Message) -> str:
    return next((s for s in message.senders if s in VEHICLE_SENDERS), "")


def _per_ecu(values: Mapping[str, float] | None, what: str) -> dict[str, float]:
    found = dict(values or {})
    for ecu, value in found.items():
        if ecu not in VEHICLE_SENDERS:
            raise InputError(f"{what}: unknown ECU {ecu!r}; valid: {', '.join(VEHICLE_SENDERS)}")
        if not 0.0 <= float(value) <= 1000.0:
            raise InputError(f"{what}: {ecu} must be 0-1000 ms, got {value}")
    return {ecu: float(value) for ecu, value in found.items()}


def _channel(bus: can.BusABC) -> str | None:
    channel = getattr(bus, "channel_id", None) or getattr(bus, "channel", None)
    return None if channel is None else str(channel)


def _no_values(_mux: int | None) -> dict[str, float]:
    return {}


def _mux_probe(message: Message) -> list[int | None]:
    _, values = multiplexer_values(message)
    return list(values) or [None]
