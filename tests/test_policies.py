"""The edge-policy table (engine/policies.py): what it decides for each policy, that both
storages follow it alike, and that the schema, the loader and the plan speak its words."""

import json
from collections.abc import Callable, Iterator
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.storage.lmdb_edge import LmdbEdge
from adapters.storage.lmdb_store import LmdbStore
from engine.edges import Edge
from engine.plan import EdgePlan, ErrorPolicy, plan_from_dict
from engine.policies import (
    BLOCK,
    COALESCE,
    DROP_NEWEST,
    DROP_OLDEST,
    KEEP_LATEST,
    POLICY_NAMES,
    admit,
    has_room,
    policy_named,
)
from loader.api import claim_name, load_text
from loader.checked import EdgeOptions
from loader.schema_gen import graph_schema

# (policy, waiting, in_flight, capacity, offered) -> (first, stop, evict): evict the `evict`
# oldest waiting, accept batch[first:stop]; batch[:first] dropped; batch[stop:] refused or dropped.
DECISIONS = [
    # block: accept what fits, refuse the rest; in-flight events take room
    (BLOCK, 0, 0, 4, 3, (0, 3, 0)),
    (BLOCK, 2, 0, 4, 3, (0, 2, 0)),
    (BLOCK, 4, 0, 4, 3, (0, 0, 0)),
    (BLOCK, 1, 2, 4, 3, (0, 1, 0)),
    (BLOCK, 3, 3, 4, 1, (0, 0, 0)),  # over capacity after a restart: nothing, never negative
    # drop_newest: the same head fits; what does not is dropped, never refused
    (DROP_NEWEST, 0, 0, 4, 3, (0, 3, 0)),
    (DROP_NEWEST, 3, 0, 4, 3, (0, 1, 0)),
    (DROP_NEWEST, 2, 2, 4, 3, (0, 0, 0)),
    # drop_oldest: every new event is accepted; the oldest waiting make room
    (DROP_OLDEST, 0, 0, 4, 3, (0, 3, 0)),
    (DROP_OLDEST, 3, 0, 4, 3, (0, 3, 2)),
    (DROP_OLDEST, 3, 0, 4, 6, (2, 6, 3)),  # a batch larger than the edge: its newest 4
    (DROP_OLDEST, 1, 2, 4, 3, (1, 3, 1)),  # in-flight events are never evicted
    (DROP_OLDEST, 0, 4, 4, 2, (2, 2, 0)),  # nothing fits beside them
    # keep_latest: the newest event replaces whatever waits; capacity plays no part
    (KEEP_LATEST, 0, 0, 4, 3, (2, 3, 0)),
    (KEEP_LATEST, 1, 0, 1, 1, (0, 1, 1)),
    (KEEP_LATEST, 1, 9, 1, 2, (1, 2, 1)),
    (KEEP_LATEST, 1, 0, 4, 0, (0, 0, 0)),  # nothing offered: what waits stays
    # coalesce: new keys are accepted while there is room, then refused (merges take none)
    (COALESCE, 0, 0, 4, 3, (0, 3, 0)),
    (COALESCE, 3, 0, 4, 3, (0, 1, 0)),
    (COALESCE, 2, 2, 4, 3, (0, 0, 0)),
]
# What each policy does with what does not fit: (pushes back, merges by key, uses capacity)
FLAGS = {
    BLOCK: (True, False, True),
    DROP_NEWEST: (False, False, True),
    DROP_OLDEST: (False, False, True),
    KEEP_LATEST: (False, False, False),
    COALESCE: (True, True, True),
}


def test_every_policy_in_the_table_is_tested_here():
    assert set(FLAGS) == set(POLICY_NAMES) == {case[0] for case in DECISIONS}


@pytest.mark.parametrize(("policy", "waiting", "in_flight", "capacity", "offered", "expected"), DECISIONS)
def test_the_table_decides_what_is_accepted_evicted_and_left(policy, waiting, in_flight, capacity, offered, expected):
    assert admit(policy_named(policy), waiting, in_flight, capacity, offered) == expected


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_the_table_says_who_pushes_back_merges_and_uses_capacity(policy):
    row = policy_named(policy)
    assert (row.pushes_back, row.keyed, row.uses_capacity) == FLAGS[policy]
    assert has_room(row, 3, 4) and has_room(row, 4, 4) != row.pushes_back
    assert row.passes_everything == (policy == BLOCK)  # only block may be fused across
    assert row.summary and row.when_full and row.never and row.since >= 1
    assert bool(row.capacity_note) == (not row.uses_capacity)


def test_an_unknown_policy_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown edge policy 'latest'.*keep_latest"):
        policy_named("latest")


# -- memory and LMDB storage follow the table alike ----------------------------------------

MakeEdge = Callable[[str, int], Edge]


@pytest.fixture(scope="module")
def storages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MakeEdge, MakeEdge]]:
    store = LmdbStore(tmp_path_factory.mktemp("state"), sync=False)
    graphs = count()

    def plan(policy: str, capacity: int, durable: bool) -> EdgePlan:
        return EdgePlan("a->b", "a", "out", "b", capacity, policy, ("k",), (("n", "sum"),), durable=durable)

    def memory(policy: str, capacity: int) -> Edge:
        return Edge(plan(policy, capacity, False))

    def durable(policy: str, capacity: int) -> Edge:
        return LmdbEdge(plan(policy, capacity, True), store, f"g{next(graphs)}")

    yield memory, durable
    store.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=st.sampled_from(POLICY_NAMES), capacity=st.integers(1, 6),
       steps=st.lists(st.tuples(st.booleans(), st.integers(0, 9)), max_size=30))
def test_memory_and_durable_edges_give_the_same_results(storages, policy, capacity, steps):
    """The same offers and takes (each take acknowledged at once) give the same refusals,
    deliveries and counters on both storages."""
    memory, durable = storages[0](policy, capacity), storages[1](policy, capacity)
    produced = 0
    held: list[dict[str, object]] = []
    for is_offer, n in steps:
        if is_offer:
            batch = held + [{"i": produced + j, "k": (produced + j) % 3, "n": 1} for j in range(n)]
            produced += n
            held = memory.offer(batch)
            assert durable.offer(batch) == held
        else:
            taken = memory.take(n)
            assert durable.take(n) == taken
            durable.ack(len(taken))
        assert memory.has_room() == durable.has_room()
        assert memory.counters() == durable.counters()


# -- one vocabulary: schema, checked stage and plan ------------------------------------------

def test_the_schemas_policy_enum_comes_from_the_table_in_each_versions_words(registry):
    def policy_enum(version: int) -> list[str]:
        options = graph_schema(registry, version)["$defs"]["edge_options"]["properties"]
        return options["policy"]["enum"]

    def introduced_by(version: int) -> list[str]:
        return [name for name in POLICY_NAMES if policy_named(name).since <= version]

    assert policy_enum(2) == introduced_by(2)
    assert policy_enum(1) == ["latest" if name == KEEP_LATEST else name for name in introduced_by(1)]


GRAPH = """version: 2
defaults:
  edge: {capacity: 64}
nodes:
  g: {type: generate, with: {count: 3, fields: {k: i}}}
  m:
    type: map
    from: {node: g, edge: {policy: coalesce, key: k, merge: {k: max}, durable: true}}
    with: {set: {x: k}}
    on_error: {action: retry}
  o: {type: "null", from: m, on_error: dead_letter}
  d: {type: "null", from: o.errors}
"""


def test_the_checked_stage_is_typed_with_every_default_applied(registry):
    from loader.read_yaml import read_yaml
    from loader.semantic import check_graph

    doc, _ = read_yaml("g.yaml", GRAPH)
    checked, problems = check_graph(doc, registry, "g", 2)
    assert problems == []
    [into_m] = checked.nodes["m"].inputs
    assert into_m.edge == EdgeOptions(capacity=64, policy=COALESCE, key=("k",), merge=(("k", "max"),), durable=True)
    [into_o] = checked.nodes["o"].inputs
    assert into_o.edge == EdgeOptions(capacity=64)
    assert checked.nodes["m"].on_error == ErrorPolicy(action="retry", attempts=3, backoff_ms=100, then="drop")
    assert checked.nodes["o"].on_error == ErrorPolicy(action="dead_letter")
    assert checked.nodes["o"].ports == ("errors",)
    assert checked.nodes["g"].on_error == ErrorPolicy(action="drop")


def test_the_plan_speaks_the_file_words_and_reads_back(registry):
    result = load_text("g.yaml", GRAPH.replace("policy: coalesce, key: k, merge: {k: max}", "policy: keep_latest")
                       .replace("capacity: 64", "policy: drop_oldest"), registry, {})
    assert result.problems == [] and result.plan is not None
    edges = result.plan.to_dict()["edges"]
    assert edges["g->m"]["policy"] == "keep_latest" and edges["g->m"]["durable"] is True
    assert "durable" not in edges["m->o"] and edges["m->o"]["policy"] == "drop_oldest"
    assert "storage" not in json.dumps(edges) and '"latest"' not in json.dumps(edges)
    again = plan_from_dict(json.loads(result.plan.to_json()))
    assert again == result.plan and again.content_hash() == result.plan.content_hash()


@pytest.mark.parametrize(("change", "message"), [
    ({"storage": "lmdb"}, r"""edge 'g->m': 'storage' is an older plan's word: write "durable": true .*engine plan"""),
    ({"policy": "latest"}, r"edge 'g->m': policy 'latest' is an older plan's word: write 'keep_latest', .*engine plan"),
    ({"policy": "newest"}, r"edge 'g->m': unknown policy 'newest' \(policies: block, "),
    ({"colour": "red"}, r"edge 'g->m': unknown key 'colour' \(an edge has: from_node, "),
])
def test_a_plan_with_words_this_format_does_not_say_is_refused(registry, change, message):
    """An older plan's `storage: lmdb` would read as a memory edge, and `latest` fail only when
    the edge is built: both are refused when the plan is read, naming the edge and the fix."""
    result = load_text("g.yaml", GRAPH, registry, {})
    assert result.plan is not None
    data = json.loads(result.plan.to_json())
    data["edges"]["g->m"].update(change)
    with pytest.raises(ValueError, match=message):
        plan_from_dict(data)


def test_a_whole_number_written_as_a_float_is_a_capacity(registry):
    """JSON Schema counts 5.0 as an integer; the checked stage takes it as 5 (it used to crash)."""
    result = load_text("g.yaml", GRAPH.replace("capacity: 64", "capacity: 5.0"), registry, {})
    assert result.plan is not None and {e.capacity for e in result.plan.edges} == {5}


def test_one_rule_for_graph_names():
    claimed = {"orders": "a.yaml"}  # running, kept by its file
    assert claim_name(claimed, "orders", "b.yaml") == "a.yaml"
    assert claim_name(claimed, "orders", "a.yaml") == ""
    assert claim_name(claimed, "payments", "b.yaml") == ""
    assert claim_name(claimed, "payments", "c.yaml") == "b.yaml"
    assert claimed == {"orders": "a.yaml", "payments": "b.yaml"}
