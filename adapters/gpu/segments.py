"""Which `opencl.*` nodes form one segment: the same rule for the loader and the runtime.

A segment is a maximal chain: node B continues A's segment when B's only input is A's `out`
port, nobody else reads that port, the edge is an in-memory `block` edge (it changes
nothing about delivery, so the events can stay columns on the device), and A is not an
`opencl.reduce` (a reduce ends its segment). Every `opencl.*` node is in exactly one
segment, alone if nothing links it.
"""

from collections import Counter
from dataclasses import dataclass

from engine.ids import DEFAULT_PORT
from engine.plan import DEFAULT_POLICY, DEFAULT_STORAGE, GraphPlan


@dataclass(frozen=True)
class Link:
    source: str
    port: str
    plain: bool  # block policy, in memory


def plain(policy: object, storage: object) -> bool:
    """An edge a segment can run across: in memory, with the `block` policy."""
    return policy == DEFAULT_POLICY and storage == DEFAULT_STORAGE


def find_segments(order: list[str], members: set[str], inputs: dict[str, list[Link]],
                  ends: set[str]) -> list[list[str]]:
    """The segments among `members` (node names), each in chain order, in `order`."""
    readers = Counter((link.source, link.port) for links in inputs.values() for link in links)
    following: dict[str, str] = {}
    for name in order:
        links = inputs.get(name, [])
        if name not in members or len(links) != 1:
            continue
        link = links[0]
        if (link.source in members and link.port == DEFAULT_PORT and link.plain
                and readers[(link.source, DEFAULT_PORT)] == 1 and link.source not in ends):
            following[link.source] = name
    continued = set(following.values())
    segments: list[list[str]] = []
    for name in order:
        if name not in members or name in continued:
            continue
        chain = [name]
        while chain[-1] in following:
            chain.append(following[chain[-1]])
        segments.append(chain)
    return segments


def plan_segments(plan: GraphPlan, family: set[str], ends: set[str]) -> list[list[str]]:
    """The segments of a compiled plan whose node types are in `family`."""
    edges = {e.id: e for e in plan.edges}
    inputs = {n.name: [Link(edges[i].from_node, edges[i].from_port, plain(edges[i].policy, edges[i].storage))
                       for i in n.inputs] for n in plan.nodes}
    members = {n.name for n in plan.nodes if n.type in family}
    reduce_nodes = {n.name for n in plan.nodes if n.type in ends}
    return find_segments([n.name for n in plan.nodes], members, inputs, reduce_nodes)
