"""One consistent reading of every counter: taken on the engine's event loop, between
batches (the endpoints that serve it run on that loop), so no view ever sees half of a
batch or of a reload."""

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.plan import GraphPlan
from engine.runtime import Runtime

if TYPE_CHECKING:
    from adapters.serve.host import Host


@dataclass(frozen=True)
class SegmentView:
    name: str  # its first and last member, `a->c`
    backend: str
    batches: int
    seconds: float


@dataclass(frozen=True)
class GraphView:
    name: str
    file: str
    state: str  # running, finished, failed, stopped, drained
    plan: GraphPlan
    plan_hash: str
    stats: dict[str, object]
    segments: tuple[SegmentView, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    graphs: tuple[GraphView, ...]
    reloads: dict[tuple[str, str], int] = field(default_factory=dict)  # (graph, result) -> count
    taken_at: float = 0.0  # time.monotonic() when it was taken


def graph_view(name: str, file: str, state: str, runtime: Runtime, plan_hash: str = "") -> GraphView:
    segments = []
    for seg in runtime.segments:
        chain = seg.segment
        batches = getattr(chain, "batches", None)
        if batches is None:  # a fused CPU chain: no segment series of its own
            continue
        placement = str(getattr(chain, "placement", ""))
        backend = "numpy" if "numpy" in placement.lower() else "opencl"
        segments.append(SegmentView(f"{seg.name}->{seg.tail}", backend, int(batches), seg.busy_s))
    return GraphView(name, file, state, runtime.plan, plan_hash or runtime.plan.content_hash(), runtime.stats(),
                     tuple(segments))


def serve_snapshot(host: "Host") -> Snapshot:
    """Every graph `engine serve` runs, and its reload counts."""
    graphs = [graph_view(r.name, r.file, r.state, r.runtime, r.plan_hash) for _, r in sorted(host.graphs.items())]
    return stamped(graphs, host.reload_counts)


def stamped(graphs: list[GraphView], reloads: dict[tuple[str, str], int] | None = None) -> Snapshot:
    return Snapshot(tuple(graphs), dict(reloads or {}), time.monotonic())
