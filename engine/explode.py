"""The `explode` node: one event per element of a list field.

Each element goes into the field `as` (default: the list field's own name) of a new event
that carries the other fields (or none, with `keep_fields: false`); the list field itself
is gone. A missing, null or empty list emits nothing, or, with `keep_empty: true`, one
event whose `as` is null. Any other value in the field (text, a number, an object) is one
failed event for `on_error`.

Fused, an explode opens a loop of its own inside the chain's loop: the members after it run
once per element, exactly as they would on the events it emits on its own.
"""

from dataclasses import dataclass
from typing import Final

from engine.fused_code import CodeWriter, Member, MemberCode
from engine.node import Batch, Event, Failures, NodeContext, Transform
from engine.params import Raw, expect, flag, text_of

# What an empty list emits with `keep_empty`: one event, its `as` null.
_ONE_NULL: Final[list[object]] = [None]
_NO_ITEMS: Final[list[object]] = []


@dataclass(frozen=True)
class ExplodeParams:
    field: str  # the list field
    as_field: str  # where each element goes
    keep_empty: bool = False  # an empty or missing list still emits one event (`as` null)
    keep_fields: bool = True  # the other fields go with every element


def parse_explode(raw: Raw) -> ExplodeParams:
    field = text_of(raw, "field")
    return ExplodeParams(field, text_of(raw, "as") or field, flag(raw, "keep_empty"),
                         flag(raw, "keep_fields", True))


def json_kind(value: object) -> str:
    """The JSON name of a value's kind, for messages that must not show the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Explode(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, ExplodeParams)
        self.field = params.field
        self.as_field = params.as_field
        self.keep_empty = params.keep_empty
        self.keep_fields = params.keep_fields

    def failure(self, event: Event) -> str:
        """Why `event` cannot be exploded: its field holds no list (the value is not shown)."""
        return f"field '{self.field}' holds {json_kind(event.get(self.field))}, not a list"

    def items_of(self, event: Event) -> list[object] | None:
        """The elements to emit events for (`[None]` for a kept empty list); None when the
        field holds something other than a list."""
        items = event.get(self.field)
        if items.__class__ is not list:
            if items is not None:
                return None
            items = _NO_ITEMS
        assert isinstance(items, list)
        if not items:
            return _ONE_NULL if self.keep_empty else _NO_ITEMS
        return items

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        out = outs[0]
        field = self.field
        as_field = self.as_field
        keep_fields = self.keep_fields
        for index, event in enumerate(batch):
            items = self.items_of(event)
            if items is None:
                if not failures.event_failed(event, self.failure(event), outs):
                    return index
                continue
            if not items:
                continue
            # The same construction as the fused loop's (`_explode`): field order matches.
            base: Event = dict(event) if keep_fields else {}
            base.pop(field, None)
            for item in items:
                one = dict(base)
                one[as_field] = item
                out.append(one)
        return len(batch)


def make_explode(ctx: NodeContext) -> Transform:
    return Explode(ctx)


class ExplodeCode(MemberCode):
    """Opens a loop over the elements; the members after it are written inside that loop,
    so their `continue` moves on to the next element."""

    def counts_passes(self) -> bool:
        return True

    def before(self, w: CodeWriter, member: Member) -> None:
        w.line(f"_p{member.index} = 0")
        w.counters.append(f"_p{member.index}")

    def body(self, w: CodeWriter, member: Member) -> None:
        _explode(w, member)

    def scope(self, member: Member, node: object) -> dict[str, object]:
        if not isinstance(node, Explode):
            return {}
        return {f"_items{member.index}": node.items_of, f"_len{member.index}": len}

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        assert isinstance(node, Explode)
        return node.failure(event)


EXPLODE_CODE: Final = ExplodeCode()


def _explode(w: CodeWriter, member: Member) -> None:
    params = expect(member.params, ExplodeParams)
    j = member.index
    w.line(f"_l{j} = _items{j}(_event)")
    w.line(f"if _l{j} is None:")
    w.line(f"    _fail({j}, _event, _Exception())")
    w.line("    continue")
    w.line(f"_p{j} += _len{j}(_l{j})")
    w.line(f"_b{j} = " + ("{**_event}" if params.keep_fields else "{}"))
    w.line(f"_b{j}.pop({params.field!r}, None)")
    w.line(f"for _x{j} in _l{j}:")
    w.depth += 1
    w.line(f"_event = {{**_b{j}, {params.as_field!r}: _x{j}}}")
    # Locals of fields set earlier still hold their values in every element's event, except
    # for the fields explode replaced (or all of them, when the others are dropped).
    if params.keep_fields:
        w.known.pop(params.field, None)
        w.known.pop(params.as_field, None)
    else:
        w.known.clear()
