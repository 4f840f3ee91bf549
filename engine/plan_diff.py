"""A reload as a diff of two plans of one graph, node by node and edge by edge.

A node is `kept` when its plan and its whole upstream are unchanged: it goes on running with
its state (open windows, `dedupe` memory, source positions). A node whose plan changed, and
every node downstream of it, is `replaced`: drained, then built again from the new plan.
An input edge's options (capacity, policy, durable, key, merge) belong to its consumer:
changing them replaces the consumer and keeps the producer. Events waiting on an edge from
a kept node to a replaced one are handed over to the replacement.

Where this is not safe the whole graph is swapped instead, and `whole_swap` says why.
"""

from dataclasses import dataclass

from engine.plan import EdgePlan, GraphPlan, NodePlan

NODE_KEPT = "kept"
NODE_REPLACED = "replaced"
NODE_ADDED = "added"
NODE_REMOVED = "removed"


@dataclass(frozen=True)
class NodeChanges:
    """What a reload does to each node of one graph (names sorted in each list)."""

    kept: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    # Why the whole graph is swapped instead ("" when only `replaced`/`added`/`removed` change).
    whole_swap: str = ""
    # Kept sources that run fused with replaced nodes: the chain is built again around the
    # same source object, which goes on from where it was (listed in `kept` too).
    carried: tuple[str, ...] = ()

    def retired(self) -> frozenset[str]:
        """The running nodes (or chains around a carried source) that stop."""
        return frozenset(self.replaced) | frozenset(self.removed) | frozenset(self.carried)

    def built(self) -> frozenset[str]:
        """The nodes built from the new plan (a carried source keeps its object)."""
        return frozenset(self.replaced) | frozenset(self.added) | frozenset(self.carried)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {NODE_KEPT: list(self.kept), NODE_REPLACED: list(self.replaced),
                                  NODE_ADDED: list(self.added), NODE_REMOVED: list(self.removed)}
        if self.whole_swap:
            out["whole_swap"] = self.whole_swap
        return out


def whole_graph(old: GraphPlan | None, new: GraphPlan, reason: str) -> NodeChanges:
    """Every node of the new plan is built afresh (a new graph, or a whole-graph swap)."""
    old_names = {n.name for n in old.nodes} if old is not None else set()
    new_names = {n.name for n in new.nodes}
    return NodeChanges(replaced=tuple(sorted(old_names & new_names)), added=tuple(sorted(new_names - old_names)),
                       removed=tuple(sorted(old_names - new_names)), whole_swap=reason)


def _consumers(plan: GraphPlan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {n.name: [] for n in plan.nodes}
    for edge in plan.edges:
        out[edge.from_node].append(edge.to_node)
    return out


def _downstream(plan: GraphPlan, start: set[str]) -> set[str]:
    consumers = _consumers(plan)
    seen = set(start)
    todo = sorted(start)
    while todo:
        name = todo.pop()
        for consumer in consumers.get(name, []):
            if consumer not in seen:
                seen.add(consumer)
                todo.append(consumer)
    return seen


def _changed(old: GraphPlan, new: GraphPlan) -> set[str]:
    """Nodes in both plans whose own plan or whose input edges' options differ."""
    old_nodes: dict[str, NodePlan] = {n.name: n for n in old.nodes}
    old_edges: dict[str, EdgePlan] = {e.id: e for e in old.edges}
    changed: set[str] = set()
    for node in new.nodes:
        before = old_nodes.get(node.name)
        if before is None:
            continue
        if before != node:
            changed.add(node.name)
    for edge in new.edges:
        before_edge = old_edges.get(edge.id)
        if before_edge is not None and before_edge != edge and edge.to_node in old_nodes:
            changed.add(edge.to_node)
    return changed


def diff_plans(old: GraphPlan, new: GraphPlan, old_chains: list[list[str]], new_chains: list[list[str]],
               sources: frozenset[str]) -> NodeChanges:
    """Which nodes a reload from `old` to `new` keeps, replaces, adds and removes.

    `old_chains` and `new_chains` are the nodes that run as one (fused chains, GPU segments)
    in each plan; `sources` names the source nodes of either plan. A chain runs as a whole,
    so a chain holding both kept and rebuilt nodes has its kept members replaced too, except
    a source at its head: that one is carried into the new chain with its state.
    """
    old_names = {n.name for n in old.nodes}
    new_names = {n.name for n in new.nodes}
    added = new_names - old_names
    removed = old_names - new_names
    # A chain that is not the same in both plans (a consumer added to a member's port, a
    # link's options changed) runs differently: its members are built again.
    split = {tuple(c) for c in old_chains} ^ {tuple(c) for c in new_chains}
    regrouped = {name for chain in split for name in chain if name in new_names and name in old_names}
    changed = _changed(old, new)
    carried = (regrouped & sources) - changed
    rebuilt = _downstream(new, changed | added | (regrouped - carried))
    while True:  # a chain is kept or rebuilt whole; growing `rebuilt` may reach other chains
        grown = set(rebuilt)
        for chain in old_chains + new_chains:
            members = set(chain)
            if members & (rebuilt | removed) and members - rebuilt - removed:
                kept_members = (members - removed) - rebuilt
                carried |= kept_members & sources
                grown |= (kept_members - sources) & new_names
        # Every edge leaving a carried source is a new object: what reads it is built again.
        grown |= {e.to_node for e in new.edges if e.from_node in carried}
        grown = _downstream(new, grown)
        if grown == rebuilt:
            break
        rebuilt = grown
    kept = new_names - rebuilt
    if not kept:
        return whole_graph(old, new, "every node changed")
    touched = rebuilt | removed | carried
    for edges in (old.edges, new.edges):
        for edge in edges:
            if edge.durable and (edge.to_node in touched or edge.from_node in touched):
                return whole_graph(old, new, f"durable edge '{edge.id}' feeds or leaves a changed node")
    return NodeChanges(kept=tuple(sorted(kept)), replaced=tuple(sorted(rebuilt - added)),
                       added=tuple(sorted(added)), removed=tuple(sorted(removed)), carried=tuple(sorted(carried)))
