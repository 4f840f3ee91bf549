"""Which nodes of a plan run together as one scheduler node: fused CPU chains and every
node family's segments (GPU). A reload needs this to tell whether a change splits a chain
differently; the rule itself is engine/chain.py:find_chains, given each kind's membership.
"""

from engine.fusion import ChainFinder
from engine.partition import expand
from engine.plan import GraphPlan
from engine.plan_diff import NodeChanges, diff_plans, whole_graph
from engine.spec import SpecRegistry


def chains(plan: GraphPlan, registry: SpecRegistry) -> list[list[str]]:
    """Every fused chain (two or more nodes) and every family segment (a lone member too),
    each as node names in chain order, as a runtime with fusion on runs them."""
    found = ChainFinder(plan, registry).chains()
    for family in registry.families_in(plan):
        if family.segment_builder is not None:
            found.extend(family.segment_builder.chains(plan))
    return found


def run_chains(plan: GraphPlan, registry: SpecRegistry, fuse: bool = True) -> list[list[str]]:
    """The chains a runtime builds for `plan`: with `fuse=False` only family segments."""
    found = chains(plan, registry)
    if not fuse:
        fused = ChainFinder(plan, registry).chains()
        found = [c for c in found if c not in fused]
    return found


def source_nodes(plan: GraphPlan, registry: SpecRegistry) -> frozenset[str]:
    """The nodes of `plan` that take no input."""
    out: set[str] = set()
    for node in plan.nodes:
        spec = registry.get(node.type)
        if spec is not None and not spec.takes_input:
            out.add(node.name)
    return frozenset(out)


def reload_changes(old: GraphPlan, new: GraphPlan, registry: SpecRegistry, old_chains: list[list[str]],
                   blocker: str = "", fuse: bool = True) -> NodeChanges:
    """What reloading `new` over a graph that runs `old` (as `old_chains`) keeps and replaces.

    A pure function of the plans, so that `engine serve` (through `Runtime.diff`) and
    `engine diff` (with nothing running) decide with the same code. `blocker` says why the
    nodes cannot be swapped in place (a paused or stopping graph): then the whole graph is.
    """
    # Partitioned stages are compared as they run: a changed member replaces every instance
    # of its stage, and a stage nothing changed keeps its instances (engine/partition.py).
    old, new = expand(old), expand(new)
    if blocker:
        return whole_graph(old, new, blocker)
    sources = source_nodes(old, registry) | source_nodes(new, registry)
    return diff_plans(old, new, old_chains, run_chains(new, registry, fuse), sources)
