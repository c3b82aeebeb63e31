"""The published JSON Schemas (hatui/schemas/, shipped with the package) accept what hatui really
writes: results.json from write_all, and `hatui status --json` from a fake cluster. The validator is
a small Draft-07 subset (type, enum, required, properties, additionalProperties, items, $ref to
#/definitions, anyOf): what the schemas use, with no package the project does not declare."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from hatui.collectors.cluster import SCHEMA as STATUS_SCHEMA
from hatui.config import load_lab
from hatui.drill.plan import make_plan
from hatui.provenance import environment
from hatui.report import RESULTS_SCHEMA, write_all
from hatui.ui.fake_cluster import demo_state
from tests.test_report_outputs import REFUSAL, drill_results

REPO = Path(__file__).resolve().parents[1]
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def schema(name: str) -> dict:
    return json.loads(resources.files("hatui.schemas").joinpath(name).read_text(encoding="utf-8"))


def _is(value, kind: str) -> bool:
    if kind in ("number", "integer"):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and (kind == "number" or float(value).is_integer())
    return isinstance(value, TYPES[kind])


def problems(value, node: dict, root: dict, where: str = "$") -> list[str]:
    """Where `value` breaks `node` (a schema within `root`); empty: valid."""
    if "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return problems(value, target, root, where)
    if "anyOf" in node and all(problems(value, option, root, where) for option in node["anyOf"]):
        return [f"{where}: matches none of anyOf"]
    kinds = node.get("type")
    if kinds is not None and not any(_is(value, k) for k in ([kinds] if isinstance(kinds, str) else kinds)):
        return [f"{where}: {type(value).__name__} is not {kinds}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{where}: {value!r} not in {node['enum']}"]
    out = []
    if isinstance(value, dict):
        out += [f"{where}: {key!r} is required" for key in node.get("required", []) if key not in value]
        known, extra = node.get("properties", {}), node.get("additionalProperties", True)
        for key, item in value.items():
            if key in known:
                out += problems(item, known[key], root, f"{where}.{key}")
            elif extra is False:
                out.append(f"{where}: {key!r} is not allowed")
            elif isinstance(extra, dict):
                out += problems(item, extra, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            out += problems(item, node["items"], root, f"{where}[{i}]")
    return out


def test_the_validator_finds_what_breaks_a_schema():
    root = {"type": "object", "required": ["a"], "additionalProperties": False,
            "properties": {"a": {"$ref": "#/definitions/n"}, "b": {"type": "array", "items": {"enum": [1]}},
                           "c": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
            "definitions": {"n": {"type": ["integer", "null"]}}}
    assert problems({"a": 1, "b": [1], "c": None}, root, root) == []
    assert problems({"a": 1.5, "b": [2], "c": 3, "d": 0}, root, root) == [
        "$.a: float is not ['integer', 'null']", "$.b[0]: 2 not in [1]", "$.c: matches none of anyOf", "$: 'd' is not allowed"]
    assert problems({"a": True}, root, root) == ["$.a: bool is not ['integer', 'null']"]
    assert problems([], root, root) == ["$: list is not object"] and problems({}, root, root) == ["$: 'a' is required"]


@pytest.mark.parametrize("refused", [None, REFUSAL])
def test_results_json_matches_its_schema(tmp_path, refused):
    lab = load_lab(REPO / "lab.toml")
    plan = make_plan(lab, stacks=["native"], rates=[10, 20], repeat=2, conns=300)
    versions = {"master": {"heartbeat": "3.0.6", "drbd": None, "nginx": "nginx/1.22.1"}, "slave": None}
    write_all(tmp_path, [] if refused else drill_results(), lab_name=lab.name, plan_info=plan.info(), refused=refused,
              halted=None, environment=environment(versions, "cgroup v2: cpu.max 50000 100000"))
    doc = json.loads((tmp_path / "results.json").read_text())
    results = schema("results.schema.json")
    assert doc["schema"] == RESULTS_SCHEMA and results["properties"]["schema"]["enum"] == [RESULTS_SCHEMA]
    assert problems(doc, results, results) == []
    doc["runs"] = doc["runs"] or [{"run_id": "x"}]
    doc["runs"][0]["downtime"] = 1  # a field the schema does not publish is caught
    assert problems(doc, results, results)


def test_status_json_matches_its_schema():
    status = schema("status.schema.json")
    doc = demo_state(load_lab(REPO / "lab.toml")).to_json()
    assert doc["schema"] == STATUS_SCHEMA and status["properties"]["schema"]["enum"] == [STATUS_SCHEMA]
    assert doc["nodes"] and any(n["drbd"] for n in doc["nodes"]) and any(not n["reachable"] for n in doc["nodes"])
    assert problems(doc, status, status) == []
    # A reading with an HTTP check on a VIP carries the service object too.
    doc["pairs"][0]["service"] = {"ok": False, "status": 503, "served_by": None, "error": "HTTP 503", "latency_ms": 2.5}
    assert problems(doc, status, status) == []


def test_formats_md_names_the_schemas():
    text = (REPO / "docs" / "formats.md").read_text()
    for name in ("results.schema.json", "status.schema.json"):
        assert re.search(rf"hatui/schemas/{name}", text), name
