"""The picture of one plan as plain data: nodes with their kind, type and output ports,
edges with a short label, and the groups that run as one (fused chains, GPU segments).

It holds names, types, policies and capacities only: never a parameter value, so a
picture cannot show a secret. The order is fixed (nodes upstream first, ties by name), so
the same plan always gives the same text.
"""

import json
from dataclasses import dataclass
from typing import Final

from engine.ids import DEFAULT_PORT
from engine.plan import ERRORS_PORT, EdgePlan, GraphPlan
from engine.plan_chains import chains
from engine.spec import TRANSFORM, SpecRegistry

FUSED: Final = "fused"  # a CPU chain that runs as one scheduler node
SEGMENT: Final = "segment"  # a node family's segment (the `opencl` family: a GPU kernel)
SEP: Final = " · "
FAMILY_LABELS: Final = {"opencl": "GPU segment (opencl)"}


@dataclass(frozen=True)
class Node:
    id: str  # safe in Mermaid and DOT: `n_` and the node name (so never a keyword like `end`)
    name: str
    type: str
    kind: str  # source, transform or sink
    ports: tuple[str, ...]  # output ports, as the plan lists them


@dataclass(frozen=True)
class Edge:
    id: str  # the plan's edge id
    source: str  # node ids
    target: str
    port: str
    policy: str
    capacity: int
    durable: bool

    @property
    def dead_letter(self) -> bool:
        return self.port == ERRORS_PORT

    @property
    def label(self) -> str:
        """`[port · ]policy capacity[ · durable]`: the port only when it is not `out`."""
        parts = [] if self.port == DEFAULT_PORT else [self.port]
        parts.append(f"{self.policy} {self.capacity}")
        if self.durable:
            parts.append("durable")
        return SEP.join(parts)


@dataclass(frozen=True)
class Group:
    id: str
    kind: str  # FUSED or SEGMENT
    family: str  # the node family of a segment, "" for a fused chain
    nodes: tuple[str, ...]  # node ids, in chain order

    @property
    def label(self) -> str:
        if self.kind == FUSED:
            return "fused chain"
        return FAMILY_LABELS.get(self.family, f"{self.family} segment")


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    groups: tuple[Group, ...]

    def group_of(self, node_id: str) -> Group | None:
        return next((g for g in self.groups if node_id in g.nodes), None)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "nodes": [{"id": n.id, "name": n.name, "type": n.type, "kind": n.kind, "ports": list(n.ports)}
                      for n in self.nodes],
            "edges": [{"id": e.id, "from": e.source, "port": e.port, "to": e.target, "policy": e.policy,
                       "capacity": e.capacity, "durable": e.durable, "label": e.label} for e in self.edges],
            "groups": [{"id": g.id, "kind": g.kind, "family": g.family, "label": g.label, "nodes": list(g.nodes)}
                       for g in self.groups],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


def node_id(name: str) -> str:
    return "n_" + name


def _upstream_first(plan: GraphPlan) -> list[str]:
    """Node names in topological order, ties broken by name (a plan has no cycles; any node
    left over is appended by name all the same)."""
    waiting = {n.name: {e.from_node for e in plan.edges if e.to_node == n.name} for n in plan.nodes}
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, before in waiting.items() if not before) or sorted(waiting)[:1]
        for name in ready:
            del waiting[name]
            order.append(name)
        for before in waiting.values():
            before.difference_update(ready)
    return order


def _edge(edge: EdgePlan) -> Edge:
    return Edge(edge.id, node_id(edge.from_node), node_id(edge.to_node), edge.from_port, edge.policy,
                edge.capacity, edge.durable)


def _groups(plan: GraphPlan, registry: SpecRegistry) -> tuple[Group, ...]:
    groups: list[Group] = []
    for chain in chains(plan, registry):
        family = registry.family_of(plan.node(chain[0]).type)
        if family is None and len(chain) < 2:
            continue  # a lone node is no group (a family's lone member still is a segment)
        kind = FUSED if family is None else SEGMENT
        groups.append(Group(f"g_{chain[0]}", kind, "" if family is None else family.name,
                            tuple(node_id(name) for name in chain)))
    return tuple(sorted(groups, key=lambda g: g.id))


def topology(plan: GraphPlan, registry: SpecRegistry) -> Topology:
    order = _upstream_first(plan)
    rank = {name: i for i, name in enumerate(order)}
    nodes: list[Node] = []
    for name in order:
        node = plan.node(name)
        spec = registry.get(node.type)
        nodes.append(Node(node_id(name), name, node.type, spec.kind if spec else TRANSFORM, node.outputs))

    def edge_order(edge: EdgePlan) -> tuple[int, int, int]:
        ports = plan.node(edge.from_node).outputs
        port = ports.index(edge.from_port) if edge.from_port in ports else len(ports)
        return rank[edge.from_node], port, rank[edge.to_node]

    edges = tuple(_edge(e) for e in sorted(plan.edges, key=edge_order))
    return Topology(plan.name, tuple(nodes), edges, _groups(plan, registry))
