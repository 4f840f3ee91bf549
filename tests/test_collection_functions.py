"""keys, values, merge, get, sorted, unique, flatten, sum_of, min_of, max_of and the type
functions: properties against plain Python, and the errors a user sees."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import collection_functions as c
from engine import type_functions as k
from engine.compile_expr import ExprCompiler
from engine.expr import check
from engine.field_paths import PathError, parse_path
from engine.functions import MAX_SEQUENCE_LENGTH, ExprLimitError, describe_error
from engine.node import ManualClock

SETTINGS = settings(max_examples=200, deadline=None)
scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12)
numbers = st.lists(st.integers(-10**9, 10**9) | st.floats(-1e9, 1e9, allow_nan=False), max_size=30)
mappings = st.dictionaries(st.text(max_size=6), json_values, max_size=6)


def run(source: str, event: dict[str, object] | None = None) -> object:
    assert check(source) == [], source
    return ExprCompiler(random.Random(0), ManualClock()).value(source, "t").fn(event or {})


def failure(source: str, event: dict[str, object]) -> str:
    compiled = ExprCompiler(random.Random(0), ManualClock()).value(source, "t")
    with pytest.raises(Exception) as caught:
        compiled.fn(event)
    return describe_error(caught.value)


@SETTINGS
@given(st.lists(st.integers() | st.floats(allow_nan=False), max_size=30) | st.lists(st.text(max_size=5), max_size=30))
def test_sorted_is_pythons_sorted(items):
    assert run("sorted(l)", {"l": items}) == sorted(items)
    assert items == list(items)  # the input is not changed


@SETTINGS
@given(st.lists(json_values, max_size=20))
def test_unique_keeps_the_first_of_each_json_value(items):
    out = run("unique(l)", {"l": items})
    # Plain Python: first occurrences by canonical JSON (1 and 1.0 are one value).
    expected, seen = [], set()
    for item in items:
        key = json.dumps(_ints(item), sort_keys=True)
        if key not in seen:
            seen.add(key)
            expected.append(item)
    assert out == expected and all(a is b for a, b in zip(out, expected, strict=True))


def _ints(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_ints(v) for v in value]
    if isinstance(value, dict):
        return {key: _ints(v) for key, v in value.items()}
    return value


def test_unique_tells_true_from_one_and_text_from_numbers():
    assert run("unique([1, True, 1.0, '1', [1], [1.0], {'a': 1}, {'a': 1}])") == [1, True, "1", [1], {"a": 1}]


@SETTINGS
@given(st.lists(json_values, max_size=20))
def test_flatten_is_one_level(items):
    expected = [part for item in items for part in (item if isinstance(item, list) else [item])]
    assert run("flatten(l)", {"l": items}) == expected


@SETTINGS
@given(numbers)
def test_sum_min_max_of_are_pythons(items):
    assert run("sum_of(l)", {"l": items}) == sum(items)
    assert run("min_of(l)", {"l": items}) == (min(items) if items else None)
    assert run("max_of(l)", {"l": items}) == (max(items) if items else None)


@SETTINGS
@given(mappings, mappings)
def test_keys_values_merge_are_pythons(a, b):
    assert run("keys(a)", {"a": a}) == list(a)
    assert run("values(a)", {"a": a}) == list(a.values())
    merged = run("merge(a, b)", {"a": a, "b": b})
    assert merged == {**a, **b} and list(merged) == list({**a, **b})
    assert run("merge(a, b, a)", {"a": a, "b": b}) == {**a, **b, **a}


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _text(path):
    return "".join(f"[{step}]" if isinstance(step, int) else f"['{step}']" for step in path)


def _writable(path):
    return all(isinstance(step, int) or not set(str(step)) & set("'\"]") for step in path)


@SETTINGS
@given(json_values.filter(lambda v: isinstance(v, (dict, list))), st.data())
def test_get_finds_every_path_and_defaults_when_missing(root, data):
    paths = [p for p in _paths(root) if p and _writable(p)]
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    expected = root
    for step in path:
        expected = expected[step]
    assert run("get(o, p, 'MISSING')", {"o": root, "p": _text(path)}) == expected
    assert run("get(o, p, 'MISSING')", {"o": root, "p": list(path)}) == expected
    beyond = path + (10**6,) if isinstance(expected, list) else path + ("missing",)
    if not isinstance(expected, dict) or "missing" not in expected:
        assert run("get(o, p, 'MISSING')", {"o": root, "p": list(beyond)}) == "MISSING"


def test_get_paths():
    event = {"o": {"a": {"b": [5, {"c d": 7}], "x.y": 1}, "n": None}}
    assert run("get(o, 'a.b[0]')", event) == 5
    assert run("get(o, 'a.b[-1][\"c d\"]')", event) == 7
    assert run("get(o, \"a['x.y']\")", event) == 1
    assert run("get(o, 'a.b[2]', 0)", event) == 0
    assert run("get(o, 'a.b.c', 0)", event) == 0  # a name step into a list is missing
    assert run("get(o, 'n', 0)", event) is None  # present and null: null
    assert run("get(o, 'n.x', 0)", event) == 0
    assert run("get(o, 'zz')", event) is None


@pytest.mark.parametrize("text", ["", "a..b", ".a", "a.", "a[", "a[x]", "a]b", "a[1.5]", "a b[0]x"])
def test_parse_path_refuses_malformed_paths(text):
    with pytest.raises(PathError):
        parse_path(text)


def test_a_malformed_path_from_an_event_fails_the_event_without_echoing_it():
    message = failure("get(o, p)", {"o": {}, "p": "secret..value"})
    assert message == "get() path is invalid: expected a field name at character 8"
    assert "secret" not in message


@SETTINGS
@given(json_values)
def test_type_of_names_json_types(value):
    expected = {type(None): "null", bool: "bool", int: "int", float: "float", str: "string",
                list: "list", dict: "object"}[type(value)]
    assert run("type_of(x)", {"x": value}) == expected
    assert run("is_number(x)", {"x": value}) == (expected in ("int", "float"))
    assert run("is_string(x)", {"x": value}) == (expected == "string")


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), (None, False), (0, False), (0.0, False), (2, True), (-0.5, True),
    ("true", True), (" YES ", True), ("on", True), ("1", True), ("t", True), ("y", True),
    ("False", False), ("no", False), ("off", False), ("0", False), ("f", False), ("N", False),
])
def test_to_bool(value, expected):
    assert k.to_bool(value) is expected


@pytest.mark.parametrize(("source", "event", "message"), [
    ("to_bool(x)", {"x": "maybe"}, "to_bool() needs text such as 'true', 'false', 'yes', 'no', '1' or '0'"),
    ("to_bool(x)", {"x": [1]}, "to_bool() needs a bool, number or text, not list"),
    ("sum_of(x)", {"x": [1, "2"]}, "sum_of() needs a list of numbers, found text"),
    ("sum_of(x)", {"x": [1, True]}, "sum_of() needs a list of numbers, found bool"),
    ("sum_of(x)", {"x": "12"}, "sum_of() needs a list, not text"),
    ("min_of(x)", {"x": [1, "a"]}, "min_of() needs values that compare: all numbers, or all text"),
    ("sorted(x)", {"x": [1, None]}, "sorted() needs values that compare: all numbers, or all text"),
    ("keys(x)", {"x": [1]}, "keys() needs a mapping, not list"),
    ("merge(x, y)", {"x": {}, "y": 3}, "merge() needs a mapping, not number"),
    ("get(x, 5)", {"x": {}}, "get() path must be text such as 'a.b[0]' or a list of keys, not number"),
])
def test_errors_name_the_function_and_types_only(source, event, message):
    assert failure(source, event) == message


def test_flatten_refuses_more_than_the_limit_before_building_it():
    big = [0] * (MAX_SEQUENCE_LENGTH // 2 + 1)
    with pytest.raises(ExprLimitError, match="flatten"):
        c.flatten([big, big])
