"""Campaigns: many logs judged against one plan, on this machine's cores or a Dask cluster.

``bench evaluate LOG... --plan PLAN`` with more than one log (or a directory to search) is a
campaign: :func:`run_campaign` (in :mod:`.run`) finds the logs (:mod:`.discover`), judges each
into its own run directory (:mod:`.task`, :mod:`.executors`) and writes ``campaign.json``
(:mod:`.summary`), ``junit.xml`` and ``campaign.html`` (:mod:`bench.report.campaign`).
"""

from __future__ import annotations

from .discover import discover, is_log
from .run import CampaignOutcome, run_campaign
from .task import LogResult, LogTask, evaluate_one

__all__ = [
    "CampaignOutcome",
    "LogResult",
    "LogTask",
    "discover",
    "evaluate_one",
    "is_log",
    "run_campaign",
]
