"""The JSON Schema of plans, generated from the models (for editor completion and checks).

``schemas/plan.schema.json`` is this output, committed; a test fails when it is out of date
(regenerate with ``bench validate --schema > schemas/plan.schema.json``). The schema describes
the shape only: names are checked against the DBCs by ``bench validate``.
"""

from __future__ import annotations

import json
from typing import Any

from .model import Plan


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def plan_json_schema_text() -> str:
    """The schema as committed: stable key order, two-space indent, a final newline."""
    return json.dumps(plan_json_schema(), indent=2, ensure_ascii=False) + "\n"
