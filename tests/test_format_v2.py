"""Format version 2, and version-1 files upgraded in memory: same plans, same lines."""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.cli.registry import default_registry
from adapters.serve.vocabulary import ADDED, UNCHANGED
from loader.api import load_text
from tests.serve_support import Serving, events, ticking_graph, write_atomically

V1 = """version: 1
defaults:
  edge: {storage: lmdb}
nodes:
  g: {type: generate, with: {count: 3, fields: {n: i}}}
  m:
    type: map
    from: {node: g, policy: latest}
    with: {set: {x: n}}
  o:
    type: "null"
    from:
      - {node: m, policy: drop_oldest, capacity: 4, storage: memory}
"""
V2 = """version: 2
defaults:
  edge: {durable: true}
nodes:
  g: {type: generate, with: {count: 3, fields: {n: i}}}
  m:
    type: map
    from: {node: g, edge: {policy: keep_latest}}
    with: {set: {x: n}}
  o:
    type: "null"
    from:
      - {node: m, edge: {policy: drop_oldest, capacity: 4, durable: false}}
"""


def load(text: str):  # type: ignore[no-untyped-def]
    return load_text("g.yaml", text, default_registry())


def test_a_version_1_file_and_its_version_2_twin_compile_to_the_same_plan():
    old, new = load(V1), load(V2)
    assert old.problems == [] and new.problems == []
    assert old.migrated_from == 1 and new.migrated_from == 0
    assert old.plan is not None and new.plan is not None
    assert old.plan.to_json() == new.plan.to_json()
    edges = {e.id: (e.policy, e.durable, e.capacity) for e in new.plan.edges}
    assert edges == {"g->m": ("keep_latest", True, 1024), "m->o": ("drop_oldest", False, 4)}
    # The plan speaks the current format's words, whichever version the file was written in.
    body = old.plan.body()["edges"]
    assert body["g->m"] == {"from_node": "g", "from_port": "out", "to_node": "m", "capacity": 1024,
                            "policy": "keep_latest", "durable": True}
    assert "durable" not in body["m->o"]


def test_problems_in_an_upgraded_file_name_the_lines_and_paths_as_written():
    broken = V1.replace("capacity: 4, storage: memory", "capacity: 4, key: n")
    result = load(broken)
    [problem] = result.problems
    assert (problem.code, problem.line, problem.path) == ("HR037", 13, "nodes.o.from[0].key")


def test_a_latest_edge_with_a_capacity_runs_as_before_with_a_decision_warning():
    result = load(V1.replace("policy: latest}", "policy: latest, capacity: 9}"))
    [warning] = result.problems
    assert (warning.code, warning.severity, warning.line) == ("HR080", "warning", 8)
    assert "decide: remove `capacity`" in warning.message
    assert result.plan is not None and result.plan.edges[0].capacity == 1024  # `latest` ignored it in v1 too


def test_version_2_refuses_a_capacity_on_keep_latest():
    result = load(V2.replace("edge: {policy: keep_latest}", "edge: {policy: keep_latest, capacity: 9}"))
    assert [(p.code, p.line) for p in result.problems] == [("HR037", 8)]


def test_serve_runs_mixed_versions_and_a_migrated_file_is_an_unchanged_reload(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    old = ticking_graph(tmp_path / "a.jsonl", "A").replace("from: ticks", "from: {node: ticks, capacity: 64}")
    (graphs / "old.yaml").write_text(old)
    (graphs / "new.yaml").write_text(ticking_graph(tmp_path / "b.jsonl", "B").replace("version: 1", "version: 2"))

    async def scenario():
        async with Serving(graphs) as s:
            assert s.results("old.yaml") == [ADDED] and s.results("new.yaml") == [ADDED]
            running = s.running("old.yaml")
            migrated = old.replace("version: 1", "version: 2").replace(
                "from: {node: ticks, capacity: 64}", "from: {node: ticks, edge: {capacity: 64}}")
            write_atomically(graphs / "old.yaml", migrated)
            await s.until(lambda: len(s.results("old.yaml")) == 2)
            assert s.results("old.yaml") == [ADDED, UNCHANGED] and s.running("old.yaml") is running
            await s.until(lambda: events(tmp_path / "b.jsonl"))

    asyncio.run(scenario())


def test_the_version_1_corpus_compiles_to_the_plans_of_its_version_2_twins():
    """tests/graphs/v1 holds the shipped graphs as they were written in format 1."""
    from pathlib import Path

    from loader.api import load_file
    from tests.conftest import ROOT

    registry = default_registry()
    corpus = sorted((ROOT / "tests/graphs/v1").iterdir())
    assert len(corpus) == 7
    for old_path in corpus:
        twin = ROOT / "graphs" / ("toml/" if old_path.suffix == ".toml" else "") / old_path.name
        env = {"ORDERS": "10"}
        old, new = load_file(old_path, registry, env), load_file(Path(twin), registry, env)
        assert old.migrated_from == 1 and new.migrated_from == 0, old_path.name
        assert [p.code for p in old.problems] == [p.code for p in new.problems], old_path.name
        assert old.plan is not None and new.plan is not None, old_path.name
        assert old.plan.content_hash() == new.plan.content_hash(), old_path.name


EDGE_OPTIONS = st.fixed_dictionaries({}, optional={
    "capacity": st.integers(min_value=1, max_value=5000),
    "policy": st.sampled_from(["block", "drop_newest", "drop_oldest", "latest"]),
    "storage": st.sampled_from(["memory", "lmdb"]),
})


@st.composite
def valid_v1_graphs(draw):  # type: ignore[no-untyped-def]
    """A chain generate -> maps -> null, each input written as a string or a mapping with
    random edge options, with optional defaults.edge."""
    nodes: dict[str, object] = {"n0": {"type": "generate", "with": {"count": 3, "fields": {"v": "i"}}}}
    for k in range(1, draw(st.integers(min_value=1, max_value=4)) + 1):
        options = draw(EDGE_OPTIONS)
        if options.get("policy") == "latest" and "capacity" in options:
            del options["capacity"]  # a decision for the user, not a valid automatic case
        entry: object = f"n{k - 1}" if not options and draw(st.booleans()) else {"node": f"n{k - 1}", **options}
        source: object = [entry] if draw(st.booleans()) else entry
        nodes[f"n{k}"] = {"type": "map", "from": source, "with": {"set": {f"f{k}": "v"}}}
    last = f"n{len(nodes) - 1}"
    nodes["out"] = {"type": "null", "from": last}
    graph: dict[str, object] = {"version": 1, "nodes": nodes}
    defaults = draw(EDGE_OPTIONS)
    if defaults and not (defaults.get("policy") == "latest" and "capacity" in defaults):
        graph["defaults"] = {"edge": defaults}
    return graph


@settings(max_examples=60, deadline=None)
@given(valid_v1_graphs())
def test_a_valid_version_1_graph_upgrades_to_a_valid_version_2_graph_with_the_same_plan(graph):
    import copy
    import json

    from migrations import upgrade

    old = load(json.dumps(graph))
    assert old.plan is not None and not [p for p in old.problems if p.severity == "error"]
    upgraded = copy.deepcopy(graph)
    _, decisions = upgrade(upgraded)
    assert decisions == [] and upgraded["version"] == 2
    new = load(json.dumps(upgraded))
    assert new.problems == [] and new.migrated_from == 0
    assert new.plan is not None and new.plan.content_hash() == old.plan.content_hash()
    again = copy.deepcopy(upgraded)
    assert upgrade(again) == ([], []) and again == upgraded  # idempotent: a v2 file is left alone
