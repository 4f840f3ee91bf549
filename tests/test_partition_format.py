"""`parallelism` and `partition_by` in graph files: the schema, the stages `engine plan` prints,
and the load problems (HR100-HR105) at the line and column of the key to change."""

import json

import pytest

from engine.plan import plan_from_dict
from loader import load_text
from migrations import v1_to_v2

SOURCE = """\
  buys:
    type: generate
    with: {count: 10, fields: {user: "i % 5", region: "'eu'", amount: "i"}}
"""

# A map and a filter in one stage of 3, then an aggregate of 2 partitioned by user.
CHAIN = """\
version: 2
name: per_user
nodes:
""" + SOURCE + """\
  priced:
    type: map
    from: buys
    parallelism: 3
    with: {set: {cents: "amount * 100"}}
  big:
    type: filter
    from: priced
    parallelism: 3
    with: {where: "cents > 100"}
  per_user:
    type: aggregate
    from: {node: big, edge: {partition_by: user, capacity: 64}}
    parallelism: 2
    with: {by: user, fields: {total: sum(cents)}}
  out:
    type: stdout
    from: per_user
"""

CHAIN_TOML = """\
version = 2
name = "per_user"

[nodes.buys]
type = "generate"
with = { count = 10, fields = { user = "i % 5", region = "'eu'", amount = "i" } }

[nodes.priced]
type = "map"
from = "buys"
parallelism = 3
with = { set = { cents = "amount * 100" } }

[nodes.big]
type = "filter"
from = "priced"
parallelism = 3
with = { where = "cents > 100" }

[nodes.per_user]
type = "aggregate"
parallelism = 2
with = { by = "user", fields = { total = "sum(cents)" } }

[nodes.per_user.from]
node = "big"
edge = { partition_by = ["user"], capacity = 64 }

[nodes.out]
type = "stdout"
from = "per_user"
"""


def graph(body: str) -> str:
    return "version: 2\nname: g\nnodes:\n" + SOURCE + body


def plan_of(text: str, registry, file: str = "g.yaml") -> dict[str, object]:
    result = load_text(file, text, registry, {})
    assert [p for p in result.problems if p.severity == "error"] == []
    assert result.plan is not None
    loaded: dict[str, object] = json.loads(result.plan.to_json())
    return loaded


def problems(text: str, registry) -> list[tuple[str, int, int, str, str, str]]:
    result = load_text("g.yaml", text, registry, {})
    return [(p.code, p.line, p.column, p.path, p.message, p.hint) for p in result.problems]


def test_the_plan_shows_each_stage_its_members_instances_key_and_entry(registry):
    plan = plan_of(CHAIN, registry)
    assert plan["stages"] == {
        "per_user": {"members": ["per_user"], "parallelism": 2, "partition_by": ["user"],
                     "entry": "big->per_user"},
        "priced": {"members": ["priced", "big"], "parallelism": 3, "partition_by": [], "entry": "buys->priced"},
    }
    nodes, edges = plan["nodes"], plan["edges"]
    assert isinstance(nodes, dict) and isinstance(edges, dict)
    assert nodes["priced"]["parallelism"] == 3 and "parallelism" not in nodes["out"]
    assert edges["big->per_user"]["partition_by"] == ["user"]
    assert "partition_by" not in edges["priced->big"]


def test_yaml_and_toml_give_byte_identical_plans_with_stages(cli, tmp_path):
    (tmp_path / "per_user.yaml").write_text(CHAIN)
    (tmp_path / "per_user.toml").write_text(CHAIN_TOML)
    yaml_code, from_yaml, _ = cli("plan", str(tmp_path / "per_user.yaml"))
    toml_code, from_toml, _ = cli("plan", str(tmp_path / "per_user.toml"))
    assert (yaml_code, toml_code) == (0, 0)
    assert '"stages"' in from_yaml
    assert from_yaml == from_toml
    assert plan_from_dict(json.loads(from_yaml)).to_json() == from_yaml


def test_a_graph_without_parallelism_prints_no_stages(cli):
    _, out, _ = cli("plan", "graphs/quickstart.yaml")
    assert "stages" not in json.loads(out)
    assert "parallelism" not in out and "partition_by" not in out


def test_an_older_format_takes_partition_by_beside_the_other_edge_options(registry):
    old = CHAIN.replace("version: 2", "version: 1").replace(
        "{node: big, edge: {partition_by: user, capacity: 64}}", "{node: big, partition_by: user, capacity: 64}")
    result = load_text("g.yaml", old, registry, {})
    assert result.problems == [] and result.migrated_from == 1
    assert result.plan is not None
    assert result.plan.to_json() == load_text("g.yaml", CHAIN, registry, {}).plan.to_json()  # type: ignore[union-attr]


def test_migrating_moves_partition_by_into_the_edge_block():
    document = {"version": 1, "nodes": {"a": {"type": "map", "from": {"node": "b", "partition_by": "user"}}}}
    changes, decisions = v1_to_v2.migrate(document)
    assert decisions == []
    assert document["nodes"]["a"]["from"] == {"node": "b", "edge": {"partition_by": "user"}}  # type: ignore[index]
    assert any(c.to_path == ("nodes", "a", "from", "edge", "partition_by") for c in changes)


@pytest.mark.parametrize(("body", "stages"), [
    # Different parallelism: two stages, the second entered round-robin from the merged first.
    ("""\
  a: {type: map, from: buys, parallelism: 2, with: {set: {x: "1"}}}
  b: {type: map, from: a, parallelism: 3, with: {set: {y: "2"}}}
  out: {type: stdout, from: b}
""", {"a": (["a"], 2, [], "buys->a"), "b": (["b"], 3, [], "a->b")}),
    # Same parallelism, but partition_by starts a new stage (repartition by a subset of the key).
    ("""\
  a: {type: map, from: buys, parallelism: 2, with: {set: {x: "1"}}}
  b:
    type: aggregate
    from: {node: a, edge: {partition_by: region}}
    parallelism: 2
    with: {by: [user, region], fields: {n: count()}}
  out: {type: stdout, from: b}
""", {"a": (["a"], 2, [], "buys->a"), "b": (["b"], 2, ["region"], "a->b")}),
    # A stage with two exits; partition_by on a coalesce edge is allowed.
    ("""\
  a:
    type: map
    from: {node: buys, edge: {policy: coalesce, key: user, partition_by: [user, region]}}
    parallelism: 4
    with: {set: {x: "1"}}
  b: {type: filter, from: a, parallelism: 4, with: {where: "x > 0"}}
  c: {type: stdout, from: a}
  d: {type: stdout, from: b}
""", {"a": (["a", "b"], 4, ["user", "region"], "buys->a")}),
    # A keyed node inside a stage whose entry is partitioned by its key.
    ("""\
  a: {type: map, from: {node: buys, edge: {partition_by: user}}, parallelism: 2, with: {set: {x: "1"}}}
  b: {type: dedupe, from: a, parallelism: 2, with: {key: [user, x]}}
  out: {type: stdout, from: b}
""", {"a": (["a", "b"], 2, ["user"], "buys->a")}),
])
def test_stages_of_valid_graphs(registry, body, stages):
    plan = plan_of(graph(body), registry)
    printed = plan["stages"]
    assert isinstance(printed, dict)
    assert {name: (s["members"], s["parallelism"], s["partition_by"], s["entry"]) for name, s in printed.items()} \
        == stages


def test_two_inputs_into_a_stage(registry):
    found = problems(graph("""\
  web: {type: generate, with: {count: 1, fields: {user: "1"}}}
  scored:
    type: map
    from: [buys, web]
    parallelism: 2
    with: {set: {x: "1"}}
  out: {type: stdout, from: scored}
"""), registry)
    assert found == [("HR100", 10, 18, "nodes.scored.from[1]",
                      "the partitioned stage 'scored' is entered by 2 edges (buys->scored, web->scored); "
                      "a partitioned stage takes one input edge",
                      "join the inputs in a node without `parallelism` (its `from:` lists them) and feed 'scored' "
                      "from that node, or set `parallelism: 1` on 'scored'")]


def test_a_stage_entered_in_two_places(registry):
    found = problems(graph("""\
  a: {type: map, from: buys, parallelism: 2, with: {set: {x: "1"}}}
  b:
    type: map
    from: [a, buys]
    parallelism: 2
    with: {set: {y: "1"}}
  out: {type: stdout, from: b}
"""), registry)
    assert [(code, line, column, path) for code, line, column, path, _, _ in found] \
        == [("HR100", 10, 15, "nodes.b.from[1]")]
    assert "the partitioned stage 'a' (a, b) is entered by 2 edges (buys->a, buys->b)" in found[0][4]


@pytest.mark.parametrize(("body", "where", "message"), [
    ("  out: {type: stdout, from: buys, parallelism: 2}\n", (7, 35),
     "'out' is a sink (stdout) and cannot run in parallel: sources and sinks run in the engine process"),
    ("  more:\n    type: generate\n    parallelism: 2\n    with: {count: 1, fields: {x: '1'}}\n"
     "  out: {type: stdout, from: [buys, more]}\n", (9, 5),
     "'more' is a source (generate) and cannot run in parallel: sources and sinks run in the engine process"),
])
def test_sources_and_sinks_run_in_the_engine_process(registry, body, where, message):
    found = problems(graph(body), registry)
    assert [(f[0], f[1], f[2], f[4]) for f in found] == [("HR101", *where, message)]
    assert found[0][5] == "remove `parallelism`, and give it to the transforms that do the work"


def test_a_gpu_node_cannot_have_parallelism(registry):
    found = problems(graph("""\
  scaled:
    type: opencl.map
    from: buys
    parallelism: 2
    with: {columns: {amount: float32}, set: {double: amount * 2}}
  out: {type: stdout, from: scaled}
"""), registry)
    assert [(f[0], f[1], f[2], f[3]) for f in found] == [("HR101", 10, 5, "nodes.scaled.parallelism")]
    assert "node of the opencl family" in found[0][4]


def test_a_keyed_node_needs_its_input_partitioned_by_its_key(registry):
    found = problems(graph("""\
  per_user:
    type: aggregate
    from: buys
    parallelism: 4
    with: {by: user, fields: {total: sum(amount)}}
  out: {type: stdout, from: per_user}
"""), registry)
    assert found == [("HR102", 9, 5, "nodes.per_user.from",
                      "'per_user' (aggregate) keeps state per 'user', but edge 'buys->per_user' into its stage has "
                      "no partition_by: events of one key would be spread over its instances",
                      "partition the input by the aggregate's key: "
                      "`from: {node: buys, edge: {partition_by: user}}`")]


def test_partitioning_by_a_field_outside_the_key(registry):
    found = problems(graph("""\
  seen:
    type: dedupe
    from: {node: buys, edge: {partition_by: [user, region]}}
    parallelism: 2
    with: {key: [user, amount]}
  out: {type: stdout, from: seen}
"""), registry)
    assert found == [("HR102", 9, 31, "nodes.seen.from.edge.partition_by",
                      "edge 'buys->seen' is partitioned by 'user' and 'region', but 'seen' (dedupe) keeps state per "
                      "'user' and 'amount': events of one key would reach different instances",
                      "partition by some or all of 'user' and 'amount': "
                      "`from: {node: buys, edge: {partition_by: [user, amount]}}`")]


def test_a_keyed_node_later_in_a_stage_is_checked_against_the_stage_entry(registry):
    found = problems(graph("""\
  a: {type: map, from: {node: buys, edge: {partition_by: region}}, parallelism: 2, with: {set: {x: "1"}}}
  b: {type: aggregate, from: a, parallelism: 2, with: {by: user, fields: {n: count()}}}
  out: {type: stdout, from: b}
"""), registry)
    assert [(f[0], f[1], f[2], f[3]) for f in found] == [("HR102", 7, 44, "nodes.a.from.edge.partition_by")]
    assert "'b' (aggregate) keeps state per 'user'" in found[0][4]


def test_one_total_for_all_events_never_runs_in_instances(registry):
    found = problems(graph("""\
  total:
    type: aggregate
    from: {node: buys, edge: {partition_by: user}}
    parallelism: 2
    with: {fields: {n: count()}}
  out: {type: stdout, from: total}
"""), registry)
    assert [(f[0], f[1], f[2], f[3]) for f in found] == [("HR102", 10, 5, "nodes.total.parallelism")]
    assert found[0][4] == ("'total' (aggregate) keeps one state for all events (its key is empty), so it cannot "
                           "run in 2 instances")


@pytest.mark.parametrize(("body", "where", "message"), [
    # Into the stage, written on the input.
    ("""\
  a: {type: map, from: {node: buys, edge: {durable: true}}, parallelism: 2, with: {set: {x: "1"}}}
  out: {type: stdout, from: a}
""", (7, 44, "nodes.a.from.edge.durable"), "this one is into the partitioned stage 'a', 2 instances"),
    # Out of the stage.
    ("""\
  a: {type: map, from: buys, parallelism: 2, with: {set: {x: "1"}}}
  out: {type: stdout, from: {node: a, edge: {durable: true}}}
""", (8, 46, "nodes.out.from.edge.durable"), "this one is out of the partitioned stage 'a', 2 instances"),
    # Inside the stage.
    ("""\
  a: {type: map, from: buys, parallelism: 2, with: {set: {x: "1"}}}
  b: {type: map, from: {node: a, edge: {durable: true}}, parallelism: 2, with: {set: {y: "1"}}}
  out: {type: stdout, from: b}
""", (8, 41, "nodes.b.from.edge.durable"), "this one is inside the partitioned stage 'a' (a, b), 2 instances"),
])
def test_durable_edges_touching_a_stage_are_refused(registry, body, where, message):
    found = problems(graph(body), registry)
    assert [(f[0], f[1], f[2], f[3]) for f in found] == [("HR103", *where)]
    assert "durable edges into or out of a partitioned stage are not supported" in found[0][4]
    assert message in found[0][4]
    assert found[0][5].startswith("make the edge a memory edge (`edge: {durable: false}` on this input)")


def test_a_durable_default_is_reported_at_each_input_it_reaches(registry):
    text = graph("""\
  a: {type: map, from: buys, parallelism: 2, with: {set: {x: "1"}}}
  out: {type: stdout, from: {node: a, edge: {durable: false}}}
""").replace("nodes:\n", "defaults: {edge: {durable: true}}\nnodes:\n")
    found = problems(text, registry)
    assert [(f[0], f[1], f[2], f[3]) for f in found] == [("HR103", 8, 18, "nodes.a.from")]
    assert found[0][4].startswith("edge 'buys->a' is durable (by defaults.edge): ")


def test_retry_in_a_parallel_node(registry):
    found = problems(graph("""\
  a:
    type: map
    from: buys
    parallelism: 2
    on_error: {action: retry, attempts: 2}
    with: {set: {x: "1 / amount"}}
  out: {type: stdout, from: a}
"""), registry)
    assert found == [("HR104", 11, 5, "nodes.a.on_error",
                      "'a' runs as 2 instances and cannot retry: retries wait on the engine's scheduler, which an "
                      "instance in another process does not have",
                      "use `on_error: drop` or `on_error: dead_letter`, or set `parallelism: 1`")]


def test_partition_by_without_parallelism_is_a_warning(registry):
    result = load_text("g.yaml", graph("""\
  out: {type: stdout, from: {node: buys, edge: {partition_by: user}}}
"""), registry, {})
    assert result.plan is not None
    assert [(p.code, p.severity, p.line, p.column, p.message, p.hint) for p in result.problems] == [
        ("HR105", "warning", 7, 49, "partition_by has no effect: 'out' runs as one instance",
         "remove `partition_by`, or give 'out' `parallelism: N`")]


@pytest.mark.parametrize(("body", "expected"), [
    ("  out: {type: stdout, from: buys}\n  a: {type: map, from: buys, parallelism: 0, with: {set: {x: '1'}}}\n",
     ("HR024", 8, 43, "nodes.a.parallelism")),
    ("  out: {type: stdout, from: buys}\n  a: {type: map, from: buys, parallelism: '2', with: {set: {x: '1'}}}\n",
     ("HR022", 8, 43, "nodes.a.parallelism")),
    ("  out: {type: stdout, from: buys}\n  a: {type: map, from: buys, parallelism: 2000, with: {set: {x: '1'}}}\n",
     ("HR024", 8, 43, "nodes.a.parallelism")),
    ("  out: {type: stdout, from: {node: buys, edge: {partition_by: []}}}\n",
     ("HR024", 7, 63, "nodes.out.from.edge.partition_by")),
])
def test_the_schema_checks_the_new_keys(registry, body, expected):
    found = problems(graph(body), registry)
    assert expected in [f[:4] for f in found]


def test_partition_by_is_refused_in_edge_defaults_with_a_hint(registry):
    text = graph("  out: {type: stdout, from: buys}\n").replace(
        "nodes:\n", "defaults: {edge: {partition_by: user}}\nnodes:\n")
    found = problems(text, registry)
    assert found == [("HR021", 3, 19, "defaults.edge.partition_by", "unknown key 'partition_by'",
                      "partition_by belongs to one input, the edge into a node with `parallelism`: "
                      "`from: {node: buys, edge: {partition_by: user}}`")]
