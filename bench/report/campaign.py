"""``campaign.html``: one self-contained page for a campaign of many logs judged against one plan.

Built from ``campaign.json`` alone (so it re-renders anywhere): the campaign's verdict and counts,
the checks with their verdict counts and the worst value observed for each (and in which log), the
logs × checks verdict matrix (worst logs first; each cell's tooltip the check's message), and the
logs that could not be judged with the reason. Like ``report.html`` it needs no network: CSS and
the small sorting script are inline, the Content-Security-Policy forbids any request, and
everything from logs, plans and DBCs is escaped by jinja2. It carries no plotly (no plots), so a
campaign of thousands of logs stays a few MB. Links go to each log's ``report.html`` relative to
the page, so the campaign directory can be archived and moved as a whole.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .html import display_scale, environment, fmt_number, fmt_seconds, fmt_value, write_page

PAGE_NAME = "campaign.html"
SHORT = {"pass": "P", "marginal": "M", "fail": "F", "inconclusive": "I", "error": "E"}


@dataclass
class Column:
    index: int
    name: str
    kind: str
    counts: list[tuple[str, int]]
    worst_verdict: str | None
    worst_value: str
    worst_margin: str
    worst_log: str
    worst_message: str


@dataclass
class Row:
    label: str
    verdict: str
    status: str
    frames: str
    seconds: str
    href: str | None
    error: str
    cells: list[tuple[str, str] | None]  # (verdict, tooltip) per column, None: not in this log
    severity: int


def _columns(data: dict[str, Any]) -> list[Column]:
    from ..campaign.summary import LOG_SEVERITY

    columns = []
    for index, check in enumerate(data.get("checks", []), start=1):
        worst = check.get("worst") or {}
        # seconds below one read as ms, as in report.html (a 20 ms cycle time, not 0.02 s)
        scale, unit = display_scale(check.get("unit") or "", worst.get("observed"))
        margin = worst.get("margin")
        counts = sorted(check.get("counts", {}).items(), key=lambda kv: -LOG_SEVERITY.get(kv[0], 0))
        columns.append(
            Column(
                index=index,
                name=check["name"],
                kind=check.get("kind", ""),
                counts=counts,
                worst_verdict=worst.get("verdict"),
                worst_value=fmt_value(worst.get("observed"), unit, scale) if worst else "—",
                worst_margin=fmt_number(margin * scale if isinstance(margin, float) else margin),
                worst_log=worst.get("log", ""),
                worst_message=worst.get("message", ""),
            )
        )
    return columns


def _rows(data: dict[str, Any], columns: list[Column]) -> list[Row]:
    from ..campaign.summary import LOG_SEVERITY

    rows = []
    for log in data.get("logs", []):
        by_name = {c["name"]: c for c in log.get("checks", [])}
        cells: list[tuple[str, str] | None] = []
        for column in columns:
            check = by_name.get(column.name)
            if check is None:
                cells.append(None)
                continue
            tip = f"{column.name}: {check['verdict']} — {check.get('message', '')}"
            cells.append((check["verdict"], tip))
        run_dir = log.get("run_dir") or ""
        ok = log.get("status") == "ok"
        rows.append(
            Row(
                label=log["label"],
                verdict=log["verdict"],
                status=log.get("status", "ok"),
                frames=f"{log['frames']:,}" if log.get("frames") is not None else "",
                seconds=fmt_seconds(log.get("seconds")),
                href=f"{run_dir}/report.html" if ok and run_dir and not Path(run_dir).is_absolute()
                else None,
                error=log.get("error") or "",
                cells=cells,
                severity=LOG_SEVERITY.get(log["verdict"], 0),
            )
        )  # fmt: skip
    return sorted(rows, key=lambda r: -r.severity)  # stable: worst first, then given order


def build_campaign_page(data: dict[str, Any]) -> str:
    """The page for ``campaign.json``'s content, as one HTML string."""
    columns = _columns(data)
    rows = _rows(data, columns)
    context = {
        "title": f"Campaign: {data.get('plan', '')} — {data.get('verdict', '').upper()}",
        "version": __version__,
        "data": data,
        "columns": columns,
        "rows": rows,
        "errors": [r for r in rows if r.status != "ok"],
        "short": SHORT,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "plotly_js": "",  # no plots on this page
    }
    return environment().get_template("campaign.html.j2").render(context)


def write_campaign_page(out_dir: Path, data: dict[str, Any]) -> Path:
    target = Path(out_dir) / PAGE_NAME
    write_page(target, build_campaign_page(data))
    return target
