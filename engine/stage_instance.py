"""One instance of a partitioned stage: its members run one after the other on each batch.

The same object runs in the engine process (the `local` executor, `LocalStage`) and inside
a Ray actor (adapters/ray), so what an instance computes does not depend on where it runs.
Members are transforms, and they fuse as they would in the graph (engine/fusion.py): a
`map` followed by an `aggregate` inside the stage is one generated loop per batch. Units (a
fused chain, or a member on its own) hand events to each other directly, in topological
order: an edge inside a stage has no queue to bound, the batch that entered is the whole of
it. What a member emits on a port that leaves the stage goes to the instance's output of
that port (`engine.partition.exit_port`).
"""

import time
from dataclasses import dataclass

from engine.chain import SegmentRunner
from engine.edges import Edge
from engine.fused import build_segments
from engine.node import INFINITY, Batch, Clock, Failures, NodeContext, NodeFailure, Transform
from engine.partition import exits, instance_name
from engine.plan import EdgePlan, GraphPlan, NodePlan, StagePlan
from engine.runner import NodeRunner
from engine.secrets import node_secret_texts
from engine.spec import SpecRegistry

_EXIT_NODE = "\x00exit"  # stands for whatever reads a port outside the stage (no node has this name)


@dataclass(frozen=True)
class StageSpec:
    """Everything an instance needs to build itself: plain data, so it can be sent to
    another process. `members` keep their real parameter values (secrets too)."""

    graph: str
    stage: StagePlan
    index: int
    members: tuple[NodePlan, ...]  # in stage order
    internal: tuple[EdgePlan, ...]  # edges between members
    outputs: tuple[tuple[str, str], ...]  # (member, port) of each instance output, in port order


def stage_spec(graph: GraphPlan, stage: StagePlan, index: int) -> StageSpec:
    inside = set(stage.members)
    internal = tuple(e for e in graph.edges if e.from_node in inside and e.to_node in inside)
    return StageSpec(graph.name, stage, index, tuple(graph.node(m) for m in stage.members), internal,
                     tuple(exits(stage, graph.edges)))


def _sub_plan(spec: StageSpec) -> GraphPlan:
    """The members as a graph of their own: the internal edges, and one edge per exit to a
    node outside (so a port read both inside and outside the stage is not fused away)."""
    internal_ids = {e.id for e in spec.internal}
    nodes = tuple(NodePlan(name=n.name, type=n.type, params_json=n.params_json,
                           inputs=tuple(i for i in n.inputs if i in internal_ids), outputs=n.outputs,
                           on_error=n.on_error, secrets=n.secrets) for n in spec.members)
    leaving = tuple(EdgePlan(id=f"{member}.{port}->exit", from_node=member, from_port=port, to_node=_EXIT_NODE,
                             capacity=1, policy="block") for member, port in spec.outputs)
    return GraphPlan(name=spec.graph, format_version=2, nodes=nodes, edges=spec.internal + leaving)


class _Unit:
    """A fused chain of members, or one member alone: what takes a batch in the instance."""

    def __init__(self, runner: NodeRunner, impl: Transform, members: list[NodeRunner],
                 ports: list[tuple[str, str]]) -> None:
        self.runner = runner
        self.impl = impl
        self.members = members
        self.ports = ports  # (member, port) behind each of the unit's output lists
        self.inbox: Batch = []
        self.busy_s = 0.0
        self.port_out = [0 for _ in ports]
        self.targets: list[list[int]] = [[] for _ in ports]  # units fed by each port
        self.exit_of: list[int] = [-1 for _ in ports]  # the instance output of each port, or -1


class StageInstance:
    def __init__(self, spec: StageSpec, registry: SpecRegistry, clock: Clock) -> None:
        self.spec = spec
        plan = _sub_plan(spec)
        edges = {e.id: Edge(e) for e in plan.edges}
        runners: dict[str, NodeRunner] = {}
        for node in plan.nodes:
            runners[node.name] = _member_runner(spec, node, edges, registry, clock)
        fused: dict[str, SegmentRunner] = {}
        for built in build_segments(plan, registry, runners, edges, clock):
            for r in built.segment.runners:
                fused[r.name] = built
        self.units: list[_Unit] = []
        unit_of: dict[str, int] = {}  # a member that heads a unit -> the unit
        for node in plan.nodes:
            segment = fused.get(node.name)
            if segment is not None and segment.segment.runners[0].name != node.name:
                continue  # inside a chain its head runs
            if segment is not None:
                impl = segment.impl
                assert isinstance(impl, Transform)
                chain = segment.segment
                ports = [("", "")] * len(chain.outputs)
                for j, mapping in enumerate(chain.member_ports):
                    for p, k in enumerate(mapping):
                        if k >= 0:
                            ports[k] = (chain.runners[j].name, chain.runners[j].plan.outputs[p])
                unit = _Unit(segment, impl, list(chain.runners), ports)
            else:
                r = runners[node.name]
                own = r.impl
                assert isinstance(own, Transform)
                unit = _Unit(r, own, [r], [(node.name, port) for port in node.outputs])
            unit_of[node.name] = len(self.units)
            self.units.append(unit)
        exit_index = {pair: k for k, pair in enumerate(spec.outputs)}
        for unit in self.units:
            for p, (member, port) in enumerate(unit.ports):
                unit.exit_of[p] = exit_index.get((member, port), -1)
                unit.targets[p] = [unit_of[e.to_node] for e in spec.internal
                                   if e.from_node == member and e.from_port == port]
        self.width = len(spec.outputs)
        self.entry = unit_of[spec.stage.name]  # the member the entry edge feeds heads a unit

    def process(self, batch: Batch) -> list[Batch]:
        """Run one batch that entered the stage through every unit; the instance outputs."""
        self.units[self.entry].inbox.extend(batch)
        outs: list[Batch] = [[] for _ in range(self.width)]
        self._run(outs, False)
        return outs

    def deadline(self) -> float:
        soonest = INFINITY
        for unit in self.units:
            soonest = min(soonest, unit.impl.deadline())
        return soonest

    def on_timer(self, now: float) -> list[Batch]:
        """Units whose timer is due run it (closing windows); what they emit runs on."""
        outs: list[Batch] = [[] for _ in range(self.width)]
        for unit in self.units:
            self._step(unit, outs)
            if unit.impl.deadline() <= now:
                unit_outs: list[Batch] = [[] for _ in unit.ports]
                unit.impl.on_timer(now, unit_outs)
                self._emitted(unit, unit_outs)
                self._route(unit, unit_outs, outs)
        return outs

    def flush(self) -> list[Batch]:
        """End of input: each unit, in order, takes what is still on its way and flushes."""
        outs: list[Batch] = [[] for _ in range(self.width)]
        self._run(outs, True)
        return outs

    def _run(self, outs: list[Batch], flush: bool) -> None:
        for unit in self.units:
            self._step(unit, outs)
            if flush:
                unit_outs: list[Batch] = [[] for _ in unit.ports]
                unit.impl.flush(unit_outs)
                self._emitted(unit, unit_outs)
                self._route(unit, unit_outs, outs)

    def _step(self, unit: _Unit, outs: list[Batch]) -> None:
        if not unit.inbox:
            return
        batch, unit.inbox = unit.inbox, []
        unit_outs: list[Batch] = [[] for _ in unit.ports]
        r = unit.runner
        started = time.perf_counter()
        consumed = unit.impl.process(batch, unit_outs, r.errors)
        unit.busy_s += time.perf_counter() - started
        if consumed < len(batch):  # a retry: the loader refuses it on parallel nodes
            raise NodeFailure(f"{r.errors.where()}: on_error retry cannot run in a partitioned stage")
        if len(unit.members) == 1:  # a chain counts its members itself (engine/fused.py)
            r.events_in += consumed
        self._emitted(unit, unit_outs)
        self._route(unit, unit_outs, outs)

    def _emitted(self, unit: _Unit, unit_outs: list[Batch]) -> None:
        if len(unit.members) == 1:  # a chain counts its members itself (engine/fused.py)
            unit.runner.events_out += sum(len(events) for events in unit_outs)

    def _route(self, unit: _Unit, unit_outs: list[Batch], outs: list[Batch]) -> None:
        for p, events in enumerate(unit_outs):
            if not events:
                continue
            unit.port_out[p] += len(events)
            for target in unit.targets[p]:
                self.units[target].inbox.extend(events)
            k = unit.exit_of[p]
            if k >= 0:
                outs[k].extend(events)

    def counters(self) -> dict[str, dict[str, object]]:
        """Per member instance (`per_user[1]`): in, out, errors, events out per port, busy
        (a chain's busy time split evenly among its members, as the runtime reports it)."""
        out: dict[str, dict[str, object]] = {}
        for unit in self.units:
            share = unit.busy_s / len(unit.members)
            shown = {pair: unit.port_out[p] for p, pair in enumerate(unit.ports)}
            runner = unit.runner
            for j, r in enumerate(unit.members):
                ports: dict[str, int] = {}
                for port in r.plan.outputs:
                    if (r.name, port) in shown:
                        ports[port] = shown[(r.name, port)]
                    elif isinstance(runner, SegmentRunner) and j < len(runner.segment.links):
                        ports[port] = runner.segment.links[j].enqueued  # crossed the link to the next member
                    else:
                        ports[port] = 0
                out[r.ctx.name] = {"in": r.events_in, "out": r.events_out, "errors": r.errors.count,
                                   "ports": ports, "busy_s": round(share, 6)}
        return out


def _member_runner(spec: StageSpec, node: NodePlan, edges: dict[str, Edge], registry: SpecRegistry,
                   clock: Clock) -> NodeRunner:
    node_spec = registry.get(node.type)
    name = instance_name(node.name, spec.index)
    if node_spec is None or node_spec.factory is None:
        raise NodeFailure(f"node '{name}': type '{node.type}' cannot run in this engine")
    ctx = NodeContext(name, node.type, node_spec.parse(node.params()), node.outputs, node.on_error, clock,
                      spec.graph, node_secret_texts(node_spec, node))
    impl = node_spec.factory(ctx)
    if not isinstance(impl, Transform):
        raise NodeFailure(f"node '{name}': type '{node.type}' cannot run in a partitioned stage")
    outputs = [[e for e in edges.values() if e.plan.from_node == node.name and e.plan.from_port == port]
               for port in node.outputs]
    return NodeRunner(node, ctx, impl, [edges[i] for i in node.inputs], outputs)


class LocalStage(Transform):
    """The `local` executor: a stage instance run by the engine's own scheduler."""

    def __init__(self, ctx: NodeContext, instance: StageInstance) -> None:
        super().__init__(ctx)
        self.instance = instance

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        _extend(outs, self.instance.process(batch))
        return len(batch)

    def flush(self, outs: list[Batch]) -> None:
        _extend(outs, self.instance.flush())

    def deadline(self) -> float:
        return self.instance.deadline()

    def on_timer(self, now: float, outs: list[Batch]) -> None:
        _extend(outs, self.instance.on_timer(now))

    def member_counters(self) -> dict[str, dict[str, object]]:
        return self.instance.counters()


def _extend(outs: list[Batch], results: list[Batch]) -> None:
    for k, events in enumerate(results):
        if events:
            outs[k].extend(events)
