"""Every check kind, imported for its :func:`~bench.checks.registry.register` call.

Adding a kind: write ``bench/checks/<kind>.py`` (plan model, ``evaluate``, optional live rule,
``KIND = register(CheckKind(...))``) and add it to this import list. Nothing else changes: the
plan's ``checks:`` union, the JSON Schema, ``bench validate``, the evaluator and the live monitor
all read the registry.
"""

from __future__ import annotations

from . import (  # noqa: F401  (imported to register)
    bus,
    counter,
    crc,
    cycle_time,
    did,  # judged after the run from the log's UDS exchanges; no live rule
    dtc,  # judged after the run from the log's UDS exchanges; no live rule
    range,
    rate,
    reaches,
    responds,
    statistic,
    timeout,
)
from .registry import KINDS

__all__ = ["KINDS"]
