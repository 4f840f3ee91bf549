"""Two toy node types that fuse through their specs alone, each with its own failure text:
`test.steps`, a head (an `IndexedSource`), and `test.invert`, a step. Fused or not, a
failing event must get the same message, which only the code's `explain` can give.
"""

from dataclasses import dataclass

from engine.functions import describe_error
from engine.fused_code import CodeWriter, Member, MemberCode
from engine.node import Batch, Event, Failures, IndexedSource, NodeContext, Transform
from engine.params import Raw, expect, whole
from engine.spec import FRESH, HEAD, SOURCE, STEP, TRANSFORM, FusionRole, NodeSpec, param, params_schema


@dataclass(frozen=True)
class StepsParams:
    count: int


class Steps(IndexedSource):
    """`count` events `{'n': 12 // (i % 4)}`: every fourth index has no event."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.count = expect(ctx.params, StepsParams).count
        self.i = 0

    def failure(self, i: int, exc: Exception) -> str:
        return f"no step at index {i}: {describe_error(exc)}"

    def next_index(self) -> int:
        return self.i

    def next_limit(self, budget: int, now: float) -> int:
        return min(self.i + budget, self.count)

    def advance_to(self, limit: int) -> None:
        self.i = limit

    def alive(self) -> bool:
        return self.i < self.count

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        for i in range(self.i, self.next_limit(budget, now)):
            try:
                outs[0].append({"n": 12 // (i % 4)})
            except Exception as exc:
                failures.event_failed({"i": i}, self.failure(i, exc), outs)
            self.i = i + 1
        return self.alive()

    def position(self) -> str:
        return str(self.i)


class StepsCode(MemberCode):
    def body(self, w: CodeWriter, member: Member) -> None:
        w.line("try:")
        w.line("    _event = {'n': 12 // (i % 4)}")
        w.fail_and_next(member.index, "{'i': i}")

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        index = event["i"]
        assert isinstance(node, Steps) and isinstance(index, int)
        return node.failure(index, exc)


class Invert(Transform):
    """Sets `inv` to `60 // (n - 6)`: an event whose `n` is 6 fails."""

    def change(self, event: Event) -> Event:
        n = event["n"]
        assert isinstance(n, int)
        return {**event, "inv": 60 // (n - 6)}

    def failure(self, event: Event, exc: Exception) -> str:
        return f"cannot invert: {describe_error(exc)}"

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        for event in batch:
            try:
                outs[0].append(self.change(event))
            except Exception as exc:
                failures.event_failed(event, self.failure(event, exc), outs)
        return len(batch)


class InvertCode(MemberCode):
    def body(self, w: CodeWriter, member: Member) -> None:
        w.line("try:")
        w.line(f"    _event = _invert{member.index}(_event)")
        w.fail_and_next(member.index)
        w.known.pop("inv", None)

    def scope(self, member: Member, node: object) -> dict[str, object]:
        assert isinstance(node, Invert)
        return {f"_invert{member.index}": node.change}

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        assert isinstance(node, Invert)
        return node.failure(event, exc)


def parse_steps(raw: Raw) -> StepsParams:
    return StepsParams(whole(raw, "count", 10))


STEPS = NodeSpec(
    name="test.steps", kind=SOURCE, summary="test node test.steps",
    params=params_schema({"count": param({"type": "integer"}, "how many", 10)}),
    factory=Steps, parse=parse_steps, fusion=FusionRole(HEAD, FRESH, StepsCode()))

INVERT = NodeSpec(
    name="test.invert", kind=TRANSFORM, summary="test node test.invert", params=params_schema({}),
    factory=Invert, fusion=FusionRole(STEP, FRESH, InvertCode()))
