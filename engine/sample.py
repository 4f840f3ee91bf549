"""The `sample` node: keeps one event of every `rate`, by a key's hash or at random.

With `key`, the decision is `stable_hash(key) % rate == 0` (engine/stable_hash.py): the same
key value is kept or dropped on every run, in every process, fused or not, and by every
parallel instance, so a sample keeps whole users (or sessions, or orders) and the other
events of a kept key come through too. Without `key`, each event is kept with probability
1/rate, drawn from the node's random source (`seed` makes it repeat on every run).

A fused `sample` calls the node's own `keeps` per event, so a fused chain draws from the
same random source in the same order and keeps exactly the events the node alone would.
"""

from dataclasses import dataclass
from typing import Final

from engine.fused_code import CodeWriter, Member, MemberCode
from engine.node import Batch, Event, Failures, NodeContext, Transform
from engine.params import Raw, expect, names, optional_whole, whole
from engine.spec import FORWARDED, STEP, TRANSFORM, FusionRole, NodeSpec, param, params_schema
from engine.stable_hash import stable_hash

DEFAULT_RATE: Final = 10


@dataclass(frozen=True)
class SampleParams:
    rate: int = DEFAULT_RATE  # keep 1 of `rate` events
    key: tuple[str, ...] = ()  # (): at random
    seed: int | None = None


def parse_sample(raw: Raw) -> SampleParams:
    rate = whole(raw, "rate", DEFAULT_RATE)
    return SampleParams(rate if rate >= 1 else DEFAULT_RATE, names(raw, "key"), optional_whole(raw, "seed"))


class Sample(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, SampleParams)
        if params.seed is not None:
            ctx.rng.seed(params.seed)
        self.rate = params.rate
        self.fields = list(params.key)
        self.rng = ctx.rng

    def keeps(self, event: Event) -> bool:
        """Whether `event` is among the one in `rate` kept."""
        fields = self.fields
        if not fields:
            return self.rng.randrange(self.rate) == 0
        if len(fields) == 1:
            return stable_hash(event.get(fields[0])) % self.rate == 0
        return stable_hash([event.get(f) for f in fields]) % self.rate == 0

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        out = outs[0]
        keeps = self.keeps
        for event in batch:
            if keeps(event):
                out.append(event)
        return len(batch)


def make_sample(ctx: NodeContext) -> Transform:
    return Sample(ctx)


class SampleCode(MemberCode):
    """A fused `sample`: a filter whose condition is the node's own `keeps`."""

    def counts_passes(self) -> bool:
        return True

    def before(self, w: CodeWriter, member: Member) -> None:
        w.line(f"_p{member.index} = 0")
        w.counters.append(f"_p{member.index}")

    def body(self, w: CodeWriter, member: Member) -> None:
        w.line(f"if not _keeps{member.index}(_event):")
        w.line("    continue")
        w.line(f"_p{member.index} += 1")

    def scope(self, member: Member, node: object) -> dict[str, object]:
        return {f"_keeps{member.index}": node.keeps} if isinstance(node, Sample) else {}


SAMPLE_CODE: Final = SampleCode()


SAMPLE: Final = NodeSpec(
    name="sample",
    kind=TRANSFORM,
    summary="Keeps one event in `rate`: those whose `key` hashes to a multiple of `rate` (the same keys on "
            "every run), or, without `key`, at random from the node's seeded random source.",
    params=params_schema({
        "rate": param({"type": "integer", "minimum": 1}, "Keep 1 of this many events (1 keeps all).", 10),
        "key": param({"anyOf": [{"type": "string", "minLength": 1},
                                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]},
                     "Field or fields: an event is kept when `stable_hash` of the value (a list of the values, "
                     "for several fields) modulo `rate` is 0, so every event of a kept key is kept. Omitted: "
                     "each event at random.", "user"),
        "seed": param({"type": "integer"},
                      "Without `key`: seed of the random source, so the same events are kept on every run. "
                      "Omitted: a different choice each run.", 7),
    }, required=("rate",)),
    factory=make_sample,
    parse=parse_sample,
    fusion=FusionRole(STEP, FORWARDED, SAMPLE_CODE),
    example="type: sample\nfrom: requests\nwith: {rate: 100, key: session_id}",
)
