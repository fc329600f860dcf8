"""A virtual ECU's fault memory: DTC status bytes that age as ISO 14229-1 (Annex D) describes.

Each DTC has a monitor: every monitoring cycle (100 ms) it reports ``True`` (test failed),
``False`` (test passed) or ``None`` (not run: its enable conditions are not met, e.g. the heater
monitor while no heat is requested). The status bits follow the monitor like a real ECU's:

- ``test_failed``: after :data:`FAIL_SAMPLES` failed samples in a row (the fault detection
  counter's debounce, 200 ms), cleared after :data:`PASS_SAMPLES` passed samples in a row.
- ``test_failed_this_operation_cycle``, ``pending``, ``test_failed_since_last_clear``: set with
  ``test_failed``. ``pending`` clears at the start of an operation cycle when the last cycle
  completed the test without a failure.
- ``confirmed``: once ``test_failed`` has held for :data:`CONFIRM_S` (1 s) of one operation cycle
  (the confirmation debounce). It ages out after :data:`AGING_CYCLES` (40) operation cycles
  in a row that completed the test without a failure.
- ``test_not_completed_since_last_clear`` / ``test_not_completed_this_operation_cycle``: set by a
  clear (and at power-up) and at the start of an operation cycle respectively; cleared by the
  first completed test (passed or failed).
- ``warning_indicator_requested``: for DTCs that light a lamp (SHUTDOWN-level faults), while
  the DTC is confirmed and its test still fails.

An operation cycle starts at power-up and at each key-on or charge start (the VCU's KeyOn /
ChargeRequest going 0 -> 1). After :meth:`clear` (ClearDiagnosticInformation) every status byte is
0x50 (the two "not completed" bits), as after power-up. While DTC setting is off
(ControlDTCSetting 0x85 02, extended session) statuses do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench.diag.catalog import STATUS_BITS, Dtc

FAIL_SAMPLES = 2
PASS_SAMPLES = 2
CONFIRM_S = 1.0
AGING_CYCLES = 40
MONITOR_PERIOD_S = 0.1

TEST_FAILED, FAILED_THIS_CYCLE, PENDING, CONFIRMED = 0x01, 0x02, 0x04, 0x08
NOT_COMPLETED_SINCE_CLEAR, FAILED_SINCE_CLEAR, NOT_COMPLETED_THIS_CYCLE = 0x10, 0x20, 0x40
WARNING_INDICATOR = 0x80
INITIAL_STATUS = NOT_COMPLETED_SINCE_CLEAR | NOT_COMPLETED_THIS_CYCLE
AVAILABILITY_MASK = 0xFF  # every ISO 14229-1 status bit is supported
assert [1 << i for i in range(8)] == [
    TEST_FAILED,
    FAILED_THIS_CYCLE,
    PENDING,
    CONFIRMED,
    NOT_COMPLETED_SINCE_CLEAR,
    FAILED_SINCE_CLEAR,
    NOT_COMPLETED_THIS_CYCLE,
    WARNING_INDICATOR,
] and len(STATUS_BITS) == 8

Monitor = Callable[[], bool | None]


@dataclass
class DtcRecord:
    """One DTC's status byte and debounce counters."""

    dtc: Dtc
    monitor: Monitor
    lamp: bool = False
    status: int = INITIAL_STATUS
    fails: int = 0
    passes: int = 0
    failed_for_s: float = 0.0
    clean_cycles: int = 0
    tested_this_cycle: bool = False


class DtcMemory:
    """The DTCs of one ECU with their monitors; :meth:`sample` once per monitoring cycle."""

    def __init__(self, entries: Iterable[tuple[Dtc, Monitor, bool]]) -> None:
        self.records = [DtcRecord(dtc, monitor, lamp) for dtc, monitor, lamp in entries]
        self.setting_on = True

    def sample(self, dt: float = MONITOR_PERIOD_S) -> None:
        """Run every monitor once and age the status bytes (``dt``: time since the last)."""
        if not self.setting_on:
            return
        for record in self.records:
            _age(record, record.monitor(), dt)

    def new_operation_cycle(self) -> None:
        """End the operation cycle and start the next (ISO 14229-1 D.2 / D.3)."""
        for record in self.records:
            status = record.status
            completed = not status & NOT_COMPLETED_THIS_CYCLE
            failed = bool(status & FAILED_THIS_CYCLE)
            if completed and not failed:
                status &= ~PENDING
                record.clean_cycles += 1
                if record.clean_cycles >= AGING_CYCLES:
                    status &= ~(CONFIRMED | WARNING_INDICATOR)
            elif failed:
                record.clean_cycles = 0
            status &= ~FAILED_THIS_CYCLE
            status |= NOT_COMPLETED_THIS_CYCLE
            record.status = status
            record.failed_for_s = 0.0

    def clear(self, code: int | None = None) -> bool:
        """ClearDiagnosticInformation: every DTC (``None``) or the one with ``code``; False if
        no DTC has that code."""
        hit = False
        for record in self.records:
            if code is None or record.dtc.code == code:
                hit = True
                record.status = INITIAL_STATUS
                record.fails = record.passes = record.clean_cycles = 0
                record.failed_for_s = 0.0
        return hit

    def matching(self, mask: int) -> list[tuple[int, int]]:
        """(code, status) of each DTC whose status has a bit of ``mask`` (reportDTCByStatusMask)."""
        mask &= AVAILABILITY_MASK
        return [(r.dtc.code, r.status) for r in self.records if r.status & mask]

    def status_of(self, name: str) -> int:
        return next(r.status for r in self.records if r.dtc.name == name)


def _age(record: DtcRecord, result: bool | None, dt: float) -> None:
    status = record.status
    if result is None:
        return
    status &= ~(NOT_COMPLETED_SINCE_CLEAR | NOT_COMPLETED_THIS_CYCLE)
    if result:
        record.passes = 0
        record.fails += 1
        if record.fails >= FAIL_SAMPLES:
            status |= TEST_FAILED | FAILED_THIS_CYCLE | PENDING | FAILED_SINCE_CLEAR
    else:
        record.fails = 0
        record.passes += 1
        if record.passes >= PASS_SAMPLES:
            status &= ~TEST_FAILED
    if status & TEST_FAILED:
        record.failed_for_s += dt
        if record.failed_for_s >= CONFIRM_S - 1e-9:
            status |= CONFIRMED
            record.clean_cycles = 0
    else:
        record.failed_for_s = 0.0
    if record.lamp and status & CONFIRMED and status & TEST_FAILED:
        status |= WARNING_INDICATOR
    elif not status & TEST_FAILED:
        status &= ~WARNING_INDICATOR
    record.status = status
