"""A node spec says what a node is: fusion role, typed parameters, checks, first version.

The toy `upper` type (tests/upper_node.py, the walkthrough of docs/extending.md) is added
to a copy of the registry; nothing else in the project is told about it.
"""

import asyncio
import dataclasses
import json
from dataclasses import replace

import pytest

from adapters.file_read import FileReadParams
from engine.aggregate import AggregateParams
from engine.fusion import ChainFinder
from engine.params import expect
from engine.spec import SpecRegistry
from engine.transforms import MapParams
from loader.api import load_text
from loader.schema_gen import graph_schema
from tests.runtime_support import RECORDED, build
from tests.runtime_support import test_registry as base_registry
from tests.upper_node import UPPER, Upper, UpperParams

GRAPH = """
version: 2
nodes:
  people: {type: generate, with: {count: 3000, fields: {name: "'ann' if i % 3 else 'bob'", n: i}}}
  loud: {type: upper, from: people, with: {fields: [name]}}
  some: {type: filter, from: loud, with: {where: "name == 'ANN' and n % 2 == 0"}}
  got: {type: test.record, from: some}
"""


def registry_with(spec=UPPER) -> SpecRegistry:
    registry = base_registry().copy()
    registry.register(spec)
    return registry


def chains(text: str, registry: SpecRegistry) -> list[list[str]]:
    result = load_text("g.yaml", text, registry)
    assert result.plan is not None, [p.message for p in result.problems]
    return ChainFinder(result.plan, registry).chains()


def recorded(registry: SpecRegistry, fuse: bool) -> list[dict[str, object]]:
    RECORDED.clear()
    runtime = build(GRAPH, registry, fuse=fuse)
    assert asyncio.run(runtime.run()), runtime.failure
    return RECORDED["got"]


def test_a_type_whose_spec_says_step_fuses_and_delivers_what_it_would_alone():
    registry = registry_with()
    assert chains(GRAPH, registry) == [["people", "loud", "some"]]
    runtime = build(GRAPH, registry)
    assert "_upper1(_event)" in runtime.segments[0].segment.source
    fused = recorded(registry, fuse=True)
    assert fused == recorded(registry, fuse=False)
    assert len(fused) == 1000 and fused[0] == {"name": "ANN", "n": 2}


def test_the_same_type_without_a_fusion_role_runs_on_its_own():
    registry = registry_with(replace(UPPER, fusion=None))
    assert chains(GRAPH, registry) == []
    assert build(GRAPH, registry).segments == []
    assert len(recorded(registry, fuse=True)) == 1000


def test_a_fusion_predicate_over_the_parameters_keeps_a_node_out_of_chains():
    registry = registry_with(replace(UPPER, fusion=replace(UPPER.fusion, fusable=lambda p: len(p.fields) > 1)))
    assert chains(GRAPH, registry) == []
    assert chains(GRAPH.replace("fields: [name]", "fields: [name, name2]"), registry) == [["people", "loud", "some"]]


def test_factories_get_the_frozen_parameters_their_spec_parsed():
    text = GRAPH + "  raw: {type: file.read, with: {path: in.jsonl}}\n  out: {type: null, from: raw}\n"
    runtime = build(text.replace("type: null", 'type: "null"'), registry_with())
    loud = runtime.runners["loud"]
    assert isinstance(loud.impl, Upper)
    assert loud.ctx.params == UpperParams(fields=("name",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loud.ctx.params.fields = ()
    # Built-in types too, defaults filled in by the loader.
    read = runtime.runners["raw"].ctx.params
    assert read == FileReadParams(path="in.jsonl", format="jsonl", follow=False)


def test_a_factory_given_a_mapping_fails_loudly():
    with pytest.raises(TypeError, match="expected MapParams parameters, got dict"):
        expect({"set": {"a": "1"}}, MapParams)


def test_parsing_never_raises_on_values_the_schema_refuses():
    """The loader runs a spec's checks on files whose schema problems it has just listed."""
    parsed = load_text("g.yaml", "version: 2\nnodes:\n  a: {type: aggregate, from: x, with: "
                       "{by: 3, fields: [sum(x)], window: {type: 5, size: 1m, gap: [1]}}}\n", base_registry())
    assert parsed.plan is None and "HR039" not in {p.code for p in parsed.problems}
    assert AggregateParams(fields=()) == base_registry().get("aggregate").parse({"fields": "x", "by": {"a": 1}})


TOML_WINDOW = """version = 2
[nodes.src]
type = "generate"
with = {fields = {x = "i"}}
[nodes.agg]
type = "aggregate"
from = "src"
[nodes.agg.with]
fields = {n = "count()"}
window = {type = "tumbling", size = "1m", gap = "5s"}
[nodes.out]
type = "test.record"
from = "agg"
"""


@pytest.mark.parametrize("file,text,code,line,column,path,message", [
    ("g.yaml", GRAPH.replace("fields: [name]", "fields: [name, n, name]"), "HR025", 5, 62,
     "nodes.loud.with.fields[2]", "'name' is listed twice"),
    ("g.toml", TOML_WINDOW, "HR039", 10, 43, "nodes.agg.with.window.gap", "'gap' does not apply to tumbling windows"),
])
def test_a_spec_check_finding_is_located_in_the_file(file, text, code, line, column, path, message):
    result = load_text(file, text, registry_with())
    [problem] = [p for p in result.problems if p.code == code]
    assert (problem.line, problem.column, problem.path, problem.message) == (line, column, path, message)
    assert result.plan is None


def test_a_type_is_left_out_of_the_schemas_before_its_version():
    registry = registry_with()
    v1, v2 = graph_schema(registry, 1), graph_schema(registry, 2)
    assert "with.upper" not in v1["$defs"] and "with.upper" in v2["$defs"]
    assert "upper" not in v1["$defs"]["node"]["properties"]["type"]["enum"]
    assert "opencl.map" not in json.dumps(v1) and "opencl.map" in json.dumps(v2)


def test_an_old_file_using_a_later_type_is_told_which_version_it_needs():
    text = GRAPH.replace("version: 2", "version: 1")
    [problem] = [p for p in load_text("g.yaml", text, registry_with()).problems if p.code == "HR031"]
    assert (problem.line, problem.column) == (5, 16)
    assert problem.message == "node type 'upper' needs graph format version 2"
    assert "engine migrate" in problem.hint


def test_fusion_and_the_loader_name_no_node_type():
    """What a type is comes from its spec: these modules never compare type names."""
    from adapters.cli.registry import default_registry
    from tests.conftest import ROOT

    for module in ("engine/fusion.py", "engine/fused.py", "engine/fused_code.py", "loader/semantic.py"):
        text = (ROOT / module).read_text()
        assert "builtin_specs" not in text, module
        for name in default_registry().names():
            assert f'"{name}"' not in text and f"'{name}'" not in text, (module, name)
