"""The engine's counters as Prometheus metrics, read at scrape time.

Nothing is incremented per event for Prometheus: each scrape takes one snapshot of the
counters the engine keeps anyway (adapters/observe/snapshot.py) and turns it into metric
families. Names are stable and documented in docs/observability.md.
"""

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.observe.snapshot import GraphView, Snapshot

STATES: Final = ("running", "finished", "failed", "stopped", "drained")
NODE: Final = ["graph", "node"]
EDGE: Final = ["graph", "edge", "policy"]


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


class EngineCollector(Collector):
    """Metric families from `take()`'s snapshot; utilization from the change in busy time
    since the previous scrape."""

    def __init__(self, take: Callable[[], Snapshot]) -> None:
        self.take = take
        self.previous: dict[tuple[str, str], tuple[float, float]] = {}  # (graph, node) -> (busy_s, taken_at)

    def collect(self) -> Iterator[Metric]:
        snapshot = self.take()
        families = _Families()
        seen: dict[tuple[str, str], tuple[float, float]] = {}
        for graph in snapshot.graphs:
            families.graph(graph)
            for node, busy in families.nodes(graph):
                key = (graph.name, node)
                seen[key] = (busy, snapshot.taken_at)
                before = self.previous.get(key)
                share = 0.0
                if before is not None and snapshot.taken_at > before[1]:
                    share = min(1.0, max(0.0, (busy - before[0]) / (snapshot.taken_at - before[1])))
                families.utilization.add_metric([graph.name, node], share)
            families.edges(graph)
        for (graph_name, result), count in sorted(snapshot.reloads.items()):
            families.reloads.add_metric([graph_name, result], count)
        self.previous = seen  # a removed node's series disappears with it
        yield from families.all()


class _Families:
    def __init__(self) -> None:
        c, g = CounterMetricFamily, GaugeMetricFamily
        self.graph_info = g("headrace_graph_info", "A graph the engine runs (value 1).",
                            labels=["graph", "file", "plan_hash", "format_version"])
        self.graph_up = g("headrace_graph_up", "1 while the graph runs, else 0.", labels=["graph"])
        self.graph_state = g("headrace_graph_state", "1 for the graph's current state.", labels=["graph", "state"])
        self.reloads = c("headrace_reloads", "Reloads of a graph's file, by result.", labels=["graph", "result"])
        self.events_in = c("headrace_node_events_in", "Events a node consumed.", labels=NODE)
        self.events_out = c("headrace_node_events_out", "Events a node emitted, per output port.",
                            labels=[*NODE, "port"])
        self.errors = c("headrace_node_errors", "Events a node failed (whatever on_error did next).", labels=NODE)
        self.busy = c("headrace_node_busy_seconds", "Time a node spent running (a fused chain's is split "
                      "among its members).", labels=NODE)
        self.utilization = g("headrace_node_utilization", "Busy fraction of the node since the previous scrape "
                             "(0-1).", labels=NODE)
        self.connected = g("headrace_node_connected", "A connector's connection: 1 while connected, else 0 "
                           "(connectors only).", labels=NODE)
        self.reconnects = c("headrace_node_reconnects", "Times a connector lost its connection and "
                            "reconnected (connectors only).", labels=NODE)
        self.enqueued = c("headrace_edge_enqueued", "Events an edge accepted.", labels=EDGE)
        self.dropped = c("headrace_edge_dropped", "Events an edge's policy dropped.", labels=EDGE)
        self.coalesced = c("headrace_edge_coalesced", "Events a coalesce edge merged into a queued one.",
                           labels=EDGE)
        self.depth = g("headrace_edge_depth", "Events waiting on the edge.", labels=EDGE)
        self.capacity = g("headrace_edge_capacity", "The edge's capacity.", labels=EDGE)
        self.high_water = g("headrace_edge_high_water", "The most events the edge has held at once.", labels=EDGE)
        self.blocked = c("headrace_edge_blocked_seconds", "Time producers waited because the edge was full.",
                         labels=EDGE)
        self.edge_info = g("headrace_edge_info", "An edge of a graph, for drawing the topology (value 1).",
                           labels=["graph", "edge", "from_node", "from_port", "to_node", "policy", "durable"])
        self.durable_bytes = g("headrace_durable_bytes", "Disk pages a durable edge's events take, in bytes.",
                               labels=["graph", "edge"])
        self.durable_commits = c("headrace_durable_commits", "Write transactions a durable edge committed.",
                                 labels=["graph", "edge"])
        self.segment_batches = c("headrace_segment_batches", "Batches a GPU segment ran.",
                                 labels=["graph", "segment", "backend"])
        self.segment_seconds = c("headrace_segment_seconds", "Time a GPU segment spent running.",
                                 labels=["graph", "segment", "backend"])

    def all(self) -> Iterator[Metric]:
        yield from (value for value in vars(self).values() if isinstance(value, Metric))

    def graph(self, graph: GraphView) -> None:
        self.graph_info.add_metric([graph.name, graph.file, graph.plan_hash, str(graph.plan.format_version)], 1)
        self.graph_up.add_metric([graph.name], 1 if graph.state == "running" else 0)
        for state in STATES:
            self.graph_state.add_metric([graph.name, state], 1 if graph.state == state else 0)
        for seg in graph.segments:
            labels = [graph.name, seg.name, seg.backend]
            self.segment_batches.add_metric(labels, seg.batches)
            self.segment_seconds.add_metric(labels, seg.seconds)

    def nodes(self, graph: GraphView) -> Iterator[tuple[str, float]]:
        stats = graph.stats.get("nodes")
        for name, counters in (stats.items() if isinstance(stats, dict) else ()):
            labels = [graph.name, name]
            self.events_in.add_metric(labels, _number(counters.get("in")))
            self.errors.add_metric(labels, _number(counters.get("errors")))
            busy = _number(counters.get("busy_s"))
            self.busy.add_metric(labels, busy)
            if "connection" in counters:  # a connector's health() (engine/runtime.py node_counters)
                self.connected.add_metric(labels, 1 if counters["connection"] == "connected" else 0)
                self.reconnects.add_metric(labels, _number(counters.get("reconnects")))
            ports = counters.get("ports")
            for port, count in sorted(ports.items() if isinstance(ports, dict) else ()):
                self.events_out.add_metric([*labels, port], _number(count))
            yield name, busy

    def edges(self, graph: GraphView) -> None:
        stats = graph.stats.get("edges")
        counters_of = stats if isinstance(stats, dict) else {}
        for edge in graph.plan.edges:
            counters = counters_of.get(edge.id, {})
            labels = [graph.name, edge.id, edge.policy]
            self.enqueued.add_metric(labels, _number(counters.get("enqueued")))
            self.dropped.add_metric(labels, _number(counters.get("dropped")))
            self.coalesced.add_metric(labels, _number(counters.get("coalesced")))
            self.depth.add_metric(labels, _number(counters.get("depth")))
            self.capacity.add_metric(labels, _number(counters.get("capacity")))
            self.high_water.add_metric(labels, _number(counters.get("high_water")))
            self.blocked.add_metric(labels, _number(counters.get("blocked_s")))
            self.edge_info.add_metric([graph.name, edge.id, edge.from_node, edge.from_port, edge.to_node, edge.policy,
                                       "true" if edge.durable else "false"], 1)
            if edge.durable:
                self.durable_bytes.add_metric([graph.name, edge.id], _number(counters.get("durable_bytes")))
                self.durable_commits.add_metric([graph.name, edge.id], _number(counters.get("durable_commits")))


def metrics_registry(take: Callable[[], Snapshot]) -> CollectorRegistry:
    """The engine's families and the client library's process, platform and GC metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(take))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
