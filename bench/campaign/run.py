"""``bench evaluate LOG... --plan PLAN``: judge many logs against one plan (a campaign).

Steps: check the plan once here (a bad plan is exit 2 before any log is touched), find the logs
(:mod:`.discover`), judge each into its own run directory ``--out/<log>/`` (:mod:`.executors`, in
this machine's processes or on a Dask cluster), then write the campaign summary into ``--out``:
``campaign.json`` (:mod:`.summary`), ``junit.xml`` (one test suite per log) and ``campaign.html``.

The run directories sit directly under ``--out``, so ``bench runs --out`` (and ``bench runs`` of
the folder holding campaigns) lists every judged log. ``--out`` must be new, empty, or an earlier
campaign's directory (its run directories of the same logs are replaced, those of logs this
campaign does not have are removed: :func:`remove_stale_runs`). The exit code is the
worst over the logs: 0 all passed, 1 a check did not pass, 2 a log could not be read, 3 a run in
the campaign was aborted or a log was lost with its worker.
"""

from __future__ import annotations

import datetime as dt
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HarnessError, InputError
from ..logfiles.base import known_formats
from .discover import Discovery, discover
from .executors import connect, default_jobs, run_tasks
from .progress import CampaignProgress
from .summary import CAMPAIGN_FILE, campaign_data, write_campaign_json
from .task import LogResult, LogTask

JUNIT_FILE = "junit.xml"


@dataclass
class CampaignOutcome:
    out_dir: Path
    data: dict[str, Any]
    results: list[LogResult]

    @property
    def exit_code(self) -> int:
        return int(self.data["exit_code"])


def check_campaign_dir(out_dir: Path) -> None:
    """``--out`` of a campaign: new, empty, or a campaign directory (it has campaign.json)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out must be a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / CAMPAIGN_FILE).is_file():
        raise InputError(
            f"{out_dir}: not empty and not a campaign directory; give a new or empty --out"
        )


def remove_stale_runs(out: Path, kept: set[Path]) -> list[Path]:
    """Remove the run directories an earlier campaign in ``out`` judged for logs this one does
    not have; returns them.

    ``--out`` may be an earlier campaign's directory: its run directories of the same logs are
    replaced as they are judged, but one of a log that is gone would stay beside the new
    ``campaign.json`` and be listed by ``bench runs`` as if it belonged to it. Only what the old
    ``campaign.json`` names as its run directories, directly under ``out``, and that holds a
    run's files is removed: nothing a user put there."""
    import json
    import shutil

    from ..rundir import SUMMARY_FILE, holds_recording

    try:
        earlier = json.loads((out / CAMPAIGN_FILE).read_text(encoding="utf-8"))
        listed = [str(log["run_dir"]) for log in earlier.get("logs", []) if log.get("run_dir")]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []  # no earlier campaign (or not one bench wrote): nothing is bench's to remove
    removed = []
    for name in listed:
        path = (out / name).resolve()
        if path.parent != out or path in kept or not path.is_dir():
            continue
        if holds_recording(path) or (path / SUMMARY_FILE).is_file():
            shutil.rmtree(path)
            removed.append(path)
    return removed


def default_campaign_dir(plan_path: Path) -> Path:
    from ..rundir import DEFAULT_ROOT, new_dated_dir

    return new_dated_dir(DEFAULT_ROOT, f"campaign-{plan_path.stem}")


def run_campaign(
    logs: Sequence[Path | str],
    plan_path: Path,
    *,
    dbc_paths: Sequence[Path] | None = None,
    out_dir: Path | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    progress: CampaignProgress | None = None,
    console: Any = None,
    selection: Any = None,
) -> CampaignOutcome:
    """Judge every log under ``logs`` against ``plan_path``; write the campaign summary.

    Raises :class:`InputError` (exit 2, nothing judged) for a bad plan, a missing LOG argument, no
    logs found, or an unusable ``--out``; :class:`~bench.errors.HarnessError` (exit 3) when the
    Dask scheduler cannot be reached. A log that cannot be judged is an ``error`` row.
    ``selection``: a :class:`~bench.channels.FrameSelection` for every log (``--channel``)."""
    from ..plan import load_plan

    plan_path = Path(plan_path).resolve()
    dbcs = tuple(str(Path(p).resolve()) for p in dbc_paths) if dbc_paths else None
    plan = load_plan(plan_path, dbc_paths=[Path(p) for p in dbcs] if dbcs else None)
    if jobs is not None and scheduler is not None:
        raise InputError("give --jobs or --scheduler, not both")
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs {jobs}: give at least 1")
    if out_dir is not None:
        check_campaign_dir(Path(out_dir))
    found: Discovery = discover(logs, exclude=[out_dir] if out_dir is not None else [])
    if not found.logs:
        where = ", ".join(str(p) for p in logs)
        raise InputError(f"{where}: no logs found ({known_formats()}, or run directories)")
    client = connect(scheduler) if scheduler is not None else None  # before anything is written
    try:
        return _judge_all(
            found, plan.name, plan_path, dbcs, out_dir, jobs, client, progress, console,
            selection,
        )  # fmt: skip
    finally:
        if client is not None:
            client.close()


def _judge_all(
    found: Discovery,
    plan_name: str,
    plan_path: Path,
    dbcs: tuple[str, ...] | None,
    out_dir: Path | None,
    jobs: int | None,
    client: Any,
    progress: CampaignProgress | None,
    console: Any,
    selection: Any = None,
) -> CampaignOutcome:
    chosen = None if selection is None else (selection.channels, selection.direction)
    out = Path(out_dir) if out_dir is not None else default_campaign_dir(plan_path)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    tasks = [
        LogTask(str(entry.path), entry.label, str(out / entry.label), str(plan_path), dbcs, chosen)
        for entry in found.logs
    ]
    remove_stale_runs(out, {Path(t.run_dir) for t in tasks})
    executor: dict[str, Any] = (
        {"scheduler": client.scheduler.address} if client else {"jobs": jobs or default_jobs()}
    )
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    results: dict[str, LogResult] = {}

    def summarise() -> dict[str, Any]:
        ordered = [results[t.label] for t in tasks if t.label in results]
        data = campaign_data(
            ordered,
            out_dir=out,
            plan_name=plan_name,
            plan_file=plan_path,
            executor=executor,
            started_at=started_at,
            ended_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            seconds=time.perf_counter() - started,
            skipped=found.skipped,
            interrupted=len(ordered) < len(tasks),
        )
        write_outputs(out, data, ordered)
        return data

    progress = progress or CampaignProgress(len(tasks), console)
    try:
        with progress:
            for result in run_tasks(tasks, jobs=jobs, client=client):
                results[result.label] = result
                progress.done(result)
    except BaseException:  # Ctrl-C, a lost scheduler: keep what was judged, then report it
        if results:
            summarise()
        raise
    data = summarise()
    return CampaignOutcome(out, data, [results[t.label] for t in tasks])


def write_outputs(out: Path, data: dict[str, Any], results: Sequence[LogResult]) -> None:
    """campaign.json, junit.xml (each log's suite as its worker built it) and campaign.html."""
    from ..report.campaign import write_campaign_page
    from ..report.junit import write_campaign_junit

    suites = [ET.fromstring(r.junit) for r in results if r.junit]
    try:
        write_campaign_json(data, out / CAMPAIGN_FILE)
        write_campaign_junit(f"campaign: {data['plan']}", suites, out / JUNIT_FILE)
    except OSError as exc:  # a full or read-only disk: no half file left, one line, exit 3
        for name in (CAMPAIGN_FILE, JUNIT_FILE):
            (out / (name + ".tmp")).unlink(missing_ok=True)
        raise HarnessError(
            f"{out}: cannot write the campaign summary ({exc.strerror or exc}); "
            "the lines above are what was judged"
        ) from None
    write_campaign_page(out, data)  # raises HarnessError itself, leaving no half page
