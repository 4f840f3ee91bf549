"""The `aggregate` node's part of a fused loop (totals only: a windowed aggregate never
fuses). The usual event is added in place by the loop; any other goes to the node's own
code, through `AggregateTotals`, which the segment keeps for the aggregate member.
"""

from typing import Any, Final

from engine.aggregate import Aggregate, AggregateParams
from engine.compile_expr import aggregate_parts, calls_any
from engine.expr_types import FLOAT, INT, NUMBERS, STR, type_of
from engine.functions import describe_error
from engine.fused_code import CodeWriter, Failed, Member, MemberCode, MemberState
from engine.node import Event, EventError
from engine.params import expect

AGG_FAST_KINDS: Final = frozenset({"sum", "count", "min", "max"})
_IMPURE: Final = frozenset({"rand", "now", "uuid4"})
_PLAIN_KEY_TYPES: Final = frozenset({INT, FLOAT, STR})
_PLAIN_KEYS: Final = (int, str, float, type(None))
_NUMBERS: Final = (int, float)


class AggregateCode(MemberCode):
    """Totals (no window): the usual event is added in place by the loop when the fields
    allow it (`aggregate_is_fast`), any other by the node's own code."""

    def before(self, w: CodeWriter, member: Member) -> None:
        if aggregate_is_fast(member.params):
            w.line("_states_get = _states.get")

    def body(self, w: CodeWriter, member: Member) -> None:
        if aggregate_is_fast(member.params):
            _aggregate_fast(w, member)
        else:
            w.line("_agg_slow(_event)")

    def explain(self, member: Member, node: object, event: Event, exc: Exception) -> str:
        return exc.message if isinstance(exc, EventError) else describe_error(exc)

    def state(self, member: Member, node: object, failed: Failed) -> MemberState:
        assert isinstance(node, Aggregate)
        return AggregateTotals(member.index, node, failed)


class AggregateTotals(MemberState):
    """The loop's index into an aggregate's totals: `_states` maps each plain group key to
    that group's state list (the same list object), for `_aggregate_fast`; `_agg_slow`
    hands any other event to the node's own code, and indexes the group it touched."""

    def __init__(self, index: int, aggregate: Aggregate, failed: Failed) -> None:
        self.index = index
        self.aggregate = aggregate
        self.failed = failed
        self.by: str | None = aggregate.by[0] if len(aggregate.by) == 1 else None
        self.states: dict[object, list[Any]] = {}
        self.slow = 0  # events the node handled with its own code in this batch

    def scope(self) -> dict[str, object]:
        return {"_agg_slow": self.add_slow, "_states": self.states, "_PLAIN_KEYS": _PLAIN_KEYS,
                "_NUMBERS": _NUMBERS}

    def begin(self) -> None:
        self.slow = 0

    def account(self, arrived: int) -> None:
        # The node numbers the events it takes; the slow path numbered its own.
        self.aggregate.seq += arrived - self.slow

    def add_slow(self, event: Event) -> None:
        aggregate = self.aggregate
        self.slow += 1
        try:
            aggregate.add_total(event)
        except EventError as error:
            self.failed(self.index, event, error)
            return
        # A new group, or new state lists: the fused loop must update these from now on.
        key = event.get(self.by) if self.by is not None else None
        if key.__class__ in _PLAIN_KEYS:
            group = aggregate.groups.get(key)
            if group is not None:
                self.states[key] = group.states


AGGREGATE_CODE: Final = AggregateCode()


def aggregate_is_fast(params: object) -> bool:
    """Totals of `sum`/`count` by at most one field, with no `rand()`/`now()` in them:
    those are updated in place by the fused loop, everything else by the node itself."""
    aggregate = expect(params, AggregateParams)
    if len(aggregate.by) > 1:
        return False
    for name, source in aggregate.fields:
        function, _ = aggregate_parts(source, f"fields.{name}")
        if function not in AGG_FAST_KINDS or calls_any(source, _IMPURE):
            return False
    return True


def _aggregate_fast(w: CodeWriter, member: Member) -> None:
    """The usual event (a plain key already seen, numbers to add) is added in place; any
    other goes to the node's own code, which handles new groups and explains failures.
    `_states` maps each plain key to its group's state list (the same list object), kept
    by `AggregateTotals.add_slow`: a plain dict, because reading an attribute of the
    aggregate's compiled classes from this interpreted loop costs more than the addition."""
    params = expect(member.params, AggregateParams)
    field = params.by[0] if params.by else None
    fields = dict(params.fields)
    if isinstance(field, str) and field in w.known and w.known[field][1] in _PLAIN_KEY_TYPES:
        w.line(f"_s = _states_get({w.known[field][0]})")  # the field holds a plain key
    elif isinstance(field, str):
        w.line(f"_k = _event.get({field!r})")
        w.line("_s = _states_get(_k) if _k.__class__ in _PLAIN_KEYS else None")
    else:
        w.line("_s = _states_get(None)")
    checked: list[tuple[int, str]] = []  # arguments that may fail or not be numbers
    sums: list[tuple[int, str]] = []
    extremes: list[tuple[int, str, str]] = []  # (field, value, "<" for min or ">" for max)
    counts: list[int] = []
    types = w.types()
    for k, (name, source) in enumerate(fields.items()):
        function, argument = aggregate_parts(source, f"fields.{name}")
        if function == "count" or argument is None:
            counts.append(k)
            continue
        if argument in w.known and type_of(argument, types) in NUMBERS:
            value = w.known[argument][0]  # a number already at hand
        else:
            checked.append((k, w.expr(argument, f"fields.{name}", member)))
            value = f"_a{k}"
        if function == "sum":
            sums.append((k, value))
        else:
            extremes.append((k, value, "<" if function == "min" else ">"))
    # A min or max so far that is not a number (text, from events the node's own code took)
    # compares with a number only in the node's own code, which explains the failure.
    tests = [f"_a{k}.__class__ in _NUMBERS" for k, _ in checked]
    tests += [f"(_s[{k}] is None or _s[{k}].__class__ in _NUMBERS)" for k, _, _ in extremes]
    if checked:
        w.line("if _s is not None:")
        w.line("    try:")
        for k, argument in checked:
            w.line(f"        _a{k} = {argument}")
        w.line("    except _Exception:")
        w.line("        _s = None")
    w.line("if _s is not None" + "".join(f" and {test}" for test in tests) + ":")
    w.depth += 1
    for k, value in sums:
        w.line(f"_s[{k}] = _s[{k}] + {value}")
    for k, value, before in extremes:
        # As Accumulators.advance: the first value, then one that comes before (NaN never does).
        w.line(f"if _s[{k}] is None or {value} {before} _s[{k}]:")
        w.line(f"    _s[{k}] = {value}")
    for k in counts:
        w.line(f"_s[{k}] = _s[{k}] + 1")
    w.depth -= 1
    w.line("else:")
    w.line("    _agg_slow(_event)")
