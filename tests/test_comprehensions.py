"""List comprehensions `[expr for x in items if cond]`: checked at load, the loop name is the
item (not a field), fused and unfused runs agree, and the result is guarded."""

import copy
import random

import pytest

from adapters.cli.registry import default_registry
from engine.compile_expr import ExprCompiler, inline_python
from engine.expr import check
from engine.functions import describe_error
from engine.node import ManualClock
from loader import load_text
from tests.runtime_support import RECORDED, run_graph
from tests.runtime_support import test_registry as registry_with_test_nodes


def run(source: str, event: dict[str, object]) -> object:
    assert check(source) == [], source
    return ExprCompiler(random.Random(0), ManualClock()).value(source, "t").fn(event)


def failure(source: str, event: dict[str, object]) -> str:
    compiled = ExprCompiler(random.Random(0), ManualClock()).value(source, "t")
    with pytest.raises(Exception) as caught:
        compiled.fn(event)
    return describe_error(caught.value)


ORDER = {"lines": [{"sku": "a", "qty": 2, "price": 5.0}, {"sku": "b", "qty": 1, "price": 200.0},
                   {"sku": "c", "price": 1.0}],
         "x": 100, "rate": 2, "tags": "Red, green,BLUE"}


@pytest.mark.parametrize(("source", "expected"), [
    ("[line.sku for line in lines]", ["a", "b", "c"]),
    ("[l.sku for l in lines if exists(l.qty) and l.qty * l.price > 100]", ["b"]),
    ("sum_of([coalesce(l.qty, 0) * l.price for l in lines])", 210.0),
    ("[lower(strip(t)) for t in split(tags, ',')]", ["red", "green", "blue"]),
    ("[x * rate for x in [1, 2, 3]]", [2, 4, 6]),  # `x` is the item, `rate` the field
    ("x + len([x for x in [1, 2]])", 102),  # outside the brackets `x` is the field again
    ("[x for x in [y * 2 for y in [1, 2, 3]] if x > 2]", [4, 6]),
    ("[k for k in keys(lines[0]) if k != 'sku']", ["qty", "price"]),
    ("[x for x in []]", []),
    ("[get(l, 'qty', 0) for l in lines]", [2, 1, 0]),
])
def test_values(source, expected):
    assert run(source, copy.deepcopy(ORDER)) == expected


@pytest.mark.parametrize(("source", "kind", "message", "column"), [
    ("[[y for y in x] for x in l]", "forbidden", "a comprehension inside another comprehension is not allowed", 1),
    ("[x for x in l if x in [y for y in m]]", "forbidden",
     "a comprehension inside another comprehension is not allowed", 22),
    ("[y for x in l for y in x]", "forbidden", "a comprehension takes exactly one 'for'", 18),
    ("[a for a, b in l]", "forbidden", "a comprehension loops with one name", 7),
    ("[_x for _x in l]", "private_name", "name '_x' starts with an underscore, which is not allowed", 8),
    ("{x for x in l}", "forbidden", "a comprehension is not allowed in expressions", 0),
    ("[x for x in l if lowr(x)]", "unknown_function", "unknown function 'lowr'", 17),
])
def test_refused_shapes(source, kind, message, column):
    [error] = check(source)
    assert (error.kind, error.message, error.column) == (kind, message, column)


def test_generate_scope_accepts_the_loop_name_and_still_refuses_fields():
    assert check("[x * i for x in [1, 2]]", ("i",)) == []
    [error] = check("[x * n for x in [1, 2]]", ("i",))
    assert error.message == "unknown name 'n'"


def test_a_nested_comprehension_is_a_load_problem_at_its_place():
    text = """version: 1
nodes:
  gen: {type: generate, with: {count: 1, fields: {l: "[1, 2]"}}}
  m: {type: map, from: gen, with: {set: {a: "[[y for y in l] for x in l]"}}}
  out: {type: "null", from: m}
"""
    [problem] = load_text("g.yaml", text, registry_with_test_nodes()).problems
    assert (problem.code, problem.line, problem.column) == ("HR041", 4, 47)
    assert problem.hint == "compute the inner list in an earlier map field, or use an explode node"


def test_a_gpu_segment_refuses_a_comprehension_by_name():
    text = """version: 2
name: gpu
nodes:
  src: {type: generate, with: {count: 3, fields: {t: "i * 1.0"}}}
  conv:
    type: opencl.map
    from: src
    with: {columns: {t: float64}, set: {f: "[t for x in [1, 2]]"}}
  out: {type: "null", from: conv}
"""
    problems = [p for p in load_text("g.yaml", text, default_registry()).problems if p.severity == "error"]
    assert [(p.code, p.line, p.column, p.message) for p in problems] == [
        ("HR048", 8, 45, "a list comprehension is not available in a GPU segment")]


# --- guards -----------------------------------------------------------------------------------


def test_a_comprehension_past_the_limit_fails_the_event_with_a_clear_error():
    names = ["ab"] * 20_000
    assert failure("[s * 1000 for s in names]", {"names": names}) == (
        "a comprehension would give more than 10,000,000 items")
    assert len(run("[s * 100 for s in names]", {"names": names})) == 20_000  # 4,020,000: within the limit


def test_a_comprehension_needs_a_list():
    assert failure("[c for c in s]", {"s": "abc"}) == "a comprehension needs a list to loop over, not text"
    assert failure("[c for c in m]", {"m": {"a": 1}}) == (
        "a comprehension needs a list to loop over, not mapping (use keys(m) or values(m))")


def test_a_loop_name_that_shadows_a_number_field_is_still_guarded():
    # Fused code skips the `%` guard for fields it knows hold numbers; `x` here is an item.
    code = inline_python("[x % 2 for x in texts]", "t", "_f0_", numbers=frozenset({"x"}))
    assert "_g_modulo(x, 2)" in code
    assert "_g_modulo(i, 2)" in inline_python("[i % 2 for i in [1]]", "t", "_f0_", index=True)


# --- in graphs, fused and not -----------------------------------------------------------------

GRAPH = """
version: 1
nodes:
  gen:
    type: generate
    with:
      count: 40
      seed: 3
      fields:
        n: i
        items: "[{'v': i * 10 + k, 'tag': 'ab'[k % 2]} for k in [0, 1, 2, 3] if k <= i % 5]"
  numbered: {type: map, from: gen, with: {set: {x: int(n)}}}
  shaped:
    type: map
    from: numbered
    on_error: dead_letter
    with:
      set:
        vs: "[x.v * 2 for x in items if x.tag == 'a']"
        x_again: x
        tags: "unique([x.tag for x in items])"
        bad: "[x % 2 for x in ['%d'] if n == 7] if n == 7 else []"
  kept: {type: filter, from: shaped, with: {where: "len([v for v in vs if v > 100]) > 0"}}
  split:
    type: route
    from: kept
    with: {routes: {many: "sum_of([1 for t in tags]) > 1"}}
  many: {type: test.record, from: split.many}
  rest: {type: test.record, from: split.unmatched}
  rejects: {type: test.record, from: shaped.errors}
"""


def _run(fuse: bool) -> dict[str, list[dict[str, object]]]:
    RECORDED.clear()
    _, ok = run_graph(GRAPH, fuse=fuse)
    assert ok
    return copy.deepcopy(RECORDED)


def test_fused_and_unfused_runs_agree():
    fused, alone = _run(True), _run(False)
    assert fused == alone
    assert fused["many"] and fused["rest"]
    first = fused["many"][0]
    assert first["x_again"] == first["x"] == first["n"]  # the loop name `x` did not touch the field
    assert all(v > 100 for e in fused["many"] + fused["rest"] for v in e["vs"][-1:])
    [reject] = fused["rejects"]
    assert reject["event"]["n"] == 7 and "% needs numbers, not text" in str(reject["error"])


def test_events_in_graphs_are_what_plain_python_gives():
    events = _run(True)
    for event in events["many"] + events["rest"]:
        n = event["n"]
        items = [{"v": n * 10 + k, "tag": "ab"[k % 2]} for k in [0, 1, 2, 3] if k <= n % 5]
        assert event["items"] == items
        assert event["vs"] == [x["v"] * 2 for x in items if x["tag"] == "a"]
