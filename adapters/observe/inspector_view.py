"""What the inspector shows, and nothing more: every graph `engine serve` runs with the
numbers `engine ctl status` shows, its last reload, and the recent failures.

The reading is taken on the engine's loop, between batches and between the steps of a
reload, so it never holds half of a swapped graph; it is turned into JSON on the
inspector's own thread. It holds names, types and counters: never an event, never a
parameter value. Texts the engine writes (a failure, a rejected file's problems) may quote
a value, so each is scrubbed before it is shown: every string parameter value of the graph,
and every quoted word that is not a name or type of the graph, becomes `****`
(`engine ctl status GRAPH` has the whole text).
"""

import re
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from adapters.serve.running import RUNNING
from adapters.serve.vocabulary import REJECTED, nodes_text
from engine.plan import GraphPlan

if TYPE_CHECKING:
    from adapters.serve.host import Host

PAUSED: Final = "paused"  # as `engine ctl status` says it (adapters/control/service.py)
REJECTED_STATE: Final = "rejected"  # a file with no running graph: its only version was rejected
MASK: Final = "****"
GREEN_BELOW: Final = 0.60  # an edge's fill (depth / capacity), coloured as NiFi colours its queues
YELLOW_BELOW: Final = 0.85
RECENT_FAILURES: Final = 50
SHORTEST_MASKED: Final = 4  # parameter values shorter than this are left in texts ("id", "csv")
_QUOTED: Final = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"|`([^`\n]*)`")


@dataclass(frozen=True)
class GraphReading:
    file: str
    name: str
    state: str
    plan: GraphPlan | None  # None: nothing runs for the file
    plan_hash: str
    last_result: str
    last_reload_at: float
    loaded_at: float
    last_nodes: str
    problems: tuple[str, ...]
    failure: str
    node_states: dict[str, str]
    stats: dict[str, object]


@dataclass(frozen=True)
class Failure:
    time: float
    graph: str
    file: str
    detail: str  # already scrubbed


@dataclass(frozen=True)
class Reading:
    graphs: tuple[GraphReading, ...]
    failures: tuple[Failure, ...]
    time: float  # time.time() when it was taken
    taken_at: float  # time.monotonic(): the page divides counter steps by its steps into rates


def fill_level(depth: int, capacity: int) -> str:
    """green below 60% full, yellow below 85%, red from there (NiFi's queue colours)."""
    fill = depth / capacity if capacity > 0 else 0.0
    return "green" if fill < GREEN_BELOW else "yellow" if fill < YELLOW_BELOW else "red"


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def names_of(plan: GraphPlan | None) -> set[str]:
    """What may be shown of a plan: its name, node names, types, ports and edge ids."""
    if plan is None:
        return set()
    names = {plan.name} | {e.id for e in plan.edges}
    for node in plan.nodes:
        names |= {node.name, node.type, *node.outputs}
    return names


def scrub(text: str, plan: GraphPlan | None, types: frozenset[str]) -> str:
    """`text` with every string parameter value of `plan`, and every quoted word that is not
    a name or type, replaced by `****`."""
    shown = names_of(plan) | types
    if plan is not None:
        values = {s for node in plan.nodes for s in _strings(node.params())}
        for value in sorted(values - shown, key=len, reverse=True):
            if len(value) >= SHORTEST_MASKED:
                text = re.sub(rf"(?<![\w.-]){re.escape(value)}(?![\w-])", MASK, text)

    def keep_names(match: re.Match[str]) -> str:
        word = next(g for g in match.groups() if g is not None)
        quote = match.group(0)[0]
        return match.group(0) if word in shown or word == MASK else f"{quote}{MASK}{quote}"
    return _QUOTED.sub(keep_names, text)


class FailureLog:
    """The recent failures: a bounded list a host listener fills on the loop (graph
    failures, rejected files), each text scrubbed as it is recorded."""

    def __init__(self, host: "Host", size: int = RECENT_FAILURES) -> None:
        self.host = host
        self.types = frozenset(spec.name for spec in host.registry.specs())
        self.entries: deque[Failure] = deque(maxlen=size)

    def __call__(self, kind: str, file: str, graph: str, detail: str, record: dict[str, object]) -> None:
        if kind == "reload" and record.get("result") == REJECTED:
            problems = record.get("problems")
            listed = [str(p) for p in problems] if isinstance(problems, list) else []
            detail = f"{file}: rejected" + (f": {listed[0]}" if listed else "")
            if len(listed) > 1:
                detail += f" (and {len(listed) - 1} more problems)"
        elif kind != "error":
            return
        running = self.host.graphs.get(file)
        plan = running.plan if running is not None else None
        self.entries.append(Failure(time.time(), graph, file, scrub(detail, plan, self.types)))


def take(host: "Host", failures: FailureLog) -> Reading:
    """Every graph as `engine ctl status` shows it. Run it on the engine's loop."""
    graphs = []
    for file in sorted(set(host.graphs) | set(host.status)):
        status = host.status.get(file)
        running = host.graphs.get(file)
        state = running.state if running is not None else REJECTED_STATE
        node_states: dict[str, str] = {}
        stats: dict[str, object] = {}
        if running is not None:
            runtime = running.runtime
            if state == RUNNING and runtime.controls.paused_graph:
                state = PAUSED
            stats = runtime.stats()
            for node in runtime.plan.nodes:
                runner = runtime.runners.get(node.name)
                node_states[node.name] = (PAUSED if runtime.controls.node_paused(node.name) else
                                          "finished" if runner is not None and runner.finished else "running")
        last = status.last_nodes if status is not None else None
        graphs.append(GraphReading(
            file=file, name=running.name if running is not None else (status.graph if status else ""),
            state=state, plan=running.plan if running is not None else None,
            plan_hash=running.plan_hash if running is not None else "",
            last_result=status.last_result if status else "",
            last_reload_at=status.last_reload_at if status else 0.0,
            loaded_at=running.loaded_at if running is not None else 0.0,
            last_nodes=nodes_text(last.to_dict(), last.whole_swap) if last is not None else "",
            problems=tuple(status.problems) if status else (),
            failure=running.runtime.failure if running is not None else "",
            node_states=node_states, stats=stats))
    return Reading(tuple(graphs), tuple(failures.entries), time.time(), time.monotonic())


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def graph_json(g: GraphReading, types: frozenset[str]) -> dict[str, object]:
    """One graph: the fields of `engine ctl status GRAPH`, counters exactly as it shows them."""
    nodes: list[dict[str, object]] = []
    edges: list[dict[str, object]] = []
    if g.plan is not None:
        node_stats, edge_stats = _dict(g.stats.get("nodes")), _dict(g.stats.get("edges"))
        for node in g.plan.nodes:
            c = _dict(node_stats.get(node.name))
            nodes.append({"name": node.name, "type": node.type, "state": g.node_states.get(node.name, ""),
                          "in": c.get("in", 0), "out": c.get("out", 0), "errors": c.get("errors", 0),
                          "busy_s": c.get("busy_s", 0.0), "ports": c.get("ports", {})})
        for edge in g.plan.edges:
            e = _dict(edge_stats.get(edge.id))
            depth, capacity = e.get("depth", 0), e.get("capacity", edge.capacity)
            assert isinstance(depth, int) and isinstance(capacity, int)
            edges.append({"id": edge.id, "from": edge.from_node, "port": edge.from_port, "to": edge.to_node,
                          "policy": edge.policy, "durable": edge.durable, "capacity": capacity, "depth": depth,
                          "enqueued": e.get("enqueued", 0), "dropped": e.get("dropped", 0),
                          "coalesced": e.get("coalesced", 0), "high_water": e.get("high_water", 0),
                          "blocked_s": e.get("blocked_s", 0.0),
                          "fill": depth / capacity if capacity > 0 else 0.0, "level": fill_level(depth, capacity)})
    return {"file": g.file, "name": g.name, "state": g.state, "plan_hash": g.plan_hash,
            "last_result": g.last_result, "last_reload_at": g.last_reload_at, "loaded_at": g.loaded_at,
            "last_nodes": g.last_nodes, "problems": [scrub(p, g.plan, types) for p in g.problems],
            "failure": scrub(g.failure, g.plan, types), "nodes": nodes, "edges": edges}


def reading_json(reading: Reading, types: frozenset[str]) -> dict[str, object]:
    """`/api/graphs`."""
    return {"time": reading.time, "taken_at": reading.taken_at,
            "thresholds": {"green_below": GREEN_BELOW, "yellow_below": YELLOW_BELOW},
            "graphs": [graph_json(g, types) for g in reading.graphs],
            "failures": [{"time": f.time, "graph": f.graph, "file": f.file, "detail": f.detail}
                         for f in reversed(reading.failures)]}
