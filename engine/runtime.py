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
from typing import Awaitable, Callable, Final

from engine.edges import Edge
from engine.controls import Controls
from engine.fused import build_segments
from engine.node import INFINITY, AsyncSink, AsyncSource, Clock, NodeContext, NodeFailure, Source, Transform
from engine.plan import DEFAULT_STORAGE, EdgePlan, GraphPlan
from engine.runner import ASYNC_SINK, ASYNC_SOURCE, SOURCE, TRANSFORM, NodeRunner
from engine.wakeup import Wakeup
from engine.spec import SpecRegistry

BATCH_BUDGET: Final = 1024
STATE_SUFFIX: Final = "#state"  # checkpoint name of a node's saved state

Action = Callable[[], Awaitable[None]]


class Runtime:
    def __init__(self, plan: GraphPlan, registry: SpecRegistry, clock: Clock | None = None,
                 budget: int = BATCH_BUDGET, fuse: bool = True,
                 durable: Callable[[GraphPlan, EdgePlan], Edge] | None = None) -> None:
        self.plan = plan
        self.clock = clock if clock is not None else Clock()
        self.budget = budget
        self.edges: dict[str, Edge] = {}
        for e in plan.edges:
            if e.storage == DEFAULT_STORAGE:
                self.edges[e.id] = Edge(e)
            elif durable is None:
                raise NodeFailure(f"edge '{e.id}' is durable (storage: {e.storage}) but no durable storage is "
                                  "open here; run it with `engine run` or `engine serve`")
            else:
                self.edges[e.id] = durable(plan, e)  # built by adapters (LMDB): the engine never opens files
        self.runners: dict[str, NodeRunner] = {}
        families: set[str] = set()  # of the types that run as chains of their own
        for node in plan.nodes:
            spec = registry.get(node.type)
            if spec is None or spec.factory is None:
                raise NodeFailure(f"node '{node.name}': type '{node.type}' cannot run in this engine")
            if spec.segment:
                families.add(spec.segment)
            ctx = NodeContext(node.name, node.type, node.params(), node.outputs, node.on_error, self.clock)
            outputs = [[e for e in self.edges.values() if e.plan.from_node == node.name and e.plan.from_port == port]
                       for port in node.outputs]
            self.runners[node.name] = NodeRunner(
                node, ctx, spec.factory(ctx), [self.edges[i] for i in node.inputs], outputs)
        # Linear chains run as one generated loop each (see engine/fusion.py); `fuse=False`
        # runs every node on its own, which tests use as the reference.
        self.segments = build_segments(plan, self.runners, self.edges, self.clock) if fuse else []
        # Families that run as chains of their own (GPU segments) are built whatever `fuse`
        # says: their members cannot run one by one. A builder runs only for a graph with its
        # types (the GPU one imports NumPy and PyOpenCL).
        for family, build in registry.segment_builders.items():
            if family in families:
                self.segments.extend(build(plan, self.runners, self.edges, self.clock))
        self.order = self._schedule_order()
        self.signal = Wakeup()
        # Pause, resume and taps, for the control plane (engine/controls.py).
        self.controls = Controls(self.edges, self.segments, self.signal)
        self.stopping = False
        self.failure = ""
        self.started_at = 0.0
        self.elapsed_s = 0.0
        self.tasks: list[asyncio.Task[None]] = []

    def _schedule_order(self) -> list[NodeRunner]:
        """Core nodes by band, then downstream first (reverse topological order)."""
        depth: dict[str, int] = {}
        for name in self._topological():
            upstream = [depth[self.edges[i].plan.from_node] for i in self.plan.node(name).inputs]
            depth[name] = 1 + max(upstream) if upstream else 0
        fused = {r.name for segment in self.segments for r in segment.segment.runners}
        core = [r for r in self.runners.values() if r.kind in (TRANSFORM, SOURCE) and r.name not in fused]
        core.extend(self.segments)

        def band(r: NodeRunner) -> tuple[int, int, str]:
            if r.kind == SOURCE:
                level = 2
            elif not r.outputs:
                level = 0
            else:
                level = 1
            return (level, -depth[r.tail], r.name)
        return sorted(core, key=band)

    def _topological(self) -> list[str]:
        indegree = {n.name: len(n.inputs) for n in self.plan.nodes}
        ready = sorted(name for name, d in indegree.items() if d == 0)
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for edge in self.edges.values():
                if edge.plan.from_node == name:
                    indegree[edge.plan.to_node] -= 1
                    if indegree[edge.plan.to_node] == 0:
                        ready.append(edge.plan.to_node)
                        ready.sort()
        return order

    # -- control -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Graceful stop: sources stop reading; everything already emitted drains (a stop
        resumes whatever was paused, or the drain could never finish)."""
        self.stopping = True
        self.controls.clear()
        self.signal.notify()

    def fail(self, message: str) -> None:
        if not self.failure:
            self.failure = message
        self.signal.notify()

    # -- running -------------------------------------------------------------------

    async def run(self) -> bool:
        """Run to the end of every finite source (or a stop); False when the graph failed
        (the reason is in `failure`)."""
        self.started_at = self.clock.now()
        self._resume_sources()
        self._restore_states()
        try:
            await self._open_all()
            if not self.failure:
                for r in self.runners.values():
                    if r.kind == ASYNC_SOURCE:
                        self.tasks.append(asyncio.ensure_future(self._drive_source(r)))
                    elif r.kind == ASYNC_SINK:
                        self.tasks.append(asyncio.ensure_future(self._drive_sink(r)))
                await self._schedule()
        finally:
            for task in self.tasks:
                if not task.done():
                    task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            await self._close_all()
            self.elapsed_s = self.clock.now() - self.started_at
        return not self.failure

    def _durable_outputs(self, r: NodeRunner) -> list[Edge]:
        return [edge for port in r.outputs for edge in port if edge.plan.storage != DEFAULT_STORAGE]

    def _resume_sources(self) -> None:
        """Sources feeding a durable edge continue where its last commit left them."""
        for r in list(self.runners.values()) + list(self.segments):
            impl = r.impl
            if isinstance(impl, (Source, AsyncSource)) and (r.kind != SOURCE or r in self.order):
                durable = self._durable_outputs(r)
                position = durable[0].checkpoint(r.name) if durable else ""
                if position:
                    impl.resume(position)

    def _restore_states(self) -> None:
        """Transforms reading a durable edge take back the state saved with its last ack."""
        for r in self.order:
            impl = r.impl
            if isinstance(impl, Transform):
                durable = [e for e in r.inputs if e.plan.storage != DEFAULT_STORAGE]
                state = durable[0].checkpoint(r.name + STATE_SUFFIX) if durable else ""
                if state:
                    impl.restore(state)

    def _ack(self, r: NodeRunner) -> None:
        """Acknowledge what `r` consumed and handed on; its state goes in the same commit."""
        if not r.deferred_ack:
            return
        impl = r.impl
        if isinstance(impl, Transform):
            state = impl.state()
            if state:
                for edge in r.inputs:
                    edge.stage_checkpoint(r.name + STATE_SUFFIX, state)
        r.ack_deferred()

    def _checkpoint(self, r: NodeRunner, position: str) -> None:
        if position:
            for edge in self._durable_outputs(r):
                edge.stage_checkpoint(r.name, position)

    async def _open_all(self) -> None:
        for r in self.runners.values():
            impl = r.impl
            if isinstance(impl, (AsyncSource, AsyncSink)):
                try:
                    await self._with_retries(r, impl.open)
                except NodeFailure as exc:
                    self.fail(str(exc))
                    return

    async def _close_all(self) -> None:
        for r in self.runners.values():
            impl = r.impl
            if isinstance(impl, (AsyncSource, AsyncSink)):
                try:
                    await impl.close()
                except NodeFailure as exc:
                    self.fail(str(exc))

    async def _with_retries(self, r: NodeRunner, action: Action) -> None:
        """IO failures are retried when the node's `on_error` says retry, then fatal."""
        policy = r.ctx.on_error
        attempt = 0
        while True:
            try:
                await action()
                return
            except NodeFailure:
                if policy.action != "retry" or attempt >= policy.attempts or self.stopping:
                    raise
                await asyncio.sleep(policy.backoff_ms / 1000.0 * (2 ** attempt))
                attempt += 1

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
            if all(r.finished for r in self.runners.values()):
                break
            now = self.clock.now()
            await self.signal.wait(self._next_timer(now) - now)

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
                    continue
                self._ack(r)
            if r.flushed:
                r.close_outputs()
                progressed = True
                continue
            if not r.errors.ready(now) or not r.outputs_have_room():
                continue
            impl = r.impl
            if isinstance(impl, Source):
                progressed = self._poll(r, impl, now) or progressed
            elif isinstance(impl, Transform):
                progressed = self._step(r, impl, now, budget) or progressed
        return progressed

    def _poll(self, r: NodeRunner, source: Source, now: float) -> bool:
        if self.stopping:
            self._finish_source(r, source)
            return True
        if source.deadline() > now:
            return False
        outs = r.new_outs()
        alive = source.poll(self.budget, now, outs, r.errors)
        self._checkpoint(r, source.position())
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
            consumed = node.process(batch, outs, r.errors)
            r.pending = batch[consumed:] if consumed < len(batch) else []
            r.events_in += consumed
            moved = True
        elif not r.pending and r.inputs_drained():
            node.flush(outs)
            r.flushed = True
            moved = True
        emitted = r.distribute(outs)
        r.deferred_ack += consumed
        if not r.backlog:
            self._ack(r)  # every result is on an output edge: the inputs can go
        return emitted or moved

    async def _drive_source(self, r: NodeRunner) -> None:
        source = r.impl
        assert isinstance(source, AsyncSource)
        try:
            while not self.stopping and not self.failure:
                if self.controls.is_paused(r):
                    await self.signal.wait(INFINITY)
                    continue
                outs = r.new_outs()
                reading = asyncio.ensure_future(source.read(r.errors, outs))
                stopped = asyncio.ensure_future(self.signal.until(self._should_stop_reading))
                await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if not reading.done():
                    reading.cancel()
                    break
                alive = reading.result()
                self._checkpoint(r, source.position())
                r.distribute(outs)
                self.signal.notify()
                while r.backlog and not self.failure:
                    await self.signal.wait(INFINITY)
                    r.flush_backlog()
                if not alive:
                    break
        except NodeFailure as exc:
            self.fail(str(exc))
        finally:
            r.flushed = True
            r.close_outputs()
            self.signal.notify()

    def _should_stop_reading(self) -> bool:
        return self.stopping or bool(self.failure)

    async def _drive_sink(self, r: NodeRunner) -> None:
        sink = r.impl
        assert isinstance(sink, AsyncSink)
        sink.failures = r.errors
        try:
            while not self.failure:
                if self.controls.is_paused(r):
                    await self.signal.wait(INFINITY)
                    continue
                batch = r.take_input(self.budget)
                if batch:
                    self.signal.notify()  # room was freed upstream
                    outs = r.new_outs()
                    sink.failed_outs = outs
                    await self._with_retries(r, _WriteCall(sink, batch).run)
                    r.events_in += len(batch)
                    r.ack(len(batch))  # written and flushed
                    if r.distribute(outs):  # dead letters of events the sink gave up on
                        self.signal.notify()
                        while r.backlog and not self.failure:
                            await self.signal.wait(INFINITY)
                            r.flush_backlog()
                    continue
                if r.inputs_drained():
                    break
                await self.signal.wait(INFINITY)
        except NodeFailure as exc:
            self.fail(str(exc))
        finally:
            r.flushed = True
            r.close_outputs()
            self.signal.notify()

    # -- reporting -----------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        return {
            "nodes": {name: self.runners[name].counters() for name in sorted(self.runners)},
            "edges": {eid: self.edges[eid].counters() for eid in sorted(self.edges)},
            "elapsed_s": round(self.elapsed_s, 6),
        }

    def held(self) -> int:
        """Events inside the graph right now: queued on edges, refused and waiting with
        their producer, or taken but not yet consumed (what a timed-out drain loses)."""
        # A durable edge keeps what it holds for the next run: that is not lost.
        total = sum(edge.depth for edge in self.edges.values() if edge.plan.storage == DEFAULT_STORAGE)
        for r in list(self.runners.values()) + list(self.segments):
            taken_from_memory = all(e.plan.storage == DEFAULT_STORAGE for e in r.inputs)
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


class _WriteCall:
    """One `sink.write(batch)` as a retryable action."""

    def __init__(self, sink: AsyncSink, batch: list[dict[str, object]]) -> None:
        self.sink = sink
        self.batch = batch

    async def run(self) -> None:
        await self.sink.write(self.batch)

