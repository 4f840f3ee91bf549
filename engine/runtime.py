"""The runtime: builds edges and nodes from a plan and schedules them.

The scheduler is one deterministic loop. Each pass visits the nodes in a fixed order —
band 0 the sinks, band 1 the transforms (downstream first, so room is freed before it
is filled), band 2 the sources, names breaking ties — and runs every node that is ready
once, with a batch budget. A node is ready when it has input (or is a source), nothing
it emitted is still waiting for an edge, and every `block` edge it feeds has room.

IO sources and sinks are asyncio tasks that meet the core through the same edges. The
core never awaits them: after a pass that moved something it yields to the event loop
once; after a pass that moved nothing it sleeps until an IO task, a timer or a stop
request wakes it.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Final

from engine import durability, io_drivers, node_swap
from engine.chain import SegmentRunner
from engine.controls import Controls
from engine.durability import STATE_SUFFIX
from engine.edges import Edge
from engine.fused import build_segments
from engine.node import (
    INFINITY,
    AsyncSink,
    AsyncSource,
    AsyncTransform,
    Clock,
    NodeContext,
    NodeFailure,
    Source,
    Transform,
)
from engine.partition import ROUTER_TYPE, STAGE_TYPE, expand, topological, with_stage_totals
from engine.partition_build import partition_runner
from engine.plan import EdgePlan, GraphPlan, NodePlan
from engine.plan_chains import reload_changes, run_chains, source_nodes
from engine.plan_diff import NodeChanges
from engine.runner import RUN_ASYNC_SINK, RUN_ASYNC_TRANSFORM, RUN_POLL, RUN_STEP, NodeRunner
from engine.secrets import mask_known, node_secret_texts, plan_secret_texts
from engine.spec import RuntimeNode, SpecRegistry
from engine.stage_instance import LocalStage, StageSpec
from engine.wakeup import Wakeup

BATCH_BUDGET: Final = 1024
__all__ = ["BATCH_BUDGET", "STATE_SUFFIX", "Runtime", "source_nodes"]  # source_nodes: for older imports

DurableFactory = Callable[[GraphPlan, EdgePlan], Edge]
# Builds the node that runs one instance of a partitioned stage (an executor: adapters/ray);
# None runs instances in this process (`local`).
StageFactory = Callable[[StageSpec, NodeContext], RuntimeNode]


class Runtime:
    def __init__(self, plan: GraphPlan, registry: SpecRegistry, clock: Clock | None = None,
                 budget: int = BATCH_BUDGET, fuse: bool = True, durable: DurableFactory | None = None,
                 stages: StageFactory | None = None) -> None:
        # The graph as loaded, and what runs: each partitioned stage expanded into a router
        # and its instances (engine/partition.py); the same plan when there are none.
        self.graph_plan = plan
        self.plan = expand(plan)
        self.stage_factory = stages
        self.registry = registry
        self.clock = clock if clock is not None else Clock()
        self.budget = budget
        self.fuse = fuse
        self.durable = durable
        self.edges: dict[str, Edge] = {e.id: self.build_edge(e) for e in self.plan.edges}
        self.runners: dict[str, NodeRunner] = {n.name: self.build_runner(n, self.edges) for n in self.plan.nodes}
        self.segments: list[SegmentRunner] = self.build_chains(self.plan, self.runners, self.edges)
        self.order: list[NodeRunner] = []
        self.readers: dict[str, NodeRunner] = {}  # edge id -> the runner that takes from it
        self.holding: list[NodeRunner] = []  # runners that hold a durable edge's acknowledgements
        self.set_order()
        self.signal = Wakeup()
        # Pause, resume and taps, for the control plane (engine/controls.py).
        self.controls = Controls(self.edges, self.segments, self.signal)
        self.stopping = False
        self.failure = ""
        self.started_at = 0.0
        self.elapsed_s = 0.0
        self.tasks: dict[str, asyncio.Task[None]] = {}  # the IO nodes' tasks, by node
        self.running = False  # between the start and the end of `run`
        self.swapping = False  # a partial reload is replacing nodes (engine/node_swap.py)
        self.scheduling = False  # the scheduler loop runs: new nodes would be run

    # -- building (also used by a partial reload) -----------------------------------

    def build_edge(self, e: EdgePlan) -> Edge:
        if not e.durable:
            return Edge(e)
        if self.durable is None:
            raise NodeFailure(f"edge '{e.id}' is durable but no durable storage is "
                              "open here; run it with `engine run` or `engine serve`")
        return self.durable(self.plan, e)  # built by adapters (LMDB): the engine never opens files

    def build_runner(self, node: NodePlan, edges: dict[str, Edge], carried: RuntimeNode | None = None,
                     graph: GraphPlan | None = None) -> NodeRunner:
        """The node's runtime object (or `carried`, one that goes on with its state), wired
        to the edges its plan names. `graph`: the loaded plan `node` was expanded from."""
        if node.type in (ROUTER_TYPE, STAGE_TYPE):
            return partition_runner(self, node, edges, graph if graph is not None else self.graph_plan, carried)
        spec = self.registry.get(node.type)
        if spec is None or spec.factory is None:
            raise NodeFailure(f"node '{node.name}': type '{node.type}' cannot run in this engine")
        outputs = [[e for e in edges.values() if e.plan.from_node == node.name and e.plan.from_port == port]
                   for port in node.outputs]
        if carried is not None:
            return NodeRunner(node, carried.ctx, carried, [edges[i] for i in node.inputs], outputs)
        params = node.params()
        ctx = NodeContext(node.name, node.type, spec.parse(params), node.outputs, node.on_error, self.clock,
                          self.plan.name, node_secret_texts(spec, node))
        return NodeRunner(node, ctx, spec.factory(ctx), [edges[i] for i in node.inputs], outputs)

    def build_chains(self, plan: GraphPlan, runners: dict[str, NodeRunner],
                     edges: dict[str, Edge]) -> list[SegmentRunner]:
        """The chains whose members are all in `runners` (every node of `plan`, or the
        nodes a partial reload builds)."""
        # Linear chains run as one generated loop each (see engine/fusion.py); `fuse=False`
        # runs every node on its own, which tests use as the reference.
        segments = build_segments(plan, self.registry, runners, edges, self.clock) if self.fuse else []
        # Families that run as chains of their own (GPU segments) are built whatever `fuse`
        # says: their members cannot run one by one. A builder runs only for a graph with its
        # types (the GPU one imports NumPy and PyOpenCL).
        used: set[str] = set()
        for name in runners:
            family = self.registry.family_of(plan.node(name).type)
            if family is not None:
                used.add(family.name)
        for family in self.registry.families():
            if family.name in used and family.segment_builder is not None:
                segments.extend(family.segment_builder.build(plan, runners, edges, self.clock))
        return segments

    def set_order(self) -> None:
        """The scheduling order, who reads each edge, and which runners hold acknowledgements
        of a durable edge until their results are out of the graph (engine/durability.py)."""
        self.order = self.schedule_order()
        readers = self.order + [r for r in self.runners.values() if r.run_mode in (RUN_ASYNC_SINK, RUN_ASYNC_TRANSFORM)]
        self.readers = {e.plan.id: r for r in readers for e in r.inputs}
        self.holding = []
        for r in self.order:
            r.holds_acks = durability.holds_acks(r)
            if r.holds_acks:
                self.holding.append(r)
            elif r.held_ack:  # a reload changed its edges: what it held goes with its next ack
                r.deferred_ack += r.held_ack
                r.held_ack = 0

    def schedule_order(self) -> list[NodeRunner]:
        """Core nodes by band, then downstream first (reverse topological order)."""
        depth: dict[str, int] = {}
        for name in topological(self.plan.nodes, self.plan.edges):
            upstream = [depth[self.edges[i].plan.from_node] for i in self.plan.node(name).inputs]
            depth[name] = 1 + max(upstream) if upstream else 0
        fused = {r.name for segment in self.segments for r in segment.segment.runners}
        core = [r for r in self.runners.values() if r.run_mode in (RUN_STEP, RUN_POLL) and r.name not in fused]
        core.extend(self.segments)

        def band(r: NodeRunner) -> tuple[int, int, str]:
            if r.run_mode == RUN_POLL:
                level = 2
            elif not r.outputs:
                level = 0
            else:
                level = 1
            return (level, -depth[r.tail], r.name)
        return sorted(core, key=band)

    def plan_chains(self, plan: GraphPlan) -> list[list[str]]:
        """The nodes of `plan` that would run as one here (fused chains, family segments)."""
        return run_chains(plan, self.registry, self.fuse)

    def running_chains(self) -> list[list[str]]:
        """The nodes that run as one now: the built segments, and the plan's chains."""
        return [s.members for s in self.segments] + self.plan_chains(self.plan)

    def swap_blocker(self) -> str:
        """Why nodes cannot be replaced in place now ("" when they can)."""
        if not self.scheduling or self.stopping or self.failure:
            return "the graph is not running"
        if self.controls.paused_graph:
            return "the graph is paused"
        return ""

    def diff(self, plan: GraphPlan) -> NodeChanges:
        """What reloading `plan` into this running graph would keep and replace."""
        blocker = self.swap_blocker()
        chains_now = [] if blocker else self.running_chains()
        return reload_changes(self.plan, expand(plan), self.registry, chains_now, blocker, self.fuse)

    async def replace_nodes(self, plan: GraphPlan, changes: NodeChanges, drain_timeout_s: float) -> int:
        """A partial reload (engine/node_swap.py); raises NodeFailure before touching anything
        when the new nodes cannot be built. Returns the events a timed-out drain dropped."""
        ready = node_swap.prepare(self, plan, changes)
        dropped = await node_swap.swap(self, ready, drain_timeout_s)
        self.graph_plan = plan
        return dropped

    # -- control -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Graceful stop: sources stop reading; everything already emitted drains (a stop
        resumes whatever was paused, or the drain could never finish)."""
        self.stopping = True
        self.controls.clear()
        self.signal.notify()

    def fail(self, message: str) -> None:
        if not self.failure:
            # The one place a graph's failure passes: whatever node wrote the message, no
            # secret parameter value of the graph leaves in it.
            self.failure = mask_known(message, plan_secret_texts(self.plan, self.registry))
        self.signal.notify()

    # -- running -------------------------------------------------------------------

    async def run(self) -> bool:
        """Run to the end of every finite source (or a stop); False when the graph failed
        (the reason is in `failure`)."""
        self.started_at = self.clock.now()
        self.running = True
        # Fused sources resume through their chain; a plain source only when it runs alone.
        durability.resume_sources([r for r in self.runners.values() if r.run_mode != RUN_POLL or r in self.order]
                                  + list(self.segments))
        durability.restore_states(self.order)
        try:
            await io_drivers.open_io(self, list(self.runners.values()))
            if not self.failure:
                self.tasks.update(io_drivers.start_io(self, list(self.runners.values())))
                self.scheduling = True
                await self._schedule()
        finally:
            self.scheduling = False
            # A partial reload in progress sees the loop has ended and stops before it
            # installs anything; only then are the nodes it would have replaced closed.
            await self.signal.until(self._not_swapping)
            for task in self.tasks.values():
                if not task.done():
                    task.cancel()
            if self.tasks:
                ended = await asyncio.gather(*self.tasks.values(), return_exceptions=True)
                for name, outcome in zip(list(self.tasks), ended):
                    # An IO node that broke: the graph fails with it, never silently.
                    if isinstance(outcome, Exception) and not isinstance(outcome, asyncio.CancelledError):
                        self.fail(f"node '{name}': unexpected {type(outcome).__name__}: {outcome}")
            await io_drivers.close_io(self, list(self.runners.values()))
            self.elapsed_s = self.clock.now() - self.started_at
            self.running = False
        return not self.failure

    def _not_swapping(self) -> bool:
        return not self.swapping

    def checkpoint(self, r: NodeRunner, position: str) -> None:
        durability.checkpoint(r, position)

    async def _schedule(self) -> None:
        while not self.failure:
            try:
                progressed = self._pass()
            except NodeFailure as exc:
                self.fail(str(exc))
                break
            if progressed:
                self.signal.notify()
                await asyncio.sleep(0)
                continue
            if all(r.finished for r in self.runners.values()) and not self.swapping:
                break
            now = self.clock.now()
            wait = self._next_timer(now) - now
            if wait > 0 and not self._io_pending() and self.clock.skip(0.0):
                # Virtual time (engine test): the next timer is due now; with none, nothing
                # could ever wake the graph.
                if wait == INFINITY:
                    self.fail("the graph stopped making progress: nothing is left to run, but not every node finished")
                    break
                self.clock.skip(wait)
                continue
            await self.signal.wait(wait)

    def _io_pending(self) -> bool:
        return any(not task.done() for task in self.tasks.values())

    def _next_timer(self, now: float) -> float:
        """The soonest moment a waiting node becomes ready by time alone (a retry backoff
        ends, a `rate` allows the next event, a processing-time window closes). A deadline
        that has passed counts only if the node can run now; one blocked on room waits for
        whoever frees it to notify, or the loop would spin."""
        soonest = INFINITY
        for r in self.order:
            if r.finished or self.controls.is_paused(r):
                continue
            deadlines = [r.errors.retry_at] if r.errors.retry_at > 0 else []
            impl = r.impl
            if isinstance(impl, (Source, Transform)) and not r.flushed:
                deadlines.append(impl.deadline())
            for deadline in deadlines:
                if deadline > now:
                    soonest = min(soonest, deadline)
                elif not r.backlog and r.outputs_have_room() and r.errors.ready(now):
                    return now
        return soonest

    def _pass(self) -> bool:
        progressed = False
        now = self.clock.now()
        budget = self.budget
        for r in self.order:
            if r.finished or self.controls.is_paused(r):
                continue
            if r.backlog:
                progressed = r.flush_backlog() or progressed
                if r.backlog:
                    if not r.blocked:
                        r.mark_blocked(now)
                    continue
                durability.ack(r)
            if r.flushed:
                r.close_outputs()
                progressed = True
                continue
            if not r.errors.ready(now):
                continue
            if not r.outputs_have_room():
                if not r.blocked:
                    r.mark_blocked(now)
                continue
            if r.blocked:
                r.unblocked(now)
            impl = r.impl
            started = time.perf_counter()  # busy time, per batch: two clock reads per step
            if isinstance(impl, Source):
                progressed = self._poll(r, impl, now) or progressed
            elif isinstance(impl, Transform):
                progressed = self._step(r, impl, now, budget) or progressed
            r.busy_s += time.perf_counter() - started
        for r in self.holding:
            if r.held_ack and durability.release_held(r, self.readers):
                progressed = True
        return progressed

    def _poll(self, r: NodeRunner, source: Source, now: float) -> bool:
        if self.stopping or r.stop_requested:
            self._finish_source(r, source)
            return True
        if source.deadline() > now:
            return False
        outs = r.new_outs()
        alive = source.poll(self.budget, now, outs, r.errors)
        durability.checkpoint(r, source.position())
        emitted = r.distribute(outs)
        if not alive:
            self._finish_source(r, source)
            return True
        return emitted

    def _finish_source(self, r: NodeRunner, source: Source) -> None:
        outs = r.new_outs()
        source.finish(outs)
        r.distribute(outs)
        r.flushed = True

    def _step(self, r: NodeRunner, node: Transform, now: float, budget: int) -> bool:
        outs = r.new_outs()
        moved = False
        if node.deadline() <= now:
            node.on_timer(now, outs)
            moved = True
        batch = r.pending if r.pending else r.take_input(budget)
        consumed = 0
        if batch:
            consumed = node.process_from(r.batch_input, batch, outs, r.errors)
            r.pending = batch[consumed:] if consumed < len(batch) else []
            r.events_in += consumed
            # Nothing taken (a retry or a throttle waits): its deadline wakes it, no spinning.
            moved = moved or consumed > 0
        elif not r.pending and r.inputs_drained():
            node.flush(outs)
            r.flushed = True
            moved = True
        emitted = r.distribute(outs)
        r.deferred_ack += consumed
        if not r.backlog:
            durability.ack(r)  # every result is on an output edge: the inputs can go
        return emitted or moved

    # -- reporting -----------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        """Every counter, as the stats file, `engine ctl status` and `/metrics` show them."""
        nodes = node_counters(self.runners, self.segments)
        for r in self.runners.values():
            impl = r.impl
            if r.plan.type == STAGE_TYPE and isinstance(impl, (LocalStage, AsyncTransform)):
                nodes.pop(r.name, None)  # a stage instance: its members' own counters instead
                nodes.update(impl.member_counters())
        with_stage_totals(nodes, self.graph_plan.stages)
        return {
            "nodes": dict(sorted(nodes.items())),
            "edges": {eid: edge_counters(self.edges[eid]) for eid in sorted(self.edges)},
            "elapsed_s": round(self.elapsed_s, 6),
        }

    def held(self) -> int:
        """Events inside the graph right now: queued on edges, refused and waiting with
        their producer, or taken but not yet consumed (what a timed-out drain loses)."""
        # A durable edge keeps what it holds for the next run: that is not lost.
        total = sum(edge.depth for edge in self.edges.values() if not edge.plan.durable)
        for r in list(self.runners.values()) + list(self.segments):
            taken_from_memory = all(not e.plan.durable for e in r.inputs)
            if taken_from_memory:  # taken from a durable edge and not acknowledged: it comes again
                total += len(r.pending) + sum(len(events) for _, events in r.backlog)
        return total

    def progress(self) -> list[tuple[str, int, int]]:
        """(node, done, total) for every source that knows its size."""
        out: list[tuple[str, int, int]] = []
        for name in sorted(self.runners):
            impl = self.runners[name].impl
            if isinstance(impl, AsyncSource):
                done, total = impl.progress()
                if total > 0:
                    out.append((name, done, total))
        return out


def edge_counters(edge: Edge) -> dict[str, object]:
    out: dict[str, object] = dict(edge.counters())
    out.update(edge.storage_counters())
    out["capacity"] = edge.capacity
    waiting = edge.blocked_s  # a wait still going on counts up to the last pass
    out["blocked_s"] = round(waiting, 6)
    return out


def node_counters(runners: dict[str, NodeRunner], segments: list[SegmentRunner]) -> dict[str, dict[str, object]]:
    """Per node: in, out, errors, events out per port and busy time. A fused chain or GPU
    segment runs as one: its busy time is split evenly among its members, and a member's
    `out` port inside the chain counts what crossed the link to the next member."""
    ports: dict[str, dict[str, int]] = {}
    busy: dict[str, float] = {}
    for seg in segments:
        chain = seg.segment
        share = seg.busy_s / len(chain.runners)
        for j, member in enumerate(chain.runners):
            busy[member.name] = share
            counts: dict[str, int] = {}
            for p, port in enumerate(member.plan.outputs):
                k = chain.member_ports[j][p]
                counts[port] = chain.links[j].enqueued if k < 0 else seg.port_out[k]
            ports[member.name] = counts
    out: dict[str, dict[str, object]] = {}
    for name in sorted(runners):
        r = runners[name]
        counters: dict[str, object] = dict(r.counters())
        counters["ports"] = ports.get(name) or {port: r.port_out[i] for i, port in enumerate(r.plan.outputs)}
        counters["busy_s"] = round(busy.get(name, r.busy_s), 6)
        impl = r.impl
        if isinstance(impl, (AsyncSource, AsyncSink)):
            for key, value in impl.health().items():
                counters[key] = r.ctx.mask(value) if isinstance(value, str) else value
        out[name] = counters
    return out


