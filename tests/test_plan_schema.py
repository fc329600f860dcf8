"""The JSON Schema is generated from the models and committed up to date; the plan reference
names every key and its examples are valid plans."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from bench.plan import Plan, load_plan, plan_json_schema
from bench.plan.checks import CHECK_MODELS
from bench.plan.model import (
    BusSettings,
    ChamberSpec,
    ChargeSpec,
    DriveCycleSpec,
    DriveSpec,
    FaultSpec,
    RampSpec,
    SendSpec,
    Step,
    VehicleState,
)
from bench.plan.schema import plan_json_schema_text
from tests.conftest import DBC_DIR, ROOT

SCHEMA = ROOT / "schemas" / "plan.schema.json"
REFERENCE = ROOT / "docs" / "plan-reference.md"


def test_committed_schema_is_up_to_date():
    assert SCHEMA.read_text(encoding="utf-8") == plan_json_schema_text(), (
        "regenerate: bench validate --schema > schemas/plan.schema.json"
    )


def test_schema_describes_every_key_and_check_kind():
    schema = plan_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) == {info.alias or n for n, info in Plan.model_fields.items()}
    assert set(schema["required"]) == {"name", "dbc"}
    check_refs = {
        ref["$ref"].rsplit("/", 1)[1] for ref in schema["properties"]["checks"]["items"]["oneOf"]
    }
    assert check_refs == {model.__name__ for model in CHECK_MODELS.values()}
    definitions = schema["$defs"]
    assert all(d.get("additionalProperties") is False for d in definitions.values())
    assert "for" in definitions["RangeCheck"]["properties"]  # aliases, as written in plans
    assert definitions["Step"]["properties"]["until"]["anyOf"][0]["type"] == "string"


def test_schema_accepts_the_fixture_plan_when_jsonschema_is_installed():
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load((ROOT / "tests" / "plans" / "good.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(data, plan_json_schema())
    data["steps"][0]["duraton"] = data["steps"][0].pop("duration")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, plan_json_schema())


# -- the reference document ------------------------------------------------------------------------


def reference_blocks() -> list[tuple[str, Any]]:
    """(section, data) of every YAML example, with the ``##`` section it is in."""
    text = REFERENCE.read_text(encoding="utf-8")
    blocks = []
    section = ""
    for match in re.finditer(r"^## ([^\n]+)$|^```yaml\n(.*?)^```", text, re.M | re.S):
        if match[1]:
            section = match[1]
        elif (data := yaml.safe_load(match[2])) is not None:
            blocks.append((section, data))
    return blocks


def test_reference_names_every_key():
    text = REFERENCE.read_text(encoding="utf-8")
    models = [
        Plan,
        Step,
        SendSpec,
        RampSpec,
        DriveCycleSpec,
        DriveSpec,
        ChargeSpec,
        ChamberSpec,
        BusSettings,
        VehicleState,
        FaultSpec,
        *CHECK_MODELS.values(),
    ]
    missing = [
        f"{model.__name__}.{info.alias or name}"
        for model in models
        for name, info in model.model_fields.items()
        if f"`{info.alias or name}`" not in text and f"{info.alias or name}:" not in text
    ]
    assert missing == []
    for kind in CHECK_MODELS:
        assert f"### {kind}" in text


def test_reference_examples_are_valid(tmp_path):
    blocks = reference_blocks()
    complete = [data for _, data in blocks if isinstance(data, dict) and "steps" in data]
    assert len(complete) == 1
    assembled: dict[str, Any] = {"name": "reference examples", "steps": [], "checks": []}
    for section, data in blocks:
        if isinstance(data, dict) and "steps" not in data:
            assembled.update(data)
        elif isinstance(data, list):
            assembled["checks" if section == "Checks" else "steps"].extend(data)
    dbcs = [DBC_DIR / n for n in ("battery.dbc", "motor.dbc", "vehicle.dbc")]
    (tmp_path / "cycles").mkdir()
    (tmp_path / "cycles" / "turpan_hill.csv").write_text("time_s,speed_kmh\n0,0\n60,40\n120,0\n")
    for index, data in enumerate([*complete, assembled]):
        path = tmp_path / f"example{index}.yaml"
        path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
        plan = load_plan(path, dbc_paths=dbcs)
        assert plan.steps and plan.checks
    kinds = {check.kind for check in load_plan(path, dbc_paths=dbcs).checks}
    assert kinds == set(CHECK_MODELS)
