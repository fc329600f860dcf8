"""The JSON Schema of plans, generated from the models (for editor completion and checks).

``schemas/plan.schema.json`` is this output, committed; a test fails when it is out of date
(regenerate with ``bench validate --schema > schemas/plan.schema.json``). The schema describes
the shape only: names are checked against the DBCs by ``bench validate``.
"""

from __future__ import annotations

import json
from typing import Any

from .model import Plan
from .repeat import MAX_REPEAT


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema(mode="validation")
    _allow_repeat_groups(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _allow_repeat_groups(schema: dict[str, Any]) -> None:
    """A ``steps:`` item may be a ``repeat:`` group (expanded by the loader, see
    :mod:`bench.plan.repeat`; the models only ever see steps)."""
    item = {"anyOf": [{"$ref": "#/$defs/Step"}, {"$ref": "#/$defs/RepeatGroup"}]}
    schema["$defs"]["RepeatGroup"] = {
        "title": "RepeatGroup",
        "description": "Run these steps `repeat` times; each step's name gets the index of the "
        "repetition, from 1: wot[1], wot[2] … (nested groups: wot[2][3]).",
        "type": "object",
        "properties": {
            "repeat": {"type": "integer", "minimum": 1, "maximum": MAX_REPEAT},
            "steps": {"type": "array", "minItems": 1, "items": item},
        },
        "required": ["repeat", "steps"],
        "additionalProperties": False,
    }
    schema["properties"]["steps"]["items"] = item


def plan_json_schema_text() -> str:
    """The schema as committed: stable key order, two-space indent, a final newline."""
    return json.dumps(plan_json_schema(), indent=2, ensure_ascii=False) + "\n"
