"""``bench runs``: an index of the run directories under a root, and metric trends across them.

DuckDB (embedded, no server) reads the run directories as they are, so thousands of runs (a road-
test campaign, a year of nightlies) index in seconds without a Python loop over their contents:

- the index is one query over every ``summary.json``: ``read_text`` + DuckDB's JSON functions, not
  ``read_json``, because ``read_json`` stops the whole query at the first damaged file and refuses
  an object larger than its ``maximum_object_size`` (16 MB by default; a summary with many
  evidence windows can be larger). A file that is not valid JSON, or not a summary (no plan, no
  known verdict), is listed as damaged; only those few are read again in Python
  (:func:`bench.summary.read_summary`) to say where and why.
- ``--metric Message.Signal:aggregate`` (repeatable) is one ``parquet_schema`` query to find which
  runs' ``signals/<Message>.parquet`` hold the signal, then one ``read_parquet`` query per metric
  over all of them, computed where the data lies, a column at a time. A signal that no run under
  the root has is an :class:`InputError` (exit 2) naming the signals the message does have.
- ``--plan NAME`` (or a plan file: its ``name:``) keeps only that plan's runs, so a trend never
  mixes plans; without it each plan has a trend of its own.

A directory that looks like a run (it has frames/, events.parquet, plan.yaml or summary.json) but
whose summary is missing or damaged is listed as damaged with the reason, never a crash.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..rundir import SUMMARY_FILE, looks_like_run, message_table
from ..summary import SEVERITY, read_summary

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
RUN_VERDICTS = (*SEVERITY, "aborted")
# the summary fields of the index, in the order of the query's list
SUMMARY_FIELDS = ("plan", "site", "verdict", "started_at", "ended_at", "frames")


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
    metrics: dict[str, float | None] = field(default_factory=dict)  # label → value
    metric_notes: dict[str, str] = field(default_factory=dict)  # label → why there is none

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
        else:  # reports/<bench>/<run>/, reports/nightly/<run>/, a campaign's runs
            found += [g for g in sorted(child.iterdir()) if g.is_dir() and looks_like_run(g)]
    return found


def index_runs(
    root: Path,
    metrics: Metric | Sequence[Metric] | None = None,
    *,
    plan: str | None = None,
) -> list[RunRow]:
    """Every run under ``root`` in date order (undated last), damaged ones included.

    ``metrics`` adds each aggregate per run; ``plan`` (a plan name, or a plan file whose
    ``name:`` to use) keeps only that plan's runs. An unknown signal in ``metrics``, or a plan no
    run under ``root`` has, is an :class:`InputError`."""
    import duckdb

    wanted = [metrics] if isinstance(metrics, Metric) else list(metrics or [])
    rows = [RunRow(path=str(p), name=p.name, status="ok") for p in find_run_dirs(Path(root))]
    con = duckdb.connect()
    try:
        _fill_from_summaries(con, rows)
        if plan is not None:
            rows = _only_plan(rows, plan, Path(root))
        ok = [r for r in rows if r.status == "ok"]
        schemas: dict[str, dict[str, set[str]]] = {}  # message → its tables' columns
        for metric in wanted:
            _fill_metric(con, ok, metric, Path(root), schemas)
    finally:
        con.close()
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(rows, key=lambda r: (r.date or far, r.name))


def _fill_from_summaries(con: Any, rows: Sequence[RunRow]) -> None:
    """One query over every summary.json; rows whose summary is missing or damaged say why."""
    by_file: dict[str, RunRow] = {}
    for row in rows:
        path = Path(row.path) / SUMMARY_FILE
        if path.is_file():
            by_file[str(path)] = row
        else:
            row.status, row.reason = "damaged", f"{SUMMARY_FILE} missing"
    if not by_file:
        return
    paths = ", ".join(f"'$.{name}'" for name in SUMMARY_FIELDS)
    query = f"""
        SELECT filename, ok,
               CASE WHEN ok THEN json_extract_string(content, [{paths},
                    '$.time_span[0]', '$.time_span[1]']) END AS fields,
               CASE WHEN ok THEN json_extract_string(content, '$.checks[*].verdict') END
        FROM (SELECT filename, content, json_valid(content) AS ok FROM read_text($files))
    """
    for filename, ok, fields, verdicts in _each_file(con, query, list(by_file)):
        row = by_file[filename]
        values = dict(zip((*SUMMARY_FIELDS, "t0", "t1"), fields or [], strict=False))
        if not ok or not values.get("plan") or values.get("verdict") not in RUN_VERDICTS:
            _damaged(row, Path(filename))
            continue
        row.plan, row.site, row.verdict = values["plan"], values["site"], values["verdict"]
        row.started_at = values["started_at"]
        row.frames = _number(values["frames"], int)
        row.checks = len(verdicts or [])
        row.failed = sum(1 for v in verdicts or [] if v == "fail")
        t0, t1 = _number(values["t0"], float), _number(values["t1"], float)
        span = t1 - t0 if t0 is not None and t1 is not None else None
        row.duration_s = span if span is not None else _seconds_between(
            values["started_at"], values["ended_at"]
        )  # fmt: skip


def _each_file(con: Any, query: str, files: list[str]) -> list[tuple[Any, ...]]:
    """The summary query over all files; if one cannot even be read (an I/O error), file by
    file, the unreadable ones as (file, False, None, None): listed as damaged, not a crash."""
    try:
        return con.execute(query, {"files": files}).fetchall()
    except Exception:  # duckdb.IOException and the like: find the file(s)
        rows = []
        for path in files:
            try:
                rows += con.execute(query, {"files": [path]}).fetchall()
            except Exception:
                rows.append((path, False, None, None))
        return rows


def _damaged(row: RunRow, path: Path) -> None:
    """The reason, from the reader ``bench report`` uses (only for the few damaged files)."""
    row.status = "damaged"
    try:
        read_summary(path)
    except InputError as exc:
        row.reason = str(exc).removeprefix(f"{path.parent}/")
    except OSError as exc:
        row.reason = f"summary.json unreadable ({exc.strerror or exc})"
    else:
        row.reason = "summary.json: damaged summary: not a run summary"


def _number(text: str | None, kind: type) -> Any:
    try:
        return kind(float(text)) if kind is int else kind(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        a, b = dt.datetime.fromisoformat(start or ""), dt.datetime.fromisoformat(end or "")
    except ValueError:
        return None
    return (b - a).total_seconds()


def plan_name(plan: str) -> str:
    """``--plan``: a plan's name, or a plan file whose ``name:`` is meant."""
    path = Path(plan)
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a readable plan ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise InputError(f"{path}: the plan has no name:")
        return data["name"]
    return plan


def _only_plan(rows: list[RunRow], plan: str, root: Path) -> list[RunRow]:
    name = plan_name(plan)
    kept = [r for r in rows if r.plan == name]
    plans = sorted({r.plan for r in rows if r.plan})
    if not kept and plans:
        close = difflib.get_close_matches(name, plans, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(
            f"--plan {plan!r}: no run of plan {name!r} under {root}{hint}; "
            f"plans there: {', '.join(plans)}"
        )
    return kept


def _fill_metric(
    con: Any,
    rows: Sequence[RunRow],
    metric: Metric,
    root: Path,
    schemas: dict[str, dict[str, set[str]]],
) -> None:
    """The aggregate per run: which tables hold the signal, then one query over all of them."""
    label = metric.label
    tables: dict[str, RunRow] = {}
    for row in rows:
        row.metrics[label] = None
        path = message_table(Path(row.path), metric.message)
        if path.is_file():
            tables[str(path)] = row
        else:
            row.metric_notes[label] = f"no signals/{metric.message}.parquet"
    if not rows:
        return
    if metric.message not in schemas:  # two metrics of one message read its footers once
        schemas[metric.message] = _columns(con, tables)
    columns = schemas[metric.message]
    files = []
    for path, row in tables.items():
        names = columns.get(path)
        if names is None:
            row.metric_notes[label] = f"signals/{metric.message}.parquet unreadable"
        elif metric.signal not in names or "timestamp" not in names:
            row.metric_notes[label] = (
                f"no column {metric.signal} in signals/{metric.message}.parquet"
            )
        else:
            files.append(path)
    if not files:
        known = sorted({n for names in columns.values() for n in names} - {"timestamp"})
        raise InputError(_unknown(metric, known, root))
    query = f"""
        SELECT filename, {metric.sql()} AS value
        FROM read_parquet($files, filename = true, union_by_name = true)
        GROUP BY filename
    """
    for filename, value in con.execute(query, {"files": files}).fetchall():
        row = tables[filename]
        if value is not None and math.isfinite(float(value)):
            row.metrics[label] = float(value)
        else:
            row.metric_notes[label] = "no samples"


def _columns(con: Any, tables: dict[str, Any]) -> dict[str, set[str]]:
    """Column names of each Parquet file (one query; file by file only if one is unreadable)."""
    if not tables:
        return {}
    # the root element of each schema ("schema", with children) is not a column
    query = "SELECT file_name, name FROM parquet_schema($files) WHERE num_children IS NULL"
    found: dict[str, set[str]] = {}
    try:
        for file_name, name in con.execute(query, {"files": list(tables)}).fetchall():
            found.setdefault(file_name, set()).add(name)
        return found
    except Exception:  # duckdb.Error: one damaged file fails the query; find it
        for path in tables:
            try:
                rows = con.execute(query, {"files": [path]}).fetchall()
            except Exception:
                continue
            found[path] = {name for _, name in rows}
        return found


def _unknown(metric: Metric, known: list[str], root: Path) -> str:
    text = f"--metric {metric.label!r}: "
    if not known:
        return text + f"no run under {root} has a signals/{metric.message}.parquet"
    close = difflib.get_close_matches(metric.signal, known, n=1)
    hint = f" (did you mean {metric.message}.{close[0]}?)" if close else ""
    shown = ", ".join(known[:12]) + (" …" if len(known) > 12 else "")
    return (
        text + f"no signal {metric.signal} in {metric.message} of the runs under {root}{hint}; "
        f"{metric.message} has {shown}"
    )


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


def _as_list(metrics: Metric | Sequence[Metric] | None) -> list[Metric]:
    return [metrics] if isinstance(metrics, Metric) else list(metrics or [])


def as_json(rows: Sequence[RunRow], metrics: Metric | Sequence[Metric] | None = None) -> str:
    """A list of runs; ``metrics`` per run as ``[{name, value, note}]`` (``metric``: the first)."""
    wanted = _as_list(metrics)
    data = []
    for row in rows:
        item = {k: v for k, v in asdict(row).items() if k not in ("metrics", "metric_notes")}
        item["metrics"] = [
            {
                "name": m.label,
                "value": row.metrics.get(m.label),
                "note": row.metric_notes.get(m.label) or None,
            }
            for m in wanted
        ]
        item["metric"] = item["metrics"][0] if item["metrics"] else None
        data.append(item)
    return json.dumps(data, indent=2, allow_nan=False)


def _cells(row: RunRow, metrics: Sequence[Metric], previous: dict[str, float]) -> list[str]:
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
    for metric in metrics:
        value = row.metrics.get(metric.label)
        before = previous.get(metric.label)
        if value is None:
            cells.append("—")
        elif before is None:
            cells.append(f"{value:.6g}")
        else:
            cells.append(f"{value:.6g} ({value - before:+.3g})")
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


def table_rows(
    rows: Sequence[RunRow], metrics: Metric | Sequence[Metric] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and cells; a metric's change is against the previous run of the same plan."""
    wanted = _as_list(metrics)
    header = ["date", "verdict", "plan", "site", "frames", "duration", "failed"]
    header += [m.label for m in wanted]
    header.append("run")
    body = []
    previous: dict[str | None, dict[str, float]] = {}
    for row in rows:
        last = previous.setdefault(row.plan, {})
        body.append(_cells(row, wanted, last))
        for label, value in row.metrics.items():
            if value is not None:
                last[label] = value
    return header, body


def trends(
    rows: Sequence[RunRow], metrics: Metric | Sequence[Metric] | None
) -> list[tuple[str, str]]:
    """(title, sparkline) per metric, and per plan where the runs hold several plans."""
    ok = [r for r in rows if r.status == "ok"]
    plans = list(dict.fromkeys(r.plan for r in ok))
    out = []
    for metric in _as_list(metrics):
        for plan in plans:
            line = sparkline([r.metrics.get(metric.label) for r in ok if r.plan == plan])
            if line.strip():
                title = metric.label if len(plans) == 1 else f"{metric.label} [{plan}]"
                out.append((title, line))
    return out


def print_runs(
    rows: Sequence[RunRow],
    metrics: Metric | Sequence[Metric] | None,
    root: Path,
    console: Any = None,
) -> None:
    """A rich table on a terminal; plain aligned text otherwise (pipes, CI logs, grep)."""
    from rich.console import Console

    console = console or Console()
    header, body = table_rows(rows, metrics)
    lines = trends(rows, metrics)
    if not console.is_terminal:
        console.out(_plain(header, body), highlight=False)
        for title, line in lines:
            console.out(f"trend {title}: {line}", highlight=False)
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
    for title, line in lines:
        console.print(Text(f"trend of {title} (oldest → newest): {line}"))


def _plain(header: list[str], body: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for cells in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines)
