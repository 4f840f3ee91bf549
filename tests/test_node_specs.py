"""A node spec says what a node is: fusion role, typed parameters, checks, first version.

The toy `upper` type (tests/upper_node.py, the walkthrough of docs/extending.md) is added
to a copy of the registry; nothing else in the project is told about it.
"""

import asyncio
import dataclasses
import json
from dataclasses import replace

import pytest

from adapters.cli.registry import default_registry
from adapters.io.files.read import FileReadParams
from engine.aggregate import AggregateParams
from engine.expr import ExprError
from engine.findings import Finding
from engine.fusion import ChainFinder
from engine.params import NO_PARAMS, expect, whole_number
from engine.spec import SINK, NodeSpec, SpecRegistry, params_schema
from engine.transforms import MapParams
from loader.api import load_text
from loader.checked import with_defaults
from loader.schema_gen import graph_schema
from tests.fusion_toys import INVERT, STEPS
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


def test_every_type_with_parameters_has_its_own_parse():
    """The default `parse` suits only a type without parameters; the registry refuses it for
    the others, so no factory is handed a mapping."""
    props = {"n": {"type": "integer", "description": "n", "examples": [1]}}
    spec = NodeSpec(name="test.lazy", kind=SINK, summary="t", params=params_schema(props))
    with pytest.raises(ValueError, match=r"'test\.lazy' has parameters but no `parse`"):
        SpecRegistry([spec])
    assert SpecRegistry([replace(spec, params=params_schema({}))]).get("test.lazy").parse({}) == NO_PARAMS
    for spec in default_registry().specs():
        assert not isinstance(spec.parse(_required(spec)), dict), spec.name


def _required(spec: NodeSpec) -> dict[str, object]:
    """The smallest `with:` the type's schema accepts, from its own examples."""
    props = spec.params.get("properties", {})
    return {key: props[key]["examples"][0] for key in spec.params.get("required", [])}


def test_the_schema_defaults_are_the_defaults_the_parsers_apply():
    """A default is written once: a node that spells every default out gets the parameters
    of one that leaves them to the parser."""
    for spec in default_registry().specs():
        raw = _required(spec)
        assert spec.parse(with_defaults(spec, raw)) == spec.parse(raw), spec.name


@pytest.mark.parametrize(("value", "whole"), [(7, 7), (7.0, 7), (-2.0, -2), (7.5, None), (True, None),
                                              ("7", None), (None, None), (float("inf"), None)])
def test_a_whole_number_may_be_written_as_a_float(value, whole):
    """JSON Schema counts 7.0 as an integer, so the parameters read it as 7, not as missing."""
    assert whole_number(value) == whole


def test_integer_parameters_written_as_floats_are_kept():
    registry = default_registry()
    post = registry.get("http.post").parse({"url": "http://x", "batch_size": 7.0, "retries": 1.0})
    assert (post.batch_size, post.retries) == (7, 1)
    reduce = registry.get("opencl.reduce").parse({"fields": {"n": "count()"}, "by": "k", "groups": 64.0})
    assert reduce.groups == 64
    assert base_registry().get("generate").parse({"count": 3.0}).count == 3


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


def test_a_spec_check_finding_inside_an_expression_is_placed_inside_the_value():
    """A type's checks and a family's checks become problems by the one conversion."""
    error = ExprError("syntax", "bad here", "fix it", 0, 2)
    spec = replace(UPPER, checks=lambda params: [Finding("HR040", ("fields", 0), "bad here", expression_error=error)])
    [problem] = [p for p in load_text("g.yaml", GRAPH, registry_with(spec)).problems if p.code == "HR040"]
    line = GRAPH.splitlines()[problem.line - 1]
    assert problem.path == "nodes.loud.with.fields[0]" and problem.column == line.index("[name]") + 1 + 1 + 2


@pytest.mark.parametrize("returned", [["a string"], None])
def test_a_spec_check_returning_anything_but_findings_is_an_internal_error(returned):
    spec = replace(UPPER, checks=lambda params: returned)
    with pytest.raises(TypeError, match="internal error: the checks of node type 'upper' returned"):
        load_text("g.yaml", GRAPH, registry_with(spec))


def test_a_type_is_left_out_of_the_schemas_before_its_version():
    registry = registry_with()
    v1, v2 = graph_schema(registry, 1), graph_schema(registry, 2)
    assert "with.upper" not in v1["$defs"] and "with.upper" in v2["$defs"]
    assert "upper" not in v1["$defs"]["node"]["properties"]["type"]["enum"]
    # The v1 schema had already shipped the GPU family: a type stays in every schema it was in.
    assert "opencl.map" in json.dumps(v1) and "opencl.map" in json.dumps(v2)


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
    # Nor classes: a type's part in a fused loop comes through its spec's code object.
    for module in ("engine/fusion.py", "engine/fused.py"):
        text = (ROOT / module).read_text()
        assert "engine.transforms" not in text and "engine.aggregate" not in text, module


TOYS = """
version: 2
nodes:
  head: {type: test.steps, with: {count: 3000}, on_error: %s}
  inv: {type: test.invert, from: head, on_error: %s}
  keep: {type: filter, from: inv, with: {where: "inv != 10"}}
  got: {type: test.record, from: keep}
"""
REJECTS = ("  head_rejects: {type: test.record, from: head.errors}\n"
           "  inv_rejects: {type: test.record, from: inv.errors}\n")


def toy_registry() -> SpecRegistry:
    registry = base_registry().copy()
    registry.register(STEPS)
    registry.register(INVERT)
    return registry


def test_a_head_and_a_step_fuse_through_their_specs_with_their_own_failure_messages():
    text = TOYS % ("dead_letter", "dead_letter") + REJECTS
    registry = toy_registry()
    assert chains(text, registry) == [["head", "inv", "keep"]]
    runtime = build(text, registry)
    assert type(runtime.segments[0].impl).__name__ == "FusedSource"
    runs = []
    for fuse in (True, False):
        RECORDED.clear()
        runtime = build(text, registry, fuse=fuse)
        assert asyncio.run(runtime.run()), runtime.failure
        stats = runtime.stats()["nodes"]
        runs.append((dict(RECORDED), {name: (s["in"], s["out"], s["errors"]) for name, s in stats.items()}))
    assert runs[0] == runs[1]
    recorded = runs[0][0]
    assert len(recorded["got"]) == 750 and len(recorded["head_rejects"]) == 750
    assert recorded["head_rejects"][0]["error"] == "no step at index 0: division by zero"
    assert recorded["inv_rejects"][0]["error"] == "cannot invert: division by zero"


@pytest.mark.parametrize("on_error,failure", [
    (("stop", "drop"), "node 'head' (test.steps): no step at index 0: division by zero"),
    (("drop", "stop"), "node 'inv' (test.invert): cannot invert: division by zero"),
])
def test_a_fused_chain_stops_with_the_message_the_node_gives_alone(on_error, failure):
    registry = toy_registry()
    for fuse in (True, False):
        runtime = build(TOYS % on_error, registry, fuse=fuse)
        assert not asyncio.run(runtime.run())
        assert runtime.failure == failure


def test_a_head_role_needs_an_indexed_source():
    registry = toy_registry()
    registry.register(replace(base_registry().get("test.numbers"), name="test.head", fusion=STEPS.fusion))
    text = TOYS.replace("type: test.steps, with: {count: 3000}", "type: test.head, with: {count: 3}") % ("drop", "drop")
    with pytest.raises(TypeError, match="node 'head': the fusion role head needs an IndexedSource"):
        build(text, registry)
