"""Fused chains at run time: one generated loop per batch runs every member.

The scheduler sees a chain as one node (`SegmentRunner`); statistics still come per member
and per edge, exactly as if each ran on its own: the members' runners and the links keep
their counters, which the segment updates after every batch. A link reports the events
that crossed it; its high-water mark is the largest batch that crossed it, bounded by its
capacity, which is what the same block edge would have held between two passes.
"""

from collections.abc import Callable
from typing import cast

from engine.chain import Chain, SegmentRunner
from engine.compile_expr import function_scope, guard_scope, interned
from engine.edges import Edge, Observer
from engine.fused_code import Member, MemberState, generate_source, prefix
from engine.fusion import ChainFinder
from engine.node import Batch, Clock, Event, Failures, IndexedSource, Source, Transform
from engine.plan import GraphPlan
from engine.runner import NodeRunner
from engine.spec import FRESH, HEAD, STEP, FusionRole, SpecRegistry

Counters = tuple[int, ...]


class Segment(Chain):
    """The members of one chain, the edges between them, and the generated loop."""

    def __init__(self, runners: list[NodeRunner], roles: list[FusionRole], links: list[Edge], owned_input: bool,
                 clock: Clock) -> None:
        super().__init__(runners, links)
        members: list[Member] = []
        owned = owned_input
        for j, (r, role) in enumerate(zip(runners, roles)):
            ports = {port: k for port, k in zip(r.plan.outputs, self.member_ports[j]) if k >= 0}
            members.append(Member(j, role.code, r.ctx.params, ports, owned, role.place == HEAD, role.place == STEP))
            if role.output == FRESH:
                owned = True  # e.g. a map's output is its own copy, or its input already was
        self.members = members
        # What each member keeps for its lines in this segment (an aggregate's group index).
        self.member_states: list[MemberState] = [
            m.code.state(m, r.impl, self.fail) for m, r in zip(members, runners)]
        self.clock = clock
        self.source = generate_source(members)
        self.run = self._compile(clock)

    def set_taps(self, link: int, taps: list[Observer]) -> None:
        """Observe one link, or stop (empty list): the loop is generated again, with a call
        per event on tapped links only, so an untapped chain pays nothing; and a tap that
        wants no more of a batch (a rate-limited sample) costs one test per event."""
        super().set_taps(link, taps)
        self.source = generate_source(self.members, frozenset(self.taps))
        self.run = self._compile(self.clock)

    def _compile(self, clock: Clock) -> Callable[..., Counters]:
        scope = guard_scope()
        for j, r in enumerate(self.runners):
            scope.update(function_scope(r.ctx.rng, clock, prefix(j)))
            # Builtin conversions succeed and fail on exactly the same values as the
            # library's; a failure is explained by the member's own code.
            scope[prefix(j) + "int"] = int
            scope[prefix(j) + "float"] = float
            member = self.members[j]
            scope.update(member.code.scope(member, r.impl))
            scope.update(self.member_states[j].scope())
        for link, observers in self.taps.items():
            call = _TapCall(observers)
            scope[f"_tap{link}"] = call.one
            scope[f"_tapbegin{link}"] = call.begin
        scope.update({"_fail": self.fail, "_range": range, "_Exception": Exception})
        names = " -> ".join(r.name for r in self.runners)
        scope = interned(scope)
        exec(compile(self.source, f"<fused {names}>", "exec", dont_inherit=True), scope)
        return cast(Callable[..., Counters], scope["_run"])

    # -- called from the generated loop ---------------------------------------------

    def fail(self, member: int, event: Event, exc: Exception) -> None:
        """One event failed in a member's lines: its `on_error`, with its code's message."""
        r = self.runners[member]
        m = self.members[member]
        message = m.code.explain(m, r.impl, event, exc)
        r.errors.event_failed(event, message, self.views[member])

    # -- around each batch -------------------------------------------------------------

    def begin(self, outs: list[Batch]) -> list[int]:
        """Point the members' failure outputs at this batch's lists; the error counts now."""
        self.point_views(outs)
        for state in self.member_states:
            state.begin()
        return [r.errors.count for r in self.runners]

    def account(self, arrived: int, counters: Counters, errors_before: list[int], outs: list[Batch],
                head_is_source: bool) -> None:
        """Member and link counters after one batch, as the unfused nodes would count."""
        passes = list(counters)
        entries = arrived
        last = len(self.runners) - 1
        for j, r in enumerate(self.runners):
            if j > 0 or not head_is_source:
                r.events_in += entries
            passed = 0  # events handed on along the link
            if j < last:
                if self.members[j].code.counts_passes():
                    passed = passes.pop(0)
                else:
                    passed = entries - (r.errors.count - errors_before[j])
                self.cross_link(j, passed)
            out = passed
            for k in self.ports_of[j]:
                out += len(outs[k])
            r.events_out += out
            self.member_states[j].account(entries)
            entries = passed

    def flush_tail(self, outs: list[Batch]) -> None:
        """End of input: the last member emits what it holds (an aggregate's totals)."""
        self.point_views(outs)
        tail = self.runners[-1]
        impl = tail.impl
        if isinstance(impl, Transform):
            impl.flush(self.views[-1])
        for k in self.ports_of[-1]:
            tail.events_out += len(outs[k])


class _TapCall:
    """One event at a time to the observers of a link, as the one-event batch they expect."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self.wanting: list[Observer] = list(observers)

    def begin(self) -> bool:
        """A new batch: every observer wants events again."""
        self.wanting = list(self.observers)
        return True

    def one(self, event: Event) -> bool:
        """Shows the event to the observers that still want this batch's events; whether
        any still does."""
        wanting = self.wanting
        for observe in list(wanting):
            if observe([event]) is False:
                wanting.remove(observe)
        return bool(wanting)


class FusedTransform(Transform):
    def __init__(self, segment: Segment) -> None:
        super().__init__(segment.runners[0].ctx)
        self.segment = segment

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        segment = self.segment
        errors_before = segment.begin(outs)
        counters = segment.run(batch, outs)
        segment.account(len(batch), counters, errors_before, outs, False)
        return len(batch)

    def flush(self, outs: list[Batch]) -> None:
        self.segment.flush_tail(outs)


class FusedSource(Source):
    """A chain headed by a source whose role is `HEAD`: the loop makes the events, the
    source says how far it may go."""

    def __init__(self, segment: Segment, head: IndexedSource) -> None:
        super().__init__(segment.runners[0].ctx)
        self.segment = segment
        self.head = head

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        head = self.head
        start = head.next_index()
        limit = head.next_limit(budget, now)
        if limit > start:
            segment = self.segment
            errors_before = segment.begin(outs)
            counters = segment.run(start, limit, outs)
            head.advance_to(limit)
            segment.account(limit - start, counters, errors_before, outs, True)
        return head.alive()

    def deadline(self) -> float:
        return self.head.deadline()

    def finish(self, outs: list[Batch]) -> None:
        self.segment.flush_tail(outs)

    def position(self) -> str:
        return self.head.position()

    def resume(self, position: str) -> None:
        self.head.resume(position)


def build_segments(plan: GraphPlan, registry: SpecRegistry, runners: dict[str, NodeRunner],
                   edges: dict[str, Edge], clock: Clock) -> list[SegmentRunner]:
    finder = ChainFinder(plan, registry)
    segments: list[SegmentRunner] = []
    for chain in finder.chains():
        if any(name not in runners for name in chain):
            continue  # a partial reload builds only the chains of the nodes it replaces
        members = [runners[name] for name in chain]
        links = [edges[m.plan.inputs[0]] for m in members[1:]]
        roles = [finder.role(name) for name in chain]
        heads = roles[0].place == HEAD  # the loop makes the events from an index range
        # A head's events are its own; a chain after other nodes owns them only if they do.
        owned = heads or all(finder.owned(i) for i in members[0].plan.inputs)
        segment = Segment(members, roles, links, owned, clock)
        head = members[0].impl
        impl: FusedSource | FusedTransform
        if not heads:
            impl = FusedTransform(segment)
        elif isinstance(head, IndexedSource):
            impl = FusedSource(segment, head)
        else:
            raise TypeError(f"node '{chain[0]}': the fusion role {HEAD} needs an IndexedSource "
                            f"(engine/node.py), not {type(head).__name__}")
        segments.append(SegmentRunner(segment, impl))
    return segments
