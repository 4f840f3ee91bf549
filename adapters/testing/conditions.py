"""The conditions of a graph test, each checked against the events captured for its key.

Values compare as JSON values: `1` and `1.0` are the same number, `true` is never `1`, and
a mapping's key order does not matter. A failure says which event and which field differ.
"""

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from adapters.testing.test_file import Condition
from engine.compile_expr import ExprCompiler
from engine.node import Event, VirtualClock

SHOWN: Final = 5  # events listed in one failure before "... and N more"
Hashable = object


@dataclass
class Failure:
    line: int
    column: int
    message: str
    details: list[str] = field(default_factory=list)


def canon(value: object) -> Hashable:
    """A hashable form under which two JSON values are equal exactly when they are the same."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, (int, float)):
        return ("number", int(value) if isinstance(value, float) and value.is_integer() else value)
    if isinstance(value, dict):
        return ("object", frozenset((str(k), canon(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(canon(v) for v in value))
    return ("other", str(value))


def same(a: object, b: object) -> bool:
    return canon(a) == canon(b)


def show(value: object) -> str:
    text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return text if len(text) <= 300 else text[:297] + "..."


def field_diff(expected: object, actual: object, where: str = "") -> list[str]:
    """Each field that differs: `amount: expected 12.5, got 12.0`."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in expected:
            name = f"{where}.{key}" if where else str(key)
            if key not in actual:
                out.append(f"{name}: expected {show(expected[key])}, missing")
            else:
                out.extend(field_diff(expected[key], actual[key], name))
        for key in actual:
            if key not in expected:
                name = f"{where}.{key}" if where else str(key)
                out.append(f"{name}: not expected, got {show(actual[key])}")
        return out
    if same(expected, actual):
        return []
    return [f"{where or 'the event'}: expected {show(expected)}, got {show(actual)}"]


def _listed(label: str, events: Sequence[tuple[int, object]]) -> list[str]:
    lines = [f"{label} event {i + 1}: {show(e)}" for i, e in events[:SHOWN]]
    if len(events) > SHOWN:
        lines.append(f"... and {len(events) - SHOWN} more")
    return lines


def equals_diff(expected: Sequence[object], actual: list[Event]) -> tuple[str, list[str]]:
    details: list[str] = []
    for i, (want, got) in enumerate(zip(expected, actual)):
        if not same(want, got):
            details.append(f"event {i + 1} differs:")
            details.extend("  " + d for d in field_diff(want, got))
            if len(details) > 3 * SHOWN:
                break
    if len(actual) > len(expected):
        details.extend(_listed("unexpected", list(enumerate(actual))[len(expected):]))
    elif len(expected) > len(actual):
        details.extend(_listed("missing", list(enumerate(expected))[len(actual):]))
    if not details:
        return "", []
    if len(expected) == len(actual):
        return f"the {len(actual)} events emitted are not the ones expected", details
    return f"expected {len(expected)} events in this order, got {len(actual)}", details


def _unmatched(wanted: list[object], actual: list[Event]) -> tuple[list[tuple[int, object]], list[tuple[int, object]]]:
    """(expected events with no counterpart, emitted events with no counterpart)."""
    left = Counter(canon(e) for e in actual)
    missing: list[tuple[int, object]] = []
    for i, want in enumerate(wanted):
        key = canon(want)
        if left[key] > 0:
            left[key] -= 1
        else:
            missing.append((i, want))
    extra: list[tuple[int, object]] = []
    for i, got in enumerate(actual):
        key = canon(got)
        if left[key] > 0:
            left[key] -= 1
            extra.append((i, got))
    return missing, extra


def _closest(want: object, actual: list[Event]) -> list[str]:
    """The field differences from the emitted event most like `want`."""
    if not actual or not isinstance(want, dict):
        return []
    def score(got: Event) -> int:
        return sum(1 for k, v in want.items() if k in got and same(v, got[k]))
    best = max(range(len(actual)), key=lambda i: score(actual[i]))
    return [f"  closest is emitted event {best + 1}:"] + ["    " + d for d in field_diff(want, actual[best])]


_WORDS: Final[dict[str, object]] = {"true": True, "false": False}


class _Fields(dict[str, object]):
    """An event in a condition: a field it lacks reads as null, so `x == null` asks whether
    it is missing (`true` and `false` read as JSON's, unless the event has such fields)."""

    def __missing__(self, key: str) -> object:
        return _WORDS.get(key)


def _nullable(value: object) -> object:
    if isinstance(value, dict):
        return _Fields({str(k): _nullable(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_nullable(v) for v in value]
    return value


def _predicate(source: str) -> Callable[[Event], object]:
    compiled = ExprCompiler(random.Random(0), VirtualClock()).value(source, "condition")
    return compiled.fn


def _truth(source: str, actual: list[Event], every: bool) -> tuple[str, list[str]]:
    test = _predicate(source)
    failing: list[tuple[int, object]] = []
    for i, event in enumerate(actual):
        try:
            ok = bool(test(_nullable(event)))  # type: ignore[arg-type]
        except Exception as exc:
            return f"`{source}` could not be evaluated on event {i + 1}: {exc}", [f"event {i + 1}: {show(event)}"]
        if ok and not every:
            return "", []
        if not ok and every:
            failing.append((i, event))
    if every and failing:
        return f"`{source}` is false for {len(failing)} of {len(actual)} events", _listed("failing", failing)
    if not every:
        emitted = list(enumerate(actual))
        return f"`{source}` is false for every one of the {len(actual)} events", _listed("emitted", emitted)
    return "", []


def check(condition: Condition, actual: list[Event]) -> Failure | None:
    """None when the condition holds (`snapshot` is checked by adapters/testing/snapshots.py)."""
    kind, value = condition.kind, condition.value
    message, details = "", list[str]()
    if kind == "equals":
        message, details = equals_diff(list(value) if isinstance(value, list) else [], actual)
    elif kind in ("equals_unordered", "contains"):
        wanted = list(value) if isinstance(value, list) else []
        missing, extra = _unmatched(wanted, actual)
        if kind == "contains":
            extra = []
        if missing or extra:
            message = (f"expected these {len(wanted)} events in any order, got {len(actual)}"
                       if kind == "equals_unordered"
                       else f"{len(missing)} of the {len(wanted)} expected events were not emitted")
            for i, want in missing[:SHOWN]:
                details.append(f"missing event {i + 1}: {show(want)}")
                details.extend(_closest(want, actual))
            details.extend(_listed("unexpected", extra))
    elif kind == "count":
        if len(actual) != value:
            message = f"expected {value} events, got {len(actual)}"
            details = _listed("emitted", list(enumerate(actual)))
    elif kind in ("all", "any"):
        message, details = _truth(str(value), actual, kind == "all")
    if not message:
        return None
    return Failure(condition.line, condition.column, f"{kind}: {message}", details)
