"""Every graph shown in the documentation validates."""

import json
import re

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from adapters.cli.registry import default_registry
from engine.ids import split_port_ref
from loader import load_text
from loader.test_schema import graph_test_schema
from tests.conftest import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def is_test_file(block: str) -> bool:
    return re.search(r"^tests:", block, re.MULTILINE) is not None and re.search(r"^graph:", block, re.MULTILINE)


def graph_blocks():
    for path in DOCS:
        for number, block in enumerate(BLOCK.findall(path.read_text())):
            if block.startswith("version:") and not is_test_file(block):
                yield pytest.param(block, id=f"{path.name}#{number}")


def test_documented_test_files_follow_their_schema():
    """Graph test files shown in the docs (docs/testing.md) are valid test files."""
    validator = Draft202012Validator(graph_test_schema())
    blocks = [b for p in DOCS for b in BLOCK.findall(p.read_text()) if is_test_file(b)]
    assert blocks
    for block in blocks:
        assert list(validator.iter_errors(YAML(typ="safe").load(block))) == [], block


@pytest.mark.parametrize("text", list(graph_blocks()))
def test_documented_graph_validates(text, registry):
    result = load_text("doc_example.yaml", text, registry, {})
    assert result.problems == [] and result.plan is not None


def test_docs_have_graph_examples():
    assert len(list(graph_blocks())) >= 1


@pytest.mark.parametrize("name", default_registry().names())
def test_node_reference_example_validates(name, registry):
    """Each spec's example, placed in a graph with stand-in neighbours, is valid."""
    spec = registry.get(name)
    node = YAML(typ="safe").load(spec.example)
    graph = {"version": spec.since, "nodes": {"example": node}}  # the first format with the type
    sources = node.get("from", [])
    for ref in sources if isinstance(sources, list) else [sources]:
        upstream = ref["node"] if isinstance(ref, dict) else split_port_ref(ref)[0]
        graph["nodes"][upstream] = {"type": "generate", "with": {"fields": {"x": "i"}}}
    if spec.has_output:
        for port in spec.output_ports(node.get("with", {})):
            # A source that acknowledges to its system wants a durable output edge (HR071).
            edge = {"edge": {"durable": True}} if spec.acknowledges else {}
            graph["nodes"][f"sink_{port}"] = {"type": "null", "from": {"node": "example", "port": port, **edge}}
    result = load_text("example.yaml", json.dumps(graph), registry, {})
    assert result.problems == [], spec.example
