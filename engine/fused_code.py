"""Python source for one fused chain: a single loop per batch, every member's expressions
inlined, so an event crosses the chain with no call per node.

The generated function takes the batch (or, headed by a source such as `generate`, an index
range) and the segment's output lists, and returns the counters the loop cannot derive
afterwards: how many events each member that may drop events (a `filter`) passed on.
Every name it uses is a global of its own scope (see `fused.Segment`): builtins are empty,
as for any compiled expression. Failures call `_fail(member, event, exc)`, which applies
that member's `on_error` with the message its code's `explain` gives, the unfused one.

Each member's part is written by the `MemberCode` its type's spec names (the spec's fusion
role, engine/spec.py); the loop's frame knows no type names. The built-in types' codes are
here (the aggregate's in engine/fused_aggregate.py).
"""

from collections.abc import Callable
from typing import Final

from mypy_extensions import mypyc_attr

from engine.compile_expr import inline_python
from engine.expr_types import NUMBERS, type_of
from engine.functions import describe_error
from engine.node import Event
from engine.params import expect
from engine.transforms import (
    FIRST,
    UNMATCHED,
    Filter,
    FilterParams,
    Generate,
    GenerateParams,
    Map,
    MapParams,
    Route,
    RouteParams,
)

# How a member's state reports a failed event: `_fail(member, event, exc)` of the segment.
Failed = Callable[[int, Event, Exception], None]


def prefix(member: int) -> str:
    """Function names per member, so `rand()` and `now()` use that member's own sources."""
    return f"_f{member}_"


class Member:
    """What the code generator needs to know about one node of the chain."""

    def __init__(self, index: int, code: "MemberCode", params: object, ports: dict[str, int],
                 owned: bool, head: bool = False, passes_on: bool = False) -> None:
        self.index = index
        self.code = code  # writes this member's part of the loop
        self.params = params  # the node's parameter object (its type's spec.parse)
        self.ports = ports  # port name -> index in the segment's outs, for external ports
        self.owned = owned  # the event arriving here is held by nobody else
        self.head = head  # a source: makes each event from the index `i`
        self.passes_on = passes_on  # a step: as the last member, appends `_event` to `out`


class CodeWriter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0
        self.counters: list[str] = []  # returned, in this order
        # Fields whose current value a local holds (set earlier in this loop), with the
        # value's certain type: later members read the local instead of the event.
        self.known: dict[str, tuple[str, str]] = {}

    def locals_of(self) -> dict[str, str]:
        return {field: local for field, (local, _) in self.known.items()}

    def types(self) -> dict[str, str]:
        return {field: kind for field, (_, kind) in self.known.items()}

    def expr(self, source: str, label: str, member: "Member") -> str:
        numbers = frozenset(field for field, (_, kind) in self.known.items() if kind in NUMBERS)
        return inline_python(source, label, prefix(member.index), fields=self.locals_of(), numbers=numbers)

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def fail_and_next(self, member: int, event: str = "_event") -> None:
        self.line("except _Exception as _x:")
        self.depth += 1
        self.line(f"_fail({member}, {event}, _x)")
        self.line("continue")
        self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@mypyc_attr(allow_interpreted_subclasses=True)
class MemberState:
    """What one member keeps in one segment besides its node, for its part of the loop (an
    aggregate's plain-key index). This base keeps nothing."""

    def scope(self) -> dict[str, object]:
        """Names its lines use that belong to this segment (not shared between chains)."""
        return {}

    def begin(self) -> None:
        """Before each batch."""

    def account(self, arrived: int) -> None:
        """After each batch: `arrived` events reached this member."""


@mypyc_attr(allow_interpreted_subclasses=True)
class MemberCode:
    """How one fusable node type writes its part of the fused loop. This base writes
    nothing, which is all a sink that discards (`null`) needs."""

    def counts_passes(self) -> bool:
        """True for a type that may drop events: `before` adds a counter of the events it
        passes on, returned by the loop (the segment counts the next link from it)."""
        return False

    def before(self, w: CodeWriter, member: Member) -> None:
        """Lines before the loop (counters, lookups)."""

    def body(self, w: CodeWriter, member: Member) -> None:
        """Lines inside the loop: `_event` is the event arriving here (a head makes it from
        `i`); `continue` drops it; a failure goes to `w.fail_and_next`. Lines that change
        fields drop them from `w.known` (later members would read stale locals)."""

    def scope(self, member: Member, node: object) -> dict[str, object]:
        """Names its lines use (besides the expressions' functions), taken from the member's
        runtime object `node`; each name should end with the member's index."""
        return {}

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        """The message for `event` failing with `exc` in this member's lines (or its state's):
        exactly what the node `node` says when it runs on its own."""
        return describe_error(exc)

    def state(self, member: Member, node: object, failed: Failed) -> MemberState:
        """What this member keeps in one segment (`failed` reports an event its state's
        code could not handle)."""
        return MemberState()


class GenerateCode(MemberCode):
    def body(self, w: CodeWriter, member: Member) -> None:
        _generate(w, member)

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        assert isinstance(node, Generate)
        index = event.get("i")  # the loop fails `{'i': i}`, as the node does
        return node.failure(index if isinstance(index, int) else 0, exc)


class MapCode(MemberCode):
    def body(self, w: CodeWriter, member: Member) -> None:
        _map(w, member)

    def scope(self, member: Member, node: object) -> dict[str, object]:
        # Renaming and keeping run the node's own method (see `_map`).
        return {f"_reshape{member.index}": node.reshape} if isinstance(node, Map) else {}

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        assert isinstance(node, Map)
        return node.failure(event, exc)


class FilterCode(MemberCode):
    def counts_passes(self) -> bool:
        return True

    def before(self, w: CodeWriter, member: Member) -> None:
        w.line(f"_p{member.index} = 0")
        w.counters.append(f"_p{member.index}")

    def body(self, w: CodeWriter, member: Member) -> None:
        _filter(w, member)

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        assert isinstance(node, Filter)
        return node.failure(event, exc)


class RouteCode(MemberCode):
    def body(self, w: CodeWriter, member: Member) -> None:
        _route(w, member)

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        assert isinstance(node, Route)
        return node.failure(event, exc)


GENERATE_CODE: Final = GenerateCode()
MAP_CODE: Final = MapCode()
FILTER_CODE: Final = FilterCode()
ROUTE_CODE: Final = RouteCode()
DISCARD_CODE: Final = MemberCode()


def generate_source(members: list[Member], tapped: frozenset[int] = frozenset()) -> str:
    """The function `_run`, for the given chain (the first member is its head). Each link
    in `tapped` (link j joins members j and j+1) shows its events to `_tap{j}`."""
    w = CodeWriter()
    head = members[0]
    if head.head:
        w.line("def _run(_i0, _i1, _outs):")
    else:
        w.line("def _run(_batch, _outs):")
    w.depth = 1
    for member in members:
        for port, index in member.ports.items():
            w.line(f"_o{index} = _outs[{index}].append  # {member.index}.{port}")
        member.code.before(w, member)
    for link in sorted(tapped):
        w.line(f"_want{link} = _tapbegin{link}()  # until its taps have seen enough of this batch")
    if head.head:
        w.line("for i in _range(_i0, _i1):")
        w.depth += 1
        head.code.body(w, head)
        rest = members[1:]
    else:
        w.line("for _event in _batch:")
        w.depth += 1
        rest = members
    for number, member in enumerate(rest):
        if member.index - 1 in tapped:
            w.line(f"if _want{member.index - 1}:")
            w.line(f"    _want{member.index - 1} = _tap{member.index - 1}(_event)")
        member.code.body(w, member)
        if number == len(rest) - 1 and member.passes_on:
            w.line(f"_o{member.ports['out']}(_event)")
    if w.lines[-1].endswith(":"):
        w.line("pass")
    w.depth = 1
    w.line("return (" + "".join(c + ", " for c in w.counters) + ")")
    return w.text()


def _generate(w: CodeWriter, head: Member) -> None:
    fields = dict(expect(head.params, GenerateParams).fields)
    w.line("try:")
    for k, (name, source) in enumerate(fields.items()):
        local = f"_v{head.index}_{k}"
        w.line(f"    {local} = {inline_python(source, f'fields.{name}', prefix(head.index), index=True)}")
        w.known[name] = (local, type_of(source, {}, index=True))
    items = ", ".join(f"{name!r}: {w.known[name][0]}" for name in fields)
    w.line("    _event = {" + items + "}")
    w.fail_and_next(head.index, "{'i': i}")


def _map(w: CodeWriter, member: Member) -> None:
    params = expect(member.params, MapParams)
    fields = dict(params.set_fields)
    if params.rename or params.keep is not None:
        # Renaming and keeping build a new event: the member's own code does it.
        w.line("try:")
        w.line(f"    _event = _reshape{member.index}(_event)")
        w.fail_and_next(member.index)
        w.known.clear()  # fields may be renamed or gone
        return
    owned = member.owned
    if fields:
        # Every value first, then the event changes: a failure leaves it as it arrived.
        w.line("try:")
        computed: dict[str, tuple[str, str]] = {}
        types = w.types()
        for k, (name, source) in enumerate(fields.items()):
            local = f"_v{member.index}_{k}"
            w.line(f"    {local} = {w.expr(source, f'set.{name}', member)}")
            computed[name] = (local, type_of(source, types))
        w.fail_and_next(member.index)
        if owned:
            for name, (local, _) in computed.items():
                w.line(f"_event[{name!r}] = {local}")
        else:
            items = ", ".join(f"{name!r}: {local}" for name, (local, _) in computed.items())
            w.line("_event = {**_event, " + items + "}")
            owned = True
        w.known.update(computed)
    if params.remove:
        # `remove` comes after `set`, as in Map.reshape: a field both set and removed is gone.
        if not owned:
            w.line("_event = {**_event}")
        for name in params.remove:
            w.line(f"_event.pop({name!r}, None)")
            w.known.pop(name, None)


def _filter(w: CodeWriter, member: Member) -> None:
    where = w.expr(expect(member.params, FilterParams).where, "where", member)
    w.line("try:")
    w.line(f"    if not ({where}):")
    w.line("        continue")
    w.fail_and_next(member.index)
    w.line(f"_p{member.index} += 1")


def _route(w: CodeWriter, member: Member) -> None:
    params = expect(member.params, RouteParams)
    unmatched = member.ports[UNMATCHED]
    conditions = [(member.ports[port], w.expr(source, f"routes.{port}", member))
                  for port, source in params.routes]
    w.line("try:")
    w.depth += 1
    if params.mode == FIRST:
        keyword = "if"
        for port, condition in conditions:
            w.line(f"{keyword} {condition}:")
            w.line(f"    _o{port}(_event)")
            keyword = "elif"
        w.line("else:" if conditions else "if True:")
        w.line(f"    _o{unmatched}(_event)")
        w.depth -= 1
        w.fail_and_next(member.index)
        return
    # Every condition is decided before any port gets the event: a failing one sends it nowhere.
    for k, (_, condition) in enumerate(conditions):
        w.line(f"_r{k} = {condition}")
    w.depth -= 1
    w.fail_and_next(member.index)
    w.line("_matched = False")
    for k, (port, _) in enumerate(conditions):
        w.line(f"if _r{k}:")
        w.line(f"    _o{port}(_event)")
        w.line("    _matched = True")
    w.line("if not _matched:")
    w.line(f"    _o{unmatched}(_event)")
