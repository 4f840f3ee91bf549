"""Every shipped example validates, and the plan invariants hold for each of them."""

import json

import pytest
import tomli_w

from engine.plan import plan_from_dict
from loader import load_directory, load_file, load_text
from loader.api import is_graph_file
from loader.read_yaml import read_yaml
from tests.conftest import ROOT

EXAMPLES = sorted(p for p in (ROOT / "graphs").rglob("*") if is_graph_file(p.name))
YAML_EXAMPLES = [p for p in EXAMPLES if p.suffix != ".toml"]
ENV: dict[str, str] = {}


def test_there_are_real_examples():
    names = {p.stem for p in YAML_EXAMPLES}
    assert {"quickstart", "orders_etl", "alerts"} <= names
    assert any(p.suffix == ".toml" for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_is_valid_without_warnings(path, registry):
    result = load_file(path, registry, ENV)
    assert result.problems == []
    assert result.plan is not None


@pytest.mark.parametrize("path", YAML_EXAMPLES, ids=lambda p: p.name)
def test_yaml_example_has_schema_comment(path):
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schema/graph.v2.json"
    assert (path.parent / "../schema/graph.v2.json").resolve().is_file()


def test_toml_twin_gives_byte_identical_plan(registry):
    yaml_plan = load_file(ROOT / "graphs/quickstart.yaml", registry, ENV).plan
    toml_plan = load_file(ROOT / "graphs/toml/quickstart.toml", registry, ENV).plan
    assert yaml_plan is not None and toml_plan is not None
    assert yaml_plan == toml_plan
    assert yaml_plan.to_json() == toml_plan.to_json()


@pytest.mark.parametrize("path", YAML_EXAMPLES, ids=lambda p: p.name)
def test_every_example_means_the_same_in_toml(path, registry):
    doc, problems = read_yaml(path.name, path.read_text())
    assert problems == []
    toml_text = tomli_w.dumps(doc.data)
    from_yaml = load_text(path.name, path.read_text(), registry, ENV).plan
    from_toml = load_text(path.stem + ".toml", toml_text, registry, ENV).plan
    assert from_yaml is not None
    assert from_yaml == from_toml


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plan_json_round_trip_is_stable(path, registry):
    plan = load_file(path, registry, ENV).plan
    assert plan is not None
    text = plan.to_json()
    again = plan_from_dict(json.loads(text))
    assert again == plan
    assert again.to_json() == text
    assert hash(again) == hash(plan)
    assert json.loads(text)["hash"] == plan.content_hash()


def test_reloading_an_unchanged_directory_gives_the_same_plans(registry):
    first = {r.name: r.plan.content_hash() for r in load_directory(ROOT / "graphs", registry, ENV)}
    second = {r.name: r.plan.content_hash() for r in load_directory(ROOT / "graphs", registry, ENV)}
    assert first == second
    assert set(first) == {"quickstart", "orders_etl", "alerts", "tail_errors", "http_bridge", "durable_orders",
                          "sensor_scores", "nats_orders", "redis_orders_forward", "redis_audit_log",
                          "postgres_orders", "mqtt_sensors", "access_logs", "orders_payments", "user_totals"}


def test_plan_does_not_depend_on_path(tmp_path, registry):
    text = (ROOT / "graphs/alerts.yaml").read_text()
    elsewhere = tmp_path / "deep" / "alerts.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(text)
    assert load_file(elsewhere, registry, ENV).plan == load_file(ROOT / "graphs/alerts.yaml", registry, ENV).plan


def test_explicit_defaults_give_the_same_plan(registry):
    implicit = "version: 1\nnodes:\n  a: {type: file.read, with: {path: x}}\n  b: {type: stdout, from: a}\n"
    explicit = ("version: 1\ndefaults: {edge: {capacity: 1024, policy: block}}\nnodes:\n"
                "  a: {type: file.read, with: {path: x, format: jsonl, follow: false}, on_error: drop}\n"
                "  b: {type: stdout, from: {node: a, port: out}, with: {format: jsonl}}\n")
    assert load_text("g.yaml", implicit, registry).plan == load_text("g.yaml", explicit, registry).plan


def test_changing_a_parameter_changes_the_hash(registry):
    base = "version: 1\nnodes:\n  a: {type: file.read, with: {path: x}}\n  b: {type: stdout, from: a}\n"
    other = base.replace("path: x", "path: y")
    first = load_text("g.yaml", base, registry).plan
    second = load_text("g.yaml", other, registry).plan
    assert first.content_hash() != second.content_hash()
