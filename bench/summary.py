"""The result of a run or an evaluation: ``summary.json`` (DESIGN.md contract, schema version 1).

Verdicts of a check: ``pass``, ``marginal`` (a pass close to failing), ``fail``, ``inconclusive``
(no data to judge) and ``error`` (could not evaluate). The run's verdict is the worst of its checks,
or ``aborted``. Exit codes follow from it (see :func:`exit_code`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import EXIT_ABORTED, EXIT_FAIL, EXIT_PASS, InputError, one_line

Verdict = Literal["pass", "marginal", "fail", "inconclusive", "error"]
RunVerdict = Literal["pass", "marginal", "fail", "inconclusive", "error", "aborted"]

# Worse verdicts sort later. A failure is the most definite bad news; an error or a check that had
# no data to judge is not a pass either, so nightly automation must not read it as one.
SEVERITY: dict[str, int] = {"pass": 0, "marginal": 1, "inconclusive": 2, "error": 3, "fail": 4}
SCHEMA_VERSION = 1


class CheckResult(BaseModel):
    """One check's verdict with its evidence."""

    model_config = ConfigDict(extra="allow")

    name: str
    kind: str
    verdict: Verdict
    observed: Any = Field(None, description="The value judged, or named values (min/mean/max …).")
    limit: Any = Field(
        None, description="The limits applied, e.g. {'max': 55, 'marginal_max': 50}."
    )
    margin: float | None = Field(
        None, description="Distance from the observed value to the nearest limit; < 0 is outside."
    )
    unit: str = ""
    evidence: list[tuple[float, float]] = Field(
        default_factory=list, description="[t_start, t_end] windows that support the verdict."
    )
    message: str = Field("", description="One line for a person: what was seen against what.")
    signals: list[str] = Field(default_factory=list, description="Message.Signal names it judged.")
    abort: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


class StepRecord(BaseModel):
    name: str
    start: float
    end: float | None = None
    status: str = "done"  # done | failed | timeout | aborted | skipped


class Abort(BaseModel):
    reason: str
    time: float | None = None
    check: str | None = None


class Summary(BaseModel):
    """Everything a report needs besides the frames and signals."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    plan: str
    plan_file: str | None = None
    site: str | None = None
    dut: dict[str, Any] = Field(default_factory=dict)
    bench: dict[str, Any] = Field(default_factory=dict)
    verdict: RunVerdict
    mode: str = "evaluate"  # lockstep | realtime | evaluate
    started_at: str | None = None  # ISO 8601, wall clock
    ended_at: str | None = None
    time_span: tuple[float, float] | None = None  # first and last frame timestamp of the log
    frames: int = 0
    interface: str | None = None
    channel: str | None = None
    seed: int | None = None
    software: dict[str, str] = Field(default_factory=dict)
    dbc: list[dict[str, str]] = Field(default_factory=list)  # [{"file": …, "sha256": …}]
    skipped: list[str] = Field(default_factory=list, description="Inputs skipped, with reasons.")
    aborted: Abort | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    bus: dict[str, Any] = Field(default_factory=dict)  # error frames, unknown ids, short frames …
    checks: list[CheckResult] = Field(default_factory=list)
    diagnostics: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Every UDS exchange of the log (bench.diag.log.Exchange.to_dict), in time "
        "order: request, response, outcome, decoded DTCs with status bits, DID values.",
    )

    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if SEVERITY[c.verdict] >= SEVERITY["inconclusive"]]


def worst(verdicts: list[str]) -> Verdict:
    """The worst verdict; no checks at all is ``inconclusive`` (nothing was judged)."""
    if not verdicts:
        return "inconclusive"
    return max(verdicts, key=lambda v: SEVERITY[v])  # type: ignore[return-value]


def run_verdict(checks: list[CheckResult], aborted: bool = False) -> RunVerdict:
    return "aborted" if aborted else worst([c.verdict for c in checks])


def exit_code(verdict: str) -> int:
    """0 when every check passed (marginal is a pass), 3 when aborted, else 1."""
    if verdict in ("pass", "marginal"):
        return EXIT_PASS
    if verdict == "aborted":
        return EXIT_ABORTED
    return EXIT_FAIL


def summary_json(summary: Summary) -> str:
    """summary.json's text: always strict JSON. NaN and ±inf anywhere (a log with a NaN or
    infinite timestamp, a signal that was NaN) are written as ``null`` — JSON has no such
    numbers, and a reader in another language must be able to load every summary."""
    keep_promises(summary)
    data = json_safe(summary.model_dump(mode="json"))
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def keep_promises(summary: Summary) -> None:
    """The last gate before a summary is written: every check passes through
    :func:`bench.checks.results.enforce_promise` (a pass never has a negative margin, nothing is
    NaN), whoever built it; the run's verdict follows a check that had to be refused."""
    from .checks.results import enforce_promise  # bench.checks builds on this module

    before = [c.verdict for c in summary.checks]
    summary.checks = [enforce_promise(c) for c in summary.checks]
    if [c.verdict for c in summary.checks] != before and summary.verdict != "aborted":
        summary.verdict = run_verdict(summary.checks)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (dicts, lists, tuples walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_summary(summary: Summary, path: Path) -> None:
    """Write atomically, so a reader never sees half a file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(summary_json(summary))
    tmp.replace(path)


def read_summary(path: Path) -> Summary:
    """Read ``summary.json``; a missing or damaged file is an InputError naming what is wrong."""
    if not path.is_file():
        raise InputError(f"{path}: no summary.json (not a run directory, or never evaluated)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f":{exc.lineno}:{exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InputError(f"{path}{where}: damaged summary: {one_line(exc)}") from None
    try:
        return Summary.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: damaged summary: {place}: {first['msg']}") from None
