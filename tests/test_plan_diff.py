"""Which nodes a reload keeps, replaces, adds and removes (engine/plan_diff.py)."""

import textwrap

from engine.plan_chains import chains
from engine.plan_diff import NodeChanges, diff_plans
from engine.runtime import source_nodes
from loader.api import load_text
from tests.runtime_support import test_registry as make_registry

BASE = """
version: 2
nodes:
  orders: {type: test.numbers, with: {count: 10}}
  priced: {type: map, from: orders, with: {set: {cents: "i * 100"}}}
  audit: {type: test.record, from: orders}
  per_k:
    type: aggregate
    from: priced
    with: {by: k, fields: {n: "count()"}, window: {type: tumbling, size: 1s}}
  out: {type: test.record, from: per_k}
"""


def plan(text: str):
    loaded = load_text("g.yaml", textwrap.dedent(text), make_registry())
    assert loaded.plan is not None, loaded.problems
    return loaded.plan


def diff(old_text: str, new_text: str) -> NodeChanges:
    registry = make_registry()
    old, new = plan(old_text), plan(new_text)
    sources = source_nodes(old, registry) | source_nodes(new, registry)
    return diff_plans(old, new, chains(old, registry), chains(new, registry), sources)


def test_a_changed_sink_is_replaced_and_everything_upstream_kept():
    changes = diff(BASE, BASE.replace("out: {type: test.record, from: per_k}",
                                      "out: {type: \"null\", from: per_k}"))
    assert changes == NodeChanges(kept=("audit", "orders", "per_k", "priced"), replaced=("out",))


def test_a_changed_map_replaces_it_and_everything_downstream():
    changes = diff(BASE, BASE.replace("i * 100", "i * 10"))
    assert changes.kept == ("audit", "orders")
    assert changes.replaced == ("out", "per_k", "priced")
    assert not changes.whole_swap


def test_an_input_edges_options_belong_to_its_consumer():
    changes = diff(BASE, BASE.replace("from: priced", "from: {node: priced, edge: {capacity: 8}}"))
    assert changes.kept == ("audit", "orders", "priced")
    assert changes.replaced == ("out", "per_k")


def test_added_and_removed_nodes_and_the_consumer_whose_inputs_changed():
    new = BASE.replace("  audit: {type: test.record, from: orders}\n", "") + \
        "  extra: {type: filter, from: priced, with: {where: \"k == 1\"}}\n" + \
        "  seen: {type: test.record, from: extra}\n"
    changes = diff(BASE, new)
    assert changes.added == ("extra", "seen")
    assert changes.removed == ("audit",)
    assert changes.kept == ("orders", "out", "per_k", "priced")
    assert changes.replaced == ()


def test_a_chain_is_kept_or_replaced_whole():
    chained = """
    version: 2
    nodes:
      orders: {type: test.numbers, with: {count: 10}}
      a: {type: map, from: orders, with: {set: {x: "i + 1"}}}
      b: {type: map, from: a, with: {set: {y: "x + 1"}}}
      c: {type: filter, from: b, with: {where: "y > 2"}}
      out: {type: test.record, from: c}
    """
    changes = diff(chained, chained.replace("x + 1", "x + 2"))
    # a, b and c run as one fused loop: b changed, so a is built again with it.
    assert changes.kept == ("orders",)
    assert changes.replaced == ("a", "b", "c", "out")


def test_a_source_fused_with_a_changed_node_is_carried_into_the_new_chain():
    fused = """
    version: 2
    nodes:
      ticks: {type: generate, with: {count: 100, fields: {n: i}}}
      doubled: {type: map, from: ticks, with: {set: {d: "n * 2"}}}
      out: {type: test.record, from: doubled}
    """
    changes = diff(fused, fused.replace("n * 2", "n * 3"))
    assert not changes.whole_swap
    assert changes.kept == ("ticks",) and changes.carried == ("ticks",)  # kept, with its position
    assert changes.replaced == ("doubled", "out")


def test_a_durable_edge_next_to_a_changed_node_swaps_the_whole_graph():
    durable = BASE.replace("from: priced", "from: {node: priced, edge: {durable: true}}")
    changes = diff(durable, durable.replace("out: {type: test.record, from: per_k}",
                                            "out: {type: \"null\", from: per_k}"))
    assert changes.kept == ("audit", "orders", "per_k", "priced")  # the durable edge is not touched
    changes = diff(durable, durable.replace("size: 1s", "size: 2s"))
    assert changes.whole_swap == "durable edge 'priced->per_k' feeds or leaves a changed node"


def test_a_chain_split_by_a_new_consumer_is_built_again():
    chained = """
    version: 2
    nodes:
      orders: {type: test.numbers, with: {count: 10}}
      a: {type: filter, from: orders, with: {where: "i > 1"}}
      b: {type: route, from: a, with: {routes: {even: "i % 2 == 0"}}}
      out: {type: test.record, from: b.even}
      rest: {type: test.record, from: b.unmatched}
    """
    # a and b run fused; a second reader of a's output ends the chain at a.
    changes = diff(chained, chained + "  more: {type: test.record, from: a}\n")
    assert changes.kept == ("orders",)
    assert changes.replaced == ("a", "b", "out", "rest") and changes.added == ("more",)
