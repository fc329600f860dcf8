"""The run directory (DESIGN.md contract): its one owner.

``reports/<YYYYmmdd-HHMMSS>-<plan-stem>/`` or ``--out DIR``. This package owns what a run
directory is: its layout and file names (:mod:`.layout`), its exclusive creation and the lock a
process holds while it uses it (:mod:`.claim`), the events schema and its parsing into the one
:class:`Event` (:mod:`.events`), and the stored inputs with their hashes (:mod:`.inputs`). Every
other module takes names, events and inputs from here; the frame recorder and its journal
recovery are :mod:`bench.record`.
"""

from __future__ import annotations

from .claim import (
    RunDirBusy,
    RunLock,
    claim_run_dir,
    create_run_dir,
    lock_run_dir,
    new_dated_dir,
    new_run_dir,
)
from .events import EVENT_SCHEMA, Event, parse_events, read_events
from .inputs import (
    check_dbc_names,
    check_same_inputs,
    copy_inputs,
    dbc_version,
    plan_run_dbcs,
    sha256_of,
    store_inputs,
    stored_dbc_paths,
    stored_dbcs,
)
from .layout import (
    DBC_DIR,
    DEFAULT_ROOT,
    EVENTS_FILE,
    FRAMES_DIR,
    JOURNAL_PATTERN,
    JUNIT_FILE,
    LOCK_FILE,
    LOG_FILE,
    NOT_LOGS,
    PLAN_FILE,
    REPORT_FILE,
    RUN_MARKERS,
    SEGMENT_PATTERN,
    SELECTION_FILE,
    SIGNALS_DIR,
    SUMMARY_FILE,
    TMP_SUFFIX,
    holds_recording,
    is_log_directory,
    journal_name,
    list_journals,
    list_segments,
    looks_like_run,
    message_file,
    message_table,
    segment_index,
    segment_name,
)

__all__ = [
    "DBC_DIR",
    "DEFAULT_ROOT",
    "EVENTS_FILE",
    "EVENT_SCHEMA",
    "FRAMES_DIR",
    "JOURNAL_PATTERN",
    "JUNIT_FILE",
    "LOCK_FILE",
    "LOG_FILE",
    "NOT_LOGS",
    "PLAN_FILE",
    "REPORT_FILE",
    "RUN_MARKERS",
    "SEGMENT_PATTERN",
    "SELECTION_FILE",
    "SIGNALS_DIR",
    "SUMMARY_FILE",
    "TMP_SUFFIX",
    "Event",
    "RunDirBusy",
    "RunLock",
    "check_dbc_names",
    "check_same_inputs",
    "claim_run_dir",
    "copy_inputs",
    "create_run_dir",
    "dbc_version",
    "holds_recording",
    "is_log_directory",
    "journal_name",
    "list_journals",
    "list_segments",
    "lock_run_dir",
    "looks_like_run",
    "message_file",
    "message_table",
    "new_dated_dir",
    "new_run_dir",
    "parse_events",
    "plan_run_dbcs",
    "read_events",
    "segment_index",
    "segment_name",
    "sha256_of",
    "store_inputs",
    "stored_dbc_paths",
    "stored_dbcs",
]
