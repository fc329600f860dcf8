"""``junit.xml``: one testcase per check, so CI (Jenkins, GitLab) shows checks as tests.

Mapping: ``pass`` and ``marginal`` pass (marginal adds a note in ``system-out``); ``fail`` is a
``<failure>``; ``inconclusive`` is a ``<failure type="inconclusive">`` too, because the exit code
treats it as not passed and nightly automation must not read it as green; ``error`` is an
``<error>``. The failure message names observed against limit and the first evidence window.
The output is deterministic (no wall-clock timestamp) so a re-evaluation reproduces it.

An aborted run adds one testcase of its own, ``run aborted``, as an ``<error>`` with the abort's
reason: the checks judged before the abort may all pass, and CI must not show such a run green
(its exit code is 3). Evidence windows are given in seconds since the log's first frame, the axis
of report.html (log timestamps are often wall-clock epochs, unreadable as 1.76371e+09); the
absolute timestamps follow in the details.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..summary import CheckResult, Summary


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def _evidence_text(check: CheckResult, t0: float) -> str:
    if not check.evidence:
        return "no evidence window"
    start, end = check.evidence[0]
    more = check.details.get("evidence_total", len(check.evidence)) - 1
    text = f"first evidence window [{start - t0:.3f} s, {end - t0:.3f} s] after log start"
    return text + (f" (+{more} more)" if more > 0 else "")


def _failure_message(check: CheckResult, t0: float) -> str:
    unit = f" {check.unit}" if check.unit else ""
    return (
        f"{check.message} | observed {_compact(check.observed)}{unit}, "
        f"limit {_compact(check.limit)} | {_evidence_text(check, t0)}"
    )


def _log_start(summary: Summary) -> float:
    """Origin of evidence times: the first frame, else the first step, else 0."""
    if summary.time_span:
        return float(summary.time_span[0])
    if summary.steps:
        return min(step.start for step in summary.steps)
    return 0.0


def junit_tree(summary: Summary) -> ET.ElementTree:
    counts = {
        verdict: sum(1 for c in summary.checks if c.verdict == verdict)
        for verdict in ("fail", "inconclusive", "error")
    }
    aborted = 1 if summary.aborted is not None or summary.verdict == "aborted" else 0
    t0 = _log_start(summary)
    suite_attrs = {
        "name": summary.plan,
        "tests": str(len(summary.checks) + aborted),
        "failures": str(counts["fail"] + counts["inconclusive"]),
        "errors": str(counts["error"] + aborted),
        "skipped": "0",
        "time": "0",
    }
    suites = ET.Element("testsuites", {**suite_attrs, "name": summary.plan})
    suite = ET.SubElement(suites, "testsuite", suite_attrs)
    properties = ET.SubElement(suite, "properties")
    for key in ("verdict", "site", "mode", "started_at", "interface", "channel", "seed"):
        value = getattr(summary, key)
        if value is not None:
            ET.SubElement(properties, "property", {"name": key, "value": str(value)})
    if summary.aborted is not None:
        ET.SubElement(properties, "property", {"name": "aborted", "value": summary.aborted.reason})
    for check in summary.checks:
        case = ET.SubElement(
            suite, "testcase", {"classname": summary.plan, "name": check.name, "time": "0"}
        )
        if check.verdict == "fail":
            node = ET.SubElement(
                case, "failure", {"type": check.kind, "message": _failure_message(check, t0)}
            )
            node.text = _details(check, t0)
        elif check.verdict == "inconclusive":
            node = ET.SubElement(
                case, "failure", {"type": "inconclusive", "message": check.message}
            )
            node.text = _details(check, t0)
        elif check.verdict == "error":
            node = ET.SubElement(case, "error", {"type": check.kind, "message": check.message})
            node.text = _details(check, t0)
        elif check.verdict == "marginal":
            ET.SubElement(case, "system-out").text = f"MARGINAL: {_failure_message(check, t0)}"
    if aborted:
        case = ET.SubElement(
            suite, "testcase", {"classname": summary.plan, "name": "run aborted", "time": "0"}
        )
        reason = summary.aborted.reason if summary.aborted else "the run was aborted"
        where = ""
        if summary.aborted is not None and summary.aborted.time is not None:
            where = f" at {summary.aborted.time - t0:.3f} s after log start"
        by = (
            f" (check {summary.aborted.check!r})"
            if summary.aborted and summary.aborted.check
            else ""
        )
        node = ET.SubElement(case, "error", {"type": "aborted", "message": f"{reason}{where}{by}"})
        node.text = "The run was aborted: checks after the abort point were not judged."
    ET.indent(suites)
    return ET.ElementTree(suites)


def _details(check: CheckResult, t0: float) -> str:
    lines = [
        f"verdict: {check.verdict}",
        f"message: {check.message}",
        f"observed: {_compact(check.observed)}",
        f"limit: {_compact(check.limit)}",
        f"margin: {check.margin}",
    ]
    if check.signals:
        lines.append(f"signals: {', '.join(check.signals)}")
    lines += [
        f"evidence: [{a - t0:.3f} s, {b - t0:.3f} s] after log start (t = [{a:.6f}, {b:.6f}])"
        for a, b in check.evidence
    ]
    return "\n".join(lines)


def write_junit(summary: Summary, path: Path) -> Path:
    """Write atomically (a CI job may pick the file up while a run is being re-evaluated)."""
    tmp = path.with_name(path.name + ".tmp")
    junit_tree(summary).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path


# -- campaigns: one test suite per log ---------------------------------------------------------


def log_suite(summary: Summary, label: str, log: str) -> ET.Element:
    """The ``<testsuite>`` of one log of a campaign: named after the log, its testcases' classname
    the log too (CI groups by classname, and every log has the same check names)."""
    suite = junit_tree(summary).getroot().find("testsuite")
    assert suite is not None  # junit_tree always makes one
    suite.set("name", label)
    for case in suite.iter("testcase"):
        case.set("classname", label)
    properties = suite.find("properties")
    if properties is not None:
        ET.SubElement(properties, "property", {"name": "log", "value": log})
        ET.SubElement(properties, "property", {"name": "plan", "value": summary.plan})
    return suite


def error_suite(label: str, log: str, kind: str, message: str) -> ET.Element:
    """A log that could not be judged: one ``<error>`` testcase saying why."""
    suite = ET.Element(
        "testsuite",
        {"name": label, "tests": "1", "failures": "0", "errors": "1", "skipped": "0", "time": "0"},
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "log", "value": log})
    case = ET.SubElement(suite, "testcase", {"classname": label, "name": "evaluate", "time": "0"})
    ET.SubElement(case, "error", {"type": kind, "message": message}).text = message
    return suite


def write_campaign_junit(name: str, suites: list[ET.Element], path: Path) -> Path:
    """``<testsuites>`` holding every log's suite, totals summed; written atomically."""
    totals = {key: 0 for key in ("tests", "failures", "errors", "skipped")}
    for suite in suites:
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    root = ET.Element("testsuites", {"name": name, **{k: str(v) for k, v in totals.items()}})
    root.set("time", "0")
    root.extend(suites)
    ET.indent(root)
    tmp = path.with_name(path.name + ".tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path
