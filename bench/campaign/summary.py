"""The campaign summary: ``campaign.json`` (schema_version 1) built from the logs' small results.

Shape::

    {"schema_version": 1, "kind": "campaign", "plan": name, "plan_file": path,
     "started_at": ISO, "ended_at": ISO, "seconds": wall s,
     "executor": {"jobs": N} | {"scheduler": address},
     "verdict": worst log verdict, "exit_code": worst exit code over the logs,
     "counts": {verdict: logs}, "skipped": ["path: reason", …],
     "frames": frames over all logs,
     "logs": [{label, log, run_dir, status, verdict, exit_code, frames, seconds, cpu_seconds,
               error, skipped, worker: "host:pid",
               checks: [{name, kind, verdict, observed, limit, margin, unit, message}]}],
     "checks": [{name, kind, unit, counts: {verdict: logs},
                 worst: {log, verdict, observed, value, margin, message} | null}]}

``"interrupted": true`` is added when not every log was judged (Ctrl-C, a lost scheduler).
``checks[].worst`` is the check's worst observation over the campaign: the log with the worst
verdict, among equals the one with the smallest margin (closest to, or furthest past, its limit);
``value`` is its observed value as one number where it has one (the side of the limit, as in
``bench compare``). ``run_dir`` is relative to the campaign directory when it lies inside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..summary import SEVERITY, CheckResult
from .task import LogResult

SCHEMA_VERSION = 1
# a run's verdicts and the campaign's: aborted runs are the worst news, then as for checks
LOG_SEVERITY = {**SEVERITY, "aborted": max(SEVERITY.values()) + 1}
CAMPAIGN_FILE = "campaign.json"


def worst_verdict(verdicts: Sequence[str]) -> str:
    if not verdicts:
        return "inconclusive"
    return max(verdicts, key=lambda v: LOG_SEVERITY.get(v, 0))


def check_columns(results: Sequence[LogResult]) -> list[dict[str, Any]]:
    """One entry per check name (first-seen order): verdict counts and the worst observation."""
    columns: dict[str, dict[str, Any]] = {}
    best_key: dict[str, tuple[float, ...]] = {}
    for result in results:
        for check in result.checks:
            name = check["name"]
            column = columns.setdefault(
                name,
                {"name": name, "kind": check["kind"], "unit": check.get("unit") or "",
                 "counts": {}, "worst": None},
            )  # fmt: skip
            verdict = check["verdict"]
            column["counts"][verdict] = column["counts"].get(verdict, 0) + 1
            key = _badness(check)
            if name not in best_key or key > best_key[name]:
                best_key[name] = key
                column["worst"] = {
                    "log": result.label,
                    "verdict": verdict,
                    "observed": check.get("observed"),
                    "value": _scalar(check),
                    "margin": check.get("margin"),
                    "message": check.get("message", ""),
                }
    return list(columns.values())


def _badness(check: dict[str, Any]) -> tuple[float, ...]:
    """Larger is worse: verdict severity first, then a smaller margin."""
    margin = check.get("margin")
    severity = float(SEVERITY.get(check["verdict"], 0))
    if isinstance(margin, int | float) and not isinstance(margin, bool):
        return (severity, 1.0, -float(margin))
    return (severity, 0.0, 0.0)


def _scalar(check: dict[str, Any]) -> float | None:
    from ..report.html import scalar_observed

    try:
        return scalar_observed(CheckResult.model_validate(check))
    except ValueError:  # pydantic's ValidationError: a check dict from another version
        return None


def campaign_data(
    results: Sequence[LogResult],
    *,
    out_dir: Path,
    plan_name: str,
    plan_file: Path,
    executor: dict[str, Any],
    started_at: str,
    ended_at: str,
    seconds: float,
    skipped: Sequence[str] = (),
    interrupted: bool = False,
) -> dict[str, Any]:
    """The content of ``campaign.json``; ``results`` in the order the logs were given."""
    logs = []
    for result in results:
        entry = result.to_json()
        entry["run_dir"] = _relative(Path(result.run_dir), out_dir)
        logs.append(entry)
    counts: dict[str, int] = {}
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "campaign",
        "plan": plan_name,
        "plan_file": str(plan_file),
        "started_at": started_at,
        "ended_at": ended_at,
        "seconds": round(seconds, 3),
        "executor": executor,
        "verdict": worst_verdict([r.verdict for r in results]),
        "exit_code": max((r.exit_code for r in results), default=0),
        "counts": dict(sorted(counts.items(), key=lambda kv: -LOG_SEVERITY.get(kv[0], 0))),
        "frames": sum(r.frames or 0 for r in results),
        "skipped": list(skipped),
        "logs": logs,
        "checks": check_columns(results),
    }
    if interrupted:
        data["interrupted"] = True
    return data


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def write_campaign_json(data: dict[str, Any], path: Path) -> Path:
    """Atomically: a reader (CI picking up results) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")
    tmp.replace(path)
    return path
