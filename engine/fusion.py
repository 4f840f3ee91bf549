"""Which nodes run fused: linear chains whose events cross without per-node dispatch.

A chain is a run of nodes joined by edges that change nothing about what is delivered:

- each link is the only edge leaving the producer's `out` port and the only input of the
  consumer, with the `block` policy (a block edge loses, merges and reorders nothing, so
  handing an event straight on is what it would deliver anyway);
- it starts at a `generate` source or a `map`/`filter`, continues through `map`s and
  `filter`s, and may end with a `route` (its ports fan out), an `aggregate` without a window
  (totals at the end of input) or `null`;
- no member retries (`on_error: retry` pauses one node alone, which a chain cannot do).

Ownership decides whether a fused `map` may set fields on the event it received instead of
copying it: only when no other node can hold the same event object.
"""

from typing import Final

from engine.edges import BLOCK
from engine.ids import DEFAULT_PORT
from engine.plan import DEFAULT_STORAGE, EdgePlan, GraphPlan, NodePlan

GENERATE: Final = "generate"
STEPS: Final = frozenset({"map", "filter"})  # may sit anywhere in a chain
LAST_ONLY: Final = frozenset({"route", "aggregate", "null"})
# Types whose `out` events are new objects nothing else holds (a map copies unless fused
# on owned input, in which case its input was already held by nobody else).
FRESH: Final = frozenset({"generate", "map", "aggregate"})
# Types that pass on the very event they received.
FORWARDING: Final = frozenset({"filter"})


def _fusable(node: NodePlan) -> bool:
    if node.on_error.action == "retry":
        return False
    if node.type == "aggregate":
        return "window" not in node.params()
    return node.type == GENERATE or node.type in STEPS or node.type in LAST_ONLY


class ChainFinder:
    def __init__(self, plan: GraphPlan) -> None:
        self.plan = plan
        self.nodes = {n.name: n for n in plan.nodes}
        self.leaving: dict[tuple[str, str], list[EdgePlan]] = {}
        for edge in plan.edges:
            self.leaving.setdefault((edge.from_node, edge.from_port), []).append(edge)
        self.edges = {e.id: e for e in plan.edges}

    def link(self, node: NodePlan) -> EdgePlan | None:
        """The edge a chain continues along from `node`, or None where it must end."""
        if node.type != GENERATE and node.type not in STEPS:
            return None
        out = self.leaving.get((node.name, DEFAULT_PORT), [])
        if len(out) != 1 or out[0].policy != BLOCK or out[0].storage != DEFAULT_STORAGE:
            return None
        target = self.nodes[out[0].to_node]
        if target.inputs != (out[0].id,) or not _fusable(target) or target.type == GENERATE:
            return None
        return out[0]

    def chains(self) -> list[list[str]]:
        """Every chain of two or more nodes, in plan order of their first node."""
        continued = set()
        for node in self.plan.nodes:
            if _fusable(node):
                edge = self.link(node)
                if edge is not None:
                    continued.add(edge.to_node)
        found: list[list[str]] = []
        for node in self.plan.nodes:
            if node.name in continued or not _fusable(node) or node.type in LAST_ONLY:
                continue
            chain = [node.name]
            current = node
            edge = self.link(current)
            while edge is not None:
                current = self.nodes[edge.to_node]
                chain.append(current.name)
                edge = self.link(current)
            if len(chain) > 1:
                found.append(chain)
        return found

    def owned(self, edge_id: str, seen: frozenset[str] = frozenset()) -> bool:
        """Whether the consumer of this edge is the only holder of the events on it."""
        edge = self.edges[edge_id]
        if len(self.leaving.get((edge.from_node, edge.from_port), [])) != 1 or edge.from_port != DEFAULT_PORT:
            return False
        producer = self.nodes[edge.from_node]
        if producer.type in FRESH:
            return True
        if producer.type in FORWARDING and producer.name not in seen:
            inner = seen | {producer.name}
            return all(self.owned(i, inner) for i in producer.inputs)
        return False
