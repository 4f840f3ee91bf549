"""Which nodes of a plan run together as one scheduler node: fused CPU chains and every
node family's segments (GPU). A reload needs this to tell whether a change splits a chain
differently; the rule itself is engine/chain.py:find_chains, given each kind's membership.
"""

from engine.fusion import ChainFinder
from engine.plan import GraphPlan
from engine.spec import SpecRegistry


def chains(plan: GraphPlan, registry: SpecRegistry) -> list[list[str]]:
    """Every fused chain (two or more nodes) and every family segment (a lone member too),
    each as node names in chain order, as a runtime with fusion on runs them."""
    found = ChainFinder(plan, registry).chains()
    for family in registry.families_in(plan):
        if family.segment_builder is not None:
            found.extend(family.segment_builder.chains(plan))
    return found
