"""Chains that run as one scheduler node: what fused loops and GPU segments share.

A chain is a linear run of nodes whose links (block edges, each the only way out of one
member and into the next) never hold events between passes. The scheduler sees one
`SegmentRunner`: the head's inputs and every member port that is not a link. Members keep
their own runners, so statistics, errors and dead letters still come per node.

How the members run is the subclass's business: a generated Python loop (engine/fused.py)
or kernels over typed columns (adapters/gpu). Adapters subclass `Chain` from interpreted
code, hence `allow_interpreted_subclasses`.
"""

from typing import Callable

from mypy_extensions import mypyc_attr

from engine.edges import Edge
from engine.ids import DEFAULT_PORT
from engine.node import Batch, Clock, Source, Transform
from engine.plan import GraphPlan
from engine.runner import NodeRunner



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
        self.taps: dict[int, list[Callable[[Batch], None]]] = {}

    def set_taps(self, link: int, taps: list[Callable[[Batch], None]]) -> None:
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


# Builds the chains of one family of node types (NodeSpec.segment) for a runtime: every
# node of the family must end up in exactly one chain, which runs it.
SegmentBuilder = Callable[[GraphPlan, dict[str, NodeRunner], dict[str, Edge], Clock], list[SegmentRunner]]
