"""What the control plane can do to a running graph: pause and resume it or one node,
and tap an edge. The scheduler asks `is_paused` before running a node."""


from engine.chain import Chain, SegmentRunner
from engine.edges import Edge, Observer
from engine.runner import NodeRunner
from engine.wakeup import Wakeup


class Controls:
    def __init__(self, edges: dict[str, Edge], segments: list[SegmentRunner], signal: Wakeup) -> None:
        self.edges = edges
        self.segments = segments
        self.signal = signal
        self.paused_graph = False  # the whole graph is paused
        self.paused_nodes: set[str] = set()  # ... or these nodes

    def clear(self) -> None:
        """A stop resumes whatever was paused, or the drain could never finish."""
        self.paused_graph = False
        self.paused_nodes.clear()

    def pause(self, node: str = "") -> bool:
        """Pause the graph, or one node; True when that changed anything. A paused node
        neither takes nor emits events: whatever feeds it backs up on its edges."""
        if not node:
            changed = not self.paused_graph
            self.paused_graph = True
        else:
            changed = node not in self.paused_nodes
            self.paused_nodes.add(node)
        return changed

    def resume(self, node: str = "") -> bool:
        if not node:
            changed = self.paused_graph
            self.paused_graph = False
        else:
            changed = node in self.paused_nodes
            self.paused_nodes.discard(node)
        self.signal.notify()
        return changed

    def is_paused(self, r: NodeRunner) -> bool:
        if r.stop_requested:  # retiring in a partial reload: it must drain whatever is paused
            return False
        if self.paused_graph:
            return True
        if not self.paused_nodes:
            return False
        return any(name in self.paused_nodes for name in r.members)

    def node_paused(self, name: str) -> bool:
        return self.paused_graph or name in self.paused_nodes

    def tap(self, edge_id: str, observe: Observer) -> None:
        """Show `observe` every batch delivered on an edge (one event at a time inside a
        fused chain); `untap` stops it."""
        located = self._fused_link(edge_id)
        if located is None:
            self.edges[edge_id].taps.append(observe)
            return
        segment, link = located
        segment.set_taps(link, segment.taps.get(link, []) + [observe])

    def untap(self, edge_id: str, observe: Observer) -> None:
        if edge_id not in self.edges:
            return  # a reload removed the edge, and its taps with it
        located = self._fused_link(edge_id)
        if located is None:
            taps = self.edges[edge_id].taps
            if observe in taps:
                taps.remove(observe)
            return
        segment, link = located
        segment.set_taps(link, [o for o in segment.taps.get(link, []) if o != observe])

    def _fused_link(self, edge_id: str) -> tuple[Chain, int] | None:
        edge = self.edges[edge_id]
        for runner in self.segments:
            links = runner.segment.links
            for index in range(len(links)):
                if links[index] is edge:
                    return runner.segment, index
        return None

