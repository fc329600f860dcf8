"""``bench runs``: an index of the run directories under a root, and a metric's trend across them.

DuckDB (embedded, no server) reads the run directories as they are: one ``read_json`` over every
``summary.json`` for the index, one ``read_parquet`` over every run's ``signals/<Message>.parquet``
for ``--metric Message.Signal:aggregate`` (computed where the data lies, a column at a time, so a
month of nightly 10 M-frame runs is one query, not a month of DataFrames).

A directory that looks like a run (it has frames/, events.parquet, plan.yaml or summary.json) but
whose summary is missing or damaged is listed as damaged with the reason, never a crash: DuckDB's
multi-file JSON reader stops at the first broken file, so each summary is validated first with the
same reader ``bench report`` uses (:func:`bench.summary.read_summary`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..rundir import SUMMARY_FILE, looks_like_run, message_table
from ..summary import read_summary

RUN_NAME = re.compile(r"^(\d{8}-\d{6})-")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# aggregate name → SQL over the quoted column (%s); pNN is a percentile
AGGREGATES = {
    "min": "min(%s)",
    "max": "max(%s)",
    "mean": "avg(%s)",
    "avg": "avg(%s)",
    "median": "median(%s)",
    "std": "stddev_samp(%s)",
    "first": "arg_min(%s, timestamp)",
    "last": "arg_max(%s, timestamp)",
    "count": "count(%s)",
}
PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")
SPARK = "▁▂▃▄▅▆▇█"
SUMMARY_COLUMNS = {
    "plan": "VARCHAR",
    "site": "VARCHAR",
    "verdict": "VARCHAR",
    "started_at": "VARCHAR",
    "ended_at": "VARCHAR",
    "frames": "BIGINT",
    "time_span": "DOUBLE[]",
    "checks": "STRUCT(name VARCHAR, verdict VARCHAR)[]",
}


@dataclass(frozen=True)
class Metric:
    """``Message.Signal:aggregate``, validated (names are identifiers, the aggregate known)."""

    message: str
    signal: str
    aggregate: str

    @property
    def label(self) -> str:
        return f"{self.message}.{self.signal}:{self.aggregate}"

    @classmethod
    def parse(cls, text: str) -> Metric:
        reference, _, aggregate = text.partition(":")
        message, dot, signal = reference.partition(".")
        aggregate = aggregate.strip().lower() or "max"
        if not dot or not IDENTIFIER.match(message) or not IDENTIFIER.match(signal):
            raise InputError(f"--metric {text!r}: expected Message.Signal:aggregate")
        if aggregate not in AGGREGATES and not PERCENTILE.match(aggregate):
            known = ", ".join([*AGGREGATES, "p95 …"])
            raise InputError(f"--metric {text!r}: unknown aggregate {aggregate!r} (one of {known})")
        return cls(message, signal, aggregate)

    def sql(self) -> str:
        column = '"' + self.signal.replace('"', '""') + '"'
        match = PERCENTILE.match(self.aggregate)
        if match:
            return f"quantile_cont({column}, {float(match.group(1)) / 100})"
        return AGGREGATES[self.aggregate] % column


@dataclass
class RunRow:
    path: str
    name: str
    status: str  # ok | damaged
    reason: str = ""
    verdict: str | None = None
    plan: str | None = None
    site: str | None = None
    started_at: str | None = None
    frames: int | None = None
    duration_s: float | None = None
    checks: int | None = None
    failed: int | None = None
    metric: float | None = None
    metric_note: str = ""

    @property
    def date(self) -> dt.datetime | None:
        """When the run started: the summary, else the directory name's timestamp."""
        if self.started_at:
            try:
                value = dt.datetime.fromisoformat(self.started_at)
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            except ValueError:
                pass
        match = RUN_NAME.match(self.name)
        if match:
            return dt.datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=dt.UTC)
        return None


def find_run_dirs(root: Path) -> list[Path]:
    """``root`` itself if it is a run, else the runs one or two levels below it."""
    if not root.is_dir():
        raise InputError(f"{root}: no such directory")
    if looks_like_run(root):
        return [root]
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if looks_like_run(child):
            found.append(child)
        else:  # reports/<bench>/<run>/ or reports/nightly/<run>/
            found += [g for g in sorted(child.iterdir()) if g.is_dir() and looks_like_run(g)]
    return found


def index_runs(root: Path, metric: Metric | None = None) -> list[RunRow]:
    """Every run under ``root`` in date order (undated last), damaged ones included."""
    import duckdb

    rows: list[RunRow] = []
    valid: dict[str, RunRow] = {}
    for path in find_run_dirs(Path(root)):
        row = RunRow(path=str(path), name=path.name, status="ok")
        try:
            read_summary(path / SUMMARY_FILE)
        except InputError as exc:
            row.status = "damaged"
            missing = not (path / SUMMARY_FILE).exists()
            row.reason = f"{SUMMARY_FILE} missing" if missing else str(exc).removeprefix(f"{path}/")
        else:
            valid[str((path / SUMMARY_FILE).resolve())] = row
        rows.append(row)
    con = duckdb.connect()
    try:
        if valid:
            _fill_from_summaries(con, valid)
        if metric is not None:
            _fill_metric(con, [r for r in rows if r.status == "ok"], metric)
    finally:
        con.close()
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(rows, key=lambda r: (r.date or far, r.name))


def _fill_from_summaries(con: Any, valid: dict[str, RunRow]) -> None:
    columns = ", ".join(f"{k}: '{v}'" for k, v in SUMMARY_COLUMNS.items())
    query = f"""
        SELECT filename, plan, site, verdict, started_at, ended_at, frames,
               time_span[2] - time_span[1] AS span,
               len(checks) AS n_checks,
               (SELECT count(*) FROM unnest(checks) AS u(c) WHERE c.verdict = 'fail') AS failed
        FROM read_json($files, columns = {{{columns}}}, filename = true, format = 'auto')
    """
    for record in con.execute(query, {"files": list(valid)}).fetchall():
        filename, plan, site, verdict, started, ended, frames, span, n_checks, failed = record
        row = valid.get(str(Path(filename).resolve()))
        if row is None:
            continue
        row.plan, row.site, row.verdict, row.started_at = plan, site, verdict, started
        row.frames, row.checks, row.failed = frames, n_checks, failed
        row.duration_s = span if span is not None else _seconds_between(started, ended)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        a, b = dt.datetime.fromisoformat(start or ""), dt.datetime.fromisoformat(end or "")
    except ValueError:
        return None
    return (b - a).total_seconds()


def _fill_metric(con: Any, rows: Sequence[RunRow], metric: Metric) -> None:
    """One DuckDB query over the signal tables of every run that has the column."""
    files: dict[str, RunRow] = {}
    for row in rows:
        path = message_table(Path(row.path), metric.message)
        if not path.is_file():
            row.metric_note = f"no signals/{metric.message}.parquet"
            continue
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException):
            row.metric_note = f"signals/{path.name} unreadable"
            continue
        if metric.signal not in names or "timestamp" not in names:
            row.metric_note = f"no column {metric.signal} in signals/{path.name}"
            continue
        files[str(path.resolve())] = row
    if not files:
        return
    query = f"""
        SELECT filename, {metric.sql()} AS value
        FROM read_parquet($files, filename = true, union_by_name = true)
        GROUP BY filename
    """
    for filename, value in con.execute(query, {"files": list(files)}).fetchall():
        row = files.get(str(Path(filename).resolve()))
        if row is not None and value is not None and math.isfinite(float(value)):
            row.metric = float(value)
        elif row is not None:
            row.metric_note = "no samples"


# -- output ----------------------------------------------------------------------------------------


def sparkline(values: Sequence[float | None]) -> str:
    """▁▂▃▅▇ of the values in order; a gap where a run has none."""
    numbers = [v for v in values if v is not None]
    if not numbers:
        return ""
    low, high = min(numbers), max(numbers)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            index = 0 if span == 0 else round((v - low) / span * (len(SPARK) - 1))
            out.append(SPARK[index])
    return "".join(out)


def as_json(rows: Sequence[RunRow], metric: Metric | None) -> str:
    data = []
    for row in rows:
        item = asdict(row)
        item.pop("metric_note")
        item["metric"] = (
            {"name": metric.label, "value": row.metric, "note": row.metric_note or None}
            if metric
            else None
        )
        data.append(item)
    return json.dumps(data, indent=2, allow_nan=False)


def _cells(row: RunRow, metric: Metric | None, previous: float | None) -> list[str]:
    date = row.date
    cells = [
        date.strftime("%Y-%m-%d %H:%M") if date else "—",
        row.verdict if row.status == "ok" else "DAMAGED",
        row.plan or "",
        row.site or "",
        f"{row.frames:,}" if row.frames is not None else "",
        _duration(row.duration_s),
        f"{row.failed}/{row.checks}" if row.checks is not None else "",
    ]
    if metric is not None:
        if row.metric is None:
            cells.append("—")
        elif previous is None:
            cells.append(f"{row.metric:.6g}")
        else:
            cells.append(f"{row.metric:.6g} ({row.metric - previous:+.3g})")
    cells.append(row.name if row.status == "ok" else f"{row.name}: {row.reason}")
    return cells


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def table_rows(rows: Sequence[RunRow], metric: Metric | None) -> tuple[list[str], list[list[str]]]:
    header = ["date", "verdict", "plan", "site", "frames", "duration", "failed"]
    if metric is not None:
        header.append(metric.label)
    header.append("run")
    body = []
    previous = None
    for row in rows:
        body.append(_cells(row, metric, previous))
        if row.metric is not None:
            previous = row.metric
    return header, body


def print_runs(
    rows: Sequence[RunRow], metric: Metric | None, root: Path, console: Any = None
) -> None:
    """A rich table on a terminal; plain aligned text otherwise (pipes, CI logs, grep)."""
    from rich.console import Console

    console = console or Console()
    header, body = table_rows(rows, metric)
    trend = sparkline([r.metric for r in rows if r.status == "ok"]) if metric else ""
    if not console.is_terminal:
        console.out(_plain(header, body), highlight=False)
        if trend.strip():
            console.out(f"trend {metric.label if metric else ''}: {trend}", highlight=False)
        return
    from rich.table import Table
    from rich.text import Text

    colours = {"pass": "green", "marginal": "yellow", "fail": "bold red", "aborted": "bold red"}
    table = Table(title=f"Runs under {root} ({len(rows)})")
    for name in header:
        table.add_column(name, justify="right" if name in ("frames", "failed") else "left")
    for row, cells in zip(rows, body, strict=True):
        # Text, not markup: a plan called "[red]x" is shown as written
        texts = [Text(c) for c in cells]
        texts[1].stylize(colours.get(cells[1], "") if row.status == "ok" else "bold magenta")
        table.add_row(*texts)
    console.print(table)
    if trend.strip():
        console.print(f"trend of {metric.label if metric else ''} (oldest → newest): {trend}")


def _plain(header: list[str], body: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for cells in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines)
