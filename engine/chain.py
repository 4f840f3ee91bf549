"""Chains that run as one scheduler node: what fused loops and GPU segments share.

A chain is a linear run of nodes whose links (block edges, each the only way out of one
member and into the next) never hold events between passes. The scheduler sees one
`SegmentRunner`: the head's inputs and every member port that is not a link. Members keep
their own runners, so statistics, errors and dead letters still come per node.

How the members run is the subclass's business: a generated Python loop (engine/fused.py)
or kernels over typed columns (adapters/gpu). Adapters subclass `Chain` and `SegmentBuilder`
from interpreted code, hence `allow_interpreted_subclasses`.

Which nodes form chains is one rule, `find_chains`, given which nodes may be members: CPU
fusion (engine/fusion.py) and every node family's segments (GPU) use it.
"""

from collections.abc import Callable
from typing import Final

from mypy_extensions import mypyc_attr

from engine.edges import Edge, Observer
from engine.ids import DEFAULT_PORT
from engine.node import Batch, Clock, Source, Transform
from engine.plan import EdgePlan, GraphPlan, NodePlan
from engine.policies import policy_named
from engine.runner import NodeRunner

# How a node takes part in the chains of one kind (fused loops, or one family's segments).
NOT_MEMBER: Final = 0
MEMBER: Final = 1  # anywhere in a chain
LAST_MEMBER: Final = 2  # may join a chain but ends it (its output fans out, or it emits totals)

Membership = Callable[[NodePlan], int]


def plain_link(edge: EdgePlan) -> bool:
    """An edge a chain may run across: in memory, with a policy that loses, merges and
    reorders nothing (`block`), so handing each event straight on delivers what it would."""
    return not edge.durable and policy_named(edge.policy).passes_everything


def find_chains(plan: GraphPlan, membership: Membership) -> list[list[str]]:
    """Every maximal chain of members, each in chain order, listed in plan order of their heads.

    Node B continues A's chain when both are members, A is not a last member, B's only input
    is A's `out` port, nobody else reads that port, and the edge between them is plain. Every
    member is in exactly one chain, alone where nothing links it."""
    roles = {node.name: membership(node) for node in plan.nodes}
    readers: dict[tuple[str, str], int] = {}
    for edge in plan.edges:
        readers[(edge.from_node, edge.from_port)] = readers.get((edge.from_node, edge.from_port), 0) + 1
    edges = {edge.id: edge for edge in plan.edges}
    following: dict[str, str] = {}
    for node in plan.nodes:
        if roles[node.name] == NOT_MEMBER or len(node.inputs) != 1:
            continue
        link = edges[node.inputs[0]]
        if (roles[link.from_node] == MEMBER and link.from_port == DEFAULT_PORT
                and readers[(link.from_node, DEFAULT_PORT)] == 1 and plain_link(link)):
            following[link.from_node] = node.name
    continued = set(following.values())
    found: list[list[str]] = []
    for node in plan.nodes:
        if roles[node.name] == NOT_MEMBER or node.name in continued:
            continue
        chain = [node.name]
        while chain[-1] in following:
            chain.append(following[chain[-1]])
        found.append(chain)
    return found



@mypyc_attr(allow_interpreted_subclasses=True)
class Chain:
    def __init__(self, runners: list[NodeRunner], links: list[Edge]) -> None:
        self.runners = runners
        self.links = links
        self.outputs: list[list[Edge]] = []  # the chain's ports: every member port not linked
        self.member_ports: list[list[int]] = []  # per member, per own port: chain port or -1
        last = len(runners) - 1
        for j, r in enumerate(runners):
            mapping: list[int] = []
            for p, port in enumerate(r.plan.outputs):
                if j < last and port == DEFAULT_PORT:
                    mapping.append(-1)
                    continue
                mapping.append(len(self.outputs))
                self.outputs.append(r.outputs[p])
            self.member_ports.append(mapping)
        self.ports_of = [[k for k in mapping if k >= 0] for mapping in self.member_ports]
        self.views: list[list[Batch]] = []
        # Link index -> observers of the events crossing it (control-plane taps).
        self.taps: dict[int, list[Observer]] = {}

    def set_taps(self, link: int, taps: list[Observer]) -> None:
        """Observe one link (or stop, with an empty list)."""
        if taps:
            self.taps[link] = taps
        else:
            self.taps.pop(link, None)

    def point_views(self, outs: list[Batch]) -> None:
        """Each member's own ports, as this call's chain output lists."""
        self.views = [[outs[k] if k >= 0 else [] for k in mapping] for mapping in self.member_ports]

    def cross_link(self, j: int, passed: int) -> None:
        """`passed` events crossed the link after member j, as the block edge would count."""
        link = self.links[j]
        link.enqueued += passed
        link.delivered += passed
        crossed = min(passed, link.capacity)
        if crossed > link.high_water:
            link.high_water = crossed


class SegmentRunner(NodeRunner):
    """A chain as the scheduler sees it: the head's inputs, every unlinked port."""

    def __init__(self, segment: Chain, impl: Transform | Source) -> None:
        head = segment.runners[0]
        super().__init__(head.plan, head.ctx, impl, head.inputs, segment.outputs)
        self.segment = segment
        self.tail = segment.runners[-1].name
        self.members = [r.name for r in segment.runners]

    def close_outputs(self) -> None:
        super().close_outputs()
        for edge in self.segment.links:
            edge.closed = True
        for r in self.segment.runners:
            r.flushed = True
            r.finished = True


@mypyc_attr(allow_interpreted_subclasses=True)
class SegmentBuilder:
    """What runs a node family's chains (GPU segments): which nodes are members, and the
    runners of their chains for one runtime. Every member must end up in exactly one chain,
    which runs it: a member cannot run on its own."""

    def membership(self, node: NodePlan) -> int:
        raise NotImplementedError

    def build(self, plan: GraphPlan, runners: dict[str, NodeRunner], edges: dict[str, Edge],
              clock: Clock) -> list[SegmentRunner]:
        raise NotImplementedError

    def chains(self, plan: GraphPlan) -> list[list[str]]:
        """The family's chains in `plan`, by the one rule (`find_chains`)."""
        return find_chains(plan, self.membership)
