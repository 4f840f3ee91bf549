"""Fused chains at run time: one generated loop per batch runs every member.

The scheduler sees a chain as one node (`SegmentRunner`); statistics still come per member
and per edge, exactly as if each ran on its own: the members' runners and the links keep
their counters, which the segment updates after every batch. A link reports the events
that crossed it; its high-water mark is the largest batch that crossed it, bounded by its
capacity, which is what the same block edge would have held between two passes.
"""

from collections.abc import Callable
from typing import Any, Final, cast

from engine.aggregate import Aggregate
from engine.chain import Chain, SegmentRunner
from engine.compile_expr import function_scope, guard_scope, interned
from engine.edges import Edge
from engine.functions import describe_error
from engine.fused_code import Member, generate_source, prefix
from engine.fusion import ChainFinder
from engine.node import Batch, Clock, Event, EventError, Failures, Source, Transform
from engine.plan import GraphPlan
from engine.runner import NodeRunner
from engine.spec import FRESH, HEAD, STEP, FusionRole, SpecRegistry
from engine.transforms import Filter, Generate, Map, Route

_PLAIN_KEYS: Final = (int, str, float, type(None))
_NUMBERS: Final = (int, float)

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
        self.slow = 0
        # Plain group key -> that group's state list, for the fused loop (see fused_code).
        self.states: dict[object, list[Any]] = {}
        tail = runners[-1].impl
        self.aggregate: Aggregate | None = tail if isinstance(tail, Aggregate) else None
        self.by: str | None = tail.by[0] if isinstance(tail, Aggregate) and len(tail.by) == 1 else None
        self.members = members
        self.clock = clock
        self.source = generate_source(members)
        self.run = self._compile(clock)

    def set_taps(self, link: int, taps: list[Callable[[Batch], None]]) -> None:
        """Observe one link, or stop (empty list): the loop is generated again, with a call
        per event on tapped links only, so an untapped chain pays nothing."""
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
        for link, observers in self.taps.items():
            scope[f"_tap{link}"] = _TapCall(observers).one
        scope.update({
            "_fail": self.fail, "_agg_slow": self.aggregate_slow, "_states": self.states,
            "_range": range, "_Exception": Exception, "_PLAIN_KEYS": _PLAIN_KEYS, "_NUMBERS": _NUMBERS,
        })
        names = " -> ".join(r.name for r in self.runners)
        scope = interned(scope)
        exec(compile(self.source, f"<fused {names}>", "exec", dont_inherit=True), scope)
        return cast(Callable[..., Counters], scope["_run"])

    # -- called from the generated loop ---------------------------------------------

    def fail(self, member: int, event: Event, exc: Exception) -> None:
        r = self.runners[member]
        impl = r.impl
        if isinstance(impl, Generate):
            index = event.get("i")
            message = impl.failure(index if isinstance(index, int) else 0, exc)
        elif isinstance(impl, (Map, Filter, Route)):
            message = impl.failure(event, exc)
        else:
            message = describe_error(exc)
        r.errors.event_failed(event, message, self.views[member])

    def aggregate_slow(self, event: Event) -> None:
        aggregate = self.aggregate
        assert aggregate is not None
        self.slow += 1
        try:
            aggregate.add_total(event)
        except EventError as error:
            self.runners[-1].errors.event_failed(event, error.message, self.views[-1])
            return
        # A new group, or new state lists: the fused loop must update these from now on.
        key = event.get(self.by) if self.by is not None else None
        if key.__class__ in _PLAIN_KEYS:
            group = aggregate.groups.get(key)
            if group is not None:
                self.states[key] = group.states

    # -- around each batch -------------------------------------------------------------

    def begin(self, outs: list[Batch]) -> list[int]:
        """Point the members' failure outputs at this batch's lists; the error counts now."""
        self.point_views(outs)
        self.slow = 0  # events the aggregate handled with its own code in this batch
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
            if j == last and self.aggregate is not None:
                # The node numbers the events it takes; the slow path numbered its own.
                self.aggregate.seq += entries - self.slow
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

    def __init__(self, observers: list[Callable[[Batch], None]]) -> None:
        self.observers = observers

    def one(self, event: Event) -> None:
        for observe in self.observers:
            observe([event])


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
    def __init__(self, segment: Segment, generate: Generate) -> None:
        super().__init__(segment.runners[0].ctx)
        self.segment = segment
        self.generate = generate

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        generate = self.generate
        start = generate.i
        limit = generate.next_limit(budget, now)
        if limit > start:
            segment = self.segment
            errors_before = segment.begin(outs)
            counters = segment.run(start, limit, outs)
            generate.i = limit
            segment.account(limit - start, counters, errors_before, outs, True)
        return generate.alive()

    def deadline(self) -> float:
        return self.generate.deadline()

    def finish(self, outs: list[Batch]) -> None:
        self.segment.flush_tail(outs)

    def position(self) -> str:
        return self.generate.position()

    def resume(self, position: str) -> None:
        self.generate.resume(position)


def build_segments(plan: GraphPlan, registry: SpecRegistry, runners: dict[str, NodeRunner],
                   edges: dict[str, Edge], clock: Clock) -> list[SegmentRunner]:
    finder = ChainFinder(plan, registry)
    segments: list[SegmentRunner] = []
    for chain in finder.chains():
        if any(name not in runners for name in chain):
            continue  # a partial reload builds only the chains of the nodes it replaces
        members = [runners[name] for name in chain]
        links = [edges[m.plan.inputs[0]] for m in members[1:]]
        head = members[0].impl
        owned = isinstance(head, Generate) or all(finder.owned(i) for i in members[0].plan.inputs)
        segment = Segment(members, [finder.role(name) for name in chain], links, owned, clock)
        impl: FusedSource | FusedTransform
        impl = FusedSource(segment, head) if isinstance(head, Generate) else FusedTransform(segment)
        segments.append(SegmentRunner(segment, impl))
    return segments
