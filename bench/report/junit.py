"""``junit.xml``: one testcase per check, so CI (Jenkins, GitLab) shows checks as tests.

Mapping: ``pass`` and ``marginal`` pass (marginal adds a note in ``system-out``); ``fail`` is a
``<failure>``; ``inconclusive`` is a ``<failure type="inconclusive">`` too, because the exit code
treats it as not passed and nightly automation must not read it as green; ``error`` is an
``<error>``. The failure message names observed against limit and the first evidence window.
The output is deterministic (no wall-clock timestamp) so a re-evaluation reproduces it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..summary import CheckResult, Summary


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def _evidence_text(check: CheckResult) -> str:
    if not check.evidence:
        return "no evidence window"
    start, end = check.evidence[0]
    more = check.details.get("evidence_total", len(check.evidence)) - 1
    text = f"first evidence window [{start:.6g} s, {end:.6g} s]"
    return text + (f" (+{more} more)" if more > 0 else "")


def _failure_message(check: CheckResult) -> str:
    unit = f" {check.unit}" if check.unit else ""
    return (
        f"{check.message} | observed {_compact(check.observed)}{unit}, "
        f"limit {_compact(check.limit)} | {_evidence_text(check)}"
    )


def junit_tree(summary: Summary) -> ET.ElementTree:
    counts = {
        verdict: sum(1 for c in summary.checks if c.verdict == verdict)
        for verdict in ("fail", "inconclusive", "error")
    }
    suite_attrs = {
        "name": summary.plan,
        "tests": str(len(summary.checks)),
        "failures": str(counts["fail"] + counts["inconclusive"]),
        "errors": str(counts["error"]),
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
                case, "failure", {"type": check.kind, "message": _failure_message(check)}
            )
            node.text = _details(check)
        elif check.verdict == "inconclusive":
            node = ET.SubElement(
                case, "failure", {"type": "inconclusive", "message": check.message}
            )
            node.text = _details(check)
        elif check.verdict == "error":
            node = ET.SubElement(case, "error", {"type": check.kind, "message": check.message})
            node.text = _details(check)
        elif check.verdict == "marginal":
            ET.SubElement(case, "system-out").text = f"MARGINAL: {_failure_message(check)}"
    ET.indent(suites)
    return ET.ElementTree(suites)


def _details(check: CheckResult) -> str:
    lines = [
        f"verdict: {check.verdict}",
        f"message: {check.message}",
        f"observed: {_compact(check.observed)}",
        f"limit: {_compact(check.limit)}",
        f"margin: {check.margin}",
    ]
    if check.signals:
        lines.append(f"signals: {', '.join(check.signals)}")
    lines += [f"evidence: [{a:.6f}, {b:.6f}]" for a, b in check.evidence]
    return "\n".join(lines)


def write_junit(summary: Summary, path: Path) -> Path:
    """Write atomically (a CI job may pick the file up while a run is being re-evaluated)."""
    tmp = path.with_name(path.name + ".tmp")
    junit_tree(summary).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path
