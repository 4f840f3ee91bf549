"""Generated files are committed; a stale one fails here. Fix: python -m adapters.cli.generate"""

import json

import pytest
from jsonschema import Draft202012Validator

from adapters.cli.generate import generated_files
from loader.problems import CODES
from tests.conftest import ROOT


@pytest.mark.parametrize("relative,content", sorted(generated_files().items()))
def test_generated_file_is_fresh(relative, content):
    assert (ROOT / relative).read_text() == content, f"{relative} is stale: run python -m adapters.cli.generate"


def test_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(json.loads((ROOT / "schema/graph.v1.json").read_text()))


def test_every_node_type_is_documented(registry):
    nodes_md = (ROOT / "docs/nodes.md").read_text()
    for name in registry.names():
        assert f"## `{name}`" in nodes_md


def test_every_code_is_documented():
    problems_md = (ROOT / "docs/problems.md").read_text()
    for code in CODES:
        assert f"| `{code}` |" in problems_md


def test_every_spec_field_is_documented(registry):
    for spec in registry.specs():
        for name, field in spec.params["properties"].items():
            assert field.get("description"), (spec.name, name)
            assert field.get("examples"), (spec.name, name)
