"""Which nodes run fused: linear chains whose events cross without per-node dispatch.

A chain is a run of nodes joined by edges that change nothing about what is delivered:

- each link is the only edge leaving the producer's `out` port and the only input of the
  consumer, with the `block` policy (a block edge loses, merges and reorders nothing, so
  handing an event straight on is what it would deliver anyway);
- each member's type has a fusion role in its spec (engine/spec.py FusionRole), and its
  parameters allow it (an `aggregate` with a window does not fuse): a chain starts at a
  head (`generate`) or a step (`map`, `filter`, `lookup`, `explode`), continues through steps, and may end with
  a last-only member (`route`, whose ports fan out; `aggregate`, totals at the end of
  input; `null`);
- no member retries (`on_error: retry` pauses one node alone, which a chain cannot do).

Ownership decides whether a fused `map` may set fields on the event it received instead of
copying it: only when no other node can hold the same event object.
"""

from engine.chain import LAST_MEMBER, MEMBER, NOT_MEMBER, find_chains
from engine.errors import RETRY
from engine.ids import DEFAULT_PORT
from engine.plan import EdgePlan, GraphPlan, NodePlan
from engine.spec import FORWARDED, FRESH, LAST, FusionRole, SpecRegistry


class ChainFinder:
    def __init__(self, plan: GraphPlan, registry: SpecRegistry) -> None:
        self.plan = plan
        self.registry = registry
        # Each node's fusion role, from its type's spec; None where the type never fuses.
        self.roles: dict[str, FusionRole | None] = {}
        for node in plan.nodes:
            spec = registry.get(node.type)
            self.roles[node.name] = spec.fusion if spec is not None else None
        self.nodes = {n.name: n for n in plan.nodes}
        self.leaving: dict[tuple[str, str], list[EdgePlan]] = {}
        for edge in plan.edges:
            self.leaving.setdefault((edge.from_node, edge.from_port), []).append(edge)
        self.edges = {e.id: e for e in plan.edges}

    def chains(self) -> list[list[str]]:
        """Every chain of two or more nodes, in plan order of their first node (a lone node
        runs on its own, with nothing to fuse)."""
        return [chain for chain in find_chains(self.plan, self.membership) if len(chain) > 1]

    def membership(self, node: NodePlan) -> int:
        """How a node takes part in fused chains (engine/chain.py:find_chains)."""
        role = self.roles[node.name]
        if role is None or node.on_error.action == RETRY:
            return NOT_MEMBER
        spec = self.registry.get(node.type)
        # The predicate reads the parameters as the node will get them; the plan holds them
        # as JSON because chains are found before (and without) building any node.
        if spec is None or not role.fusable(spec.parse(node.params())):
            return NOT_MEMBER
        return LAST_MEMBER if role.place == LAST else MEMBER

    def role(self, name: str) -> FusionRole:
        """The role of a chain member."""
        role = self.roles[name]
        assert role is not None, f"node '{name}' is in a chain but its type has no fusion role"
        return role

    def owned(self, edge_id: str, seen: frozenset[str] = frozenset()) -> bool:
        """Whether the consumer of this edge is the only holder of the events on it."""
        edge = self.edges[edge_id]
        if len(self.leaving.get((edge.from_node, edge.from_port), [])) != 1 or edge.from_port != DEFAULT_PORT:
            return False
        producer = self.nodes[edge.from_node]
        role = self.roles[producer.name]
        spec = self.registry.get(producer.type)
        output = role.output if role is not None else spec.output if spec is not None else ""
        if output == FRESH:
            return True
        if output == FORWARDED and producer.name not in seen:
            inner = seen | {producer.name}
            return all(self.owned(i, inner) for i in producer.inputs)
        return False
