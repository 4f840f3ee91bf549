"""`upper`, the toy node type of docs/extending.md: upper-cases the text of some fields.

Everything Headrace knows about the type is here and in its spec (`UPPER`): its typed
parameters, a cross-field check, its runtime object, and its part in a fused loop.
"""

from dataclasses import dataclass

from engine.findings import Finding
from engine.functions import describe_error
from engine.fused_code import CodeWriter, Member, MemberCode
from engine.node import Batch, Event, Failures, NodeContext, Transform
from engine.params import Raw, expect, texts
from engine.spec import FRESH, STEP, TRANSFORM, FusionRole, NodeSpec, param, params_schema


@dataclass(frozen=True)
class UpperParams:
    fields: tuple[str, ...]


def parse_upper(raw: Raw) -> UpperParams:
    return UpperParams(texts(raw, "fields"))


def check_upper(params: object) -> list[Finding]:
    """A field listed twice is a mistake the schema cannot see (`uniqueItems` would say
    only that the list is wrong, not which entry)."""
    found: list[Finding] = []
    seen: set[str] = set()
    for index, field in enumerate(expect(params, UpperParams).fields):
        if field in seen:
            found.append(Finding("HR025", ("fields", index), f"'{field}' is listed twice",
                                 "remove the repeated entry"))
        seen.add(field)
    return found


def upper(event: Event, fields: tuple[str, ...]) -> Event:
    changed = dict(event)  # never change the event received: others may hold it
    for field in fields:
        value = event[field]
        if not isinstance(value, str):
            raise TypeError(f"upper() needs text in '{field}'")
        changed[field] = value.upper()
    return changed


class Upper(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.fields = expect(ctx.params, UpperParams).fields

    def change(self, event: Event) -> Event:
        return upper(event, self.fields)

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        out = outs[0]
        for index, event in enumerate(batch):
            try:
                out.append(self.change(event))
            except Exception as exc:
                if not failures.event_failed(event, describe_error(exc), outs):
                    return index
        return len(batch)


class UpperCode(MemberCode):
    """In a fused loop: one call of the node's own `change` per event."""

    def body(self, w: CodeWriter, member: Member) -> None:
        w.line("try:")
        w.line(f"    _event = _upper{member.index}(_event)")
        w.fail_and_next(member.index)
        for field in expect(member.params, UpperParams).fields:
            w.known.pop(field, None)  # its value changed

    def scope(self, member: Member, node: object) -> dict[str, object]:
        assert isinstance(node, Upper)
        return {f"_upper{member.index}": node.change}


UPPER = NodeSpec(
    name="upper",
    kind=TRANSFORM,
    summary="Upper-cases the text of the given fields.",
    params=params_schema({
        "fields": param({"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                        "The fields whose text is upper-cased.", ["name"]),
    }, required=("fields",)),
    factory=Upper,
    parse=parse_upper,
    checks=check_upper,
    fusion=FusionRole(STEP, FRESH, UpperCode()),
    since=2,
    example="type: upper\nfrom: people\nwith: {fields: [name]}",
)
