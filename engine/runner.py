"""One node at run time: its edges, what it could not hand over yet, its counters."""

from typing import Final

from engine.edges import Edge
from engine.errors import NodeErrors
from engine.ids import DEFAULT_PORT
from engine.node import AsyncSink, AsyncSource, AsyncTransform, Batch, NodeContext, Source, Transform
from engine.plan import NodePlan

# How the scheduler drives a runner (`NodeRunner.run_mode`); node kinds are engine/spec.py's.
RUN_STEP: Final = 0  # a transform (or sink) the scheduler steps
RUN_POLL: Final = 1  # a source the scheduler polls
RUN_ASYNC_SOURCE: Final = 2  # an IO source on its own task
RUN_ASYNC_SINK: Final = 3  # an IO sink on its own task
RUN_ASYNC_TRANSFORM: Final = 4  # a transform whose work is awaited, on its own task


class NodeRunner:
    def __init__(
        self,
        plan: NodePlan,
        ctx: NodeContext,
        impl: Transform | Source | AsyncSource | AsyncSink | AsyncTransform,
        inputs: list[Edge],
        outputs: list[list[Edge]],
    ) -> None:
        self.name = plan.name
        self.tail = plan.name  # the most downstream node this runner runs (fused chains: the last)
        self.members = [plan.name]  # the nodes this runner runs (fused chains: all of them)
        self.plan = plan
        self.ctx = ctx
        self.impl = impl
        if isinstance(impl, Transform):
            self.run_mode = RUN_STEP
        elif isinstance(impl, Source):
            self.run_mode = RUN_POLL
        elif isinstance(impl, AsyncSource):
            self.run_mode = RUN_ASYNC_SOURCE
        elif isinstance(impl, AsyncTransform):
            self.run_mode = RUN_ASYNC_TRANSFORM
        else:
            self.run_mode = RUN_ASYNC_SINK
        self.inputs = inputs
        self.outputs = outputs  # per output port, every edge leaving it
        self.backlog: list[tuple[Edge, Batch]] = []  # events an edge refused, per edge, in order
        self.pending: Batch = []  # input taken but not yet consumed (a retry is waiting)
        self.errors = NodeErrors(ctx)
        self.events_in = 0
        self.events_out = 0
        self.flushed = False  # end of input was handled (`flush` called, sources exhausted)
        self.finished = False  # flushed, backlog handed over, output edges closed
        self.next_input = 0  # rotates which input edge is read first, deterministically
        # A node that reads its inputs apart (a join) gets each batch from one edge, and
        # `batch_input` says which: the batch taken, or the one still pending.
        ctx.inputs = tuple(input_label(e) for e in inputs)
        self.apart = isinstance(impl, Transform) and len(inputs) > 1 and impl.reads_inputs_apart()
        self.batch_input = 0
        self.unacked: list[tuple[Edge, int]] = []  # taken from each edge, oldest first, not yet acked
        self.deferred_ack = 0  # consumed, but some results still wait in the backlog
        self.held_ack = 0  # consumed from a durable edge, results still in memory downstream
        self.holds_acks = False  # set by the runtime: engine/durability.py's `holds_acks`
        self.stop_requested = False  # this node alone stops (a partial reload replaces it)
        self.port_out = [0 for _ in outputs]  # events handed to each output port
        self.busy_s = 0.0  # time spent running the node (per batch; a fused chain's, per chain)
        self.blocked = False  # it waits for room on a full output edge

    def new_outs(self) -> list[Batch]:
        return [[] for _ in self.outputs]

    def outputs_have_room(self) -> bool:
        for port in self.outputs:
            for edge in port:
                if not edge.has_room():
                    return False
        return True

    def distribute(self, outs: list[Batch]) -> bool:
        """Hand every port's events to all its edges; refused events go to the backlog.
        Events are shared between edges, never copied: nodes do not mutate events."""
        emitted = False
        for port, events in enumerate(outs):
            if not events:
                continue
            emitted = True
            self.events_out += len(events)
            self.port_out[port] += len(events)
            for edge in self.outputs[port]:
                rest = edge.offer(events)
                if rest:
                    self.backlog.append((edge, rest))
        return emitted

    def mark_blocked(self, now: float) -> None:
        """It cannot run for want of room: each full output edge starts counting the wait."""
        self.blocked = True
        for port in self.outputs:
            for edge in port:
                if edge.blocked_since == 0.0 and not edge.has_room():
                    edge.blocked_since = now
        for edge, _ in self.backlog:
            if edge.blocked_since == 0.0:
                edge.blocked_since = now

    def unblocked(self, now: float) -> None:
        self.blocked = False
        for port in self.outputs:
            for edge in port:
                if edge.blocked_since > 0.0:
                    edge.blocked_s += max(0.0, now - edge.blocked_since)
                    edge.blocked_since = 0.0

    def flush_backlog(self) -> bool:
        """Offer refused events again; True when anything moved."""
        moved = False
        still: list[tuple[Edge, Batch]] = []
        for edge, events in self.backlog:
            rest = edge.offer(events)
            if len(rest) < len(events):
                moved = True
            if rest:
                still.append((edge, rest))
        self.backlog = still
        return moved

    def take_input(self, budget: int) -> Batch:
        """Up to `budget` events from the input edges, starting at a rotating edge."""
        inputs = self.inputs
        n = len(inputs)
        if n == 1:
            taken = inputs[0].take(budget)
            if taken:
                self.unacked.append((inputs[0], len(taken)))
            return taken
        batch: Batch = []
        start = self.next_input
        self.next_input = (start + 1) % n if n else 0
        if self.apart:
            return self.take_one_input(start, budget)
        for offset in range(n):
            edge = inputs[(start + offset) % n]
            if edge.depth:
                taken = edge.take(budget - len(batch))
                if taken:
                    self.unacked.append((edge, len(taken)))
                batch.extend(taken)
                if len(batch) >= budget:
                    break
        return batch

    def take_one_input(self, start: int, budget: int) -> Batch:
        """Up to `budget` events from the first edge with any, from `start` on; the edge's
        index goes to `batch_input`."""
        inputs = self.inputs
        n = len(inputs)
        for offset in range(n):
            index = (start + offset) % n
            edge = inputs[index]
            if edge.depth:
                taken = edge.take(budget)
                if taken:
                    self.unacked.append((edge, len(taken)))
                    self.batch_input = index
                    return taken
        return []

    def ack_deferred(self) -> None:
        if self.deferred_ack:
            count, self.deferred_ack = self.deferred_ack, 0
            self.ack(count)

    def ack(self, count: int) -> None:
        """The oldest `count` taken events are handed on: tell their edges, in take order."""
        while count > 0 and self.unacked:
            edge, taken = self.unacked[0]
            done = min(count, taken)
            edge.ack(done)
            count -= done
            if done == taken:
                self.unacked.pop(0)
            else:
                self.unacked[0] = (edge, taken - done)

    def inputs_drained(self) -> bool:
        return all(edge.drained() for edge in self.inputs)

    def close_outputs(self) -> None:
        for port in self.outputs:
            for edge in port:
                edge.closed = True
        self.finished = True

    def counters(self) -> dict[str, int]:
        out = {"in": self.events_in, "out": self.events_out, "errors": self.errors.count}
        impl = self.impl
        if isinstance(impl, Transform):
            out.update(impl.counters())
        return out


def input_label(edge: Edge) -> str:
    """The upstream of an input edge as `from:` writes it: `node`, or `node.port`."""
    plan = edge.plan
    return plan.from_node if plan.from_port == DEFAULT_PORT else f"{plan.from_node}.{plan.from_port}"
