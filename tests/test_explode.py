"""`explode`: one event per element of a list field, fused or not, with the same results."""


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.fusion import ChainFinder
from loader.api import load_text
from tests.runtime_support import fused_like_unfused, run_recorded
from tests.runtime_support import test_registry as registry

TEMPLATE = """
version: 1
nodes:
  src: {type: generate, with: {count: %(count)d, fields: {n: i, tags: "%(tags)s"}}}
  ex: {type: explode, from: src, with: %(params)s, on_error: dead_letter}
  after: {type: map, from: ex, with: {set: {seen: "1"}}}
  out: {type: test.record, from: after}
  bad: {type: test.record, from: ex.errors}
"""


def graph(params: str, tags: str, count: int = 3) -> str:
    return TEMPLATE % {"params": params, "tags": tags, "count": count}


def test_each_element_becomes_an_event_with_the_other_fields():
    got = fused_like_unfused(graph("{field: tags, as: tag}", "['a', 'b'] if i == 1 else ['c']"))
    assert got["out"] == [
        {"n": 0, "tag": "c", "seen": 1},
        {"n": 1, "tag": "a", "seen": 1},
        {"n": 1, "tag": "b", "seen": 1},
        {"n": 2, "tag": "c", "seen": 1},
    ]


def test_the_element_goes_into_the_list_field_itself_by_default():
    got = fused_like_unfused(graph("{field: tags}", "[i, i + 10]", count=2))
    assert got["out"] == [{"n": 0, "tags": 0, "seen": 1}, {"n": 0, "tags": 10, "seen": 1},
                          {"n": 1, "tags": 1, "seen": 1}, {"n": 1, "tags": 11, "seen": 1}]


def test_keep_fields_false_keeps_only_the_element():
    got = fused_like_unfused(graph("{field: tags, as: tag, keep_fields: false}", "['x']", count=2))
    assert got["out"] == [{"tag": "x", "seen": 1}, {"tag": "x", "seen": 1}]


def test_an_empty_or_missing_list_emits_nothing_unless_kept():
    tags = "[] if i == 0 else (None if i == 1 else ['z'])"
    got = fused_like_unfused(graph("{field: tags, as: tag}", tags))
    assert got["out"] == [{"n": 2, "tag": "z", "seen": 1}]
    kept = fused_like_unfused(graph("{field: tags, as: tag, keep_empty: true}", tags))
    assert kept["out"] == [{"n": 0, "tag": None, "seen": 1}, {"n": 1, "tag": None, "seen": 1},
                           {"n": 2, "tag": "z", "seen": 1}]


def test_a_value_that_is_not_a_list_is_a_failed_event_naming_the_field():
    got = fused_like_unfused(graph("{field: tags, as: tag}", "'a,b' if i == 1 else ['ok']"))
    assert [e["n"] for e in got["out"]] == [0, 2]
    assert got["bad"] == [{"node": "ex", "error": "field 'tags' holds text, not a list",
                           "event": {"n": 1, "tags": "a,b"}}]  # the dead letter has the event, the message not


def test_counters_count_the_events_out():
    _, stats = run_recorded(graph("{field: tags, as: tag}", "[1, 2, 3] if i else 'x'"), True)
    nodes = stats["nodes"]
    assert (nodes["ex"]["in"], nodes["ex"]["errors"], nodes["ex"]["ports"]) == (3, 1, {"out": 6, "errors": 1})
    assert nodes["after"]["in"] == 6
    assert stats["edges"]["ex->after"]["enqueued"] == 6


def test_explode_fuses_with_the_steps_around_it():
    text = graph("{field: tags, as: tag}", "[1]")
    plan = load_text("g.yaml", text, registry()).plan
    assert plan is not None
    assert ChainFinder(plan, registry()).chains() == [["src", "ex", "after"]]


def test_two_explodes_and_a_filter_in_one_chain():
    text = """
    version: 1
    nodes:
      src: {type: generate, with: {count: 4, fields: {n: i, a: "[i, i + 1]", b: "['x', 'y'] if i % 2 else []"}}}
      one: {type: explode, from: src, with: {field: a}}
      two: {type: explode, from: one, with: {field: b, keep_empty: true}}
      odd: {type: filter, from: two, with: {where: "a % 2 == 1"}}
      totals: {type: aggregate, from: odd, with: {by: b, fields: {n: count(), s: sum(a)}}}
      out: {type: test.record, from: totals}
    """
    got = fused_like_unfused(text)
    expected: dict[object, list[int]] = {}
    for i in range(4):
        for a in (i, i + 1):
            for b in (["x", "y"] if i % 2 else [None]):
                if a % 2 == 1:
                    expected.setdefault(b, []).append(a)
    assert {e["b"]: (e["n"], e["s"]) for e in got["out"]} == {b: (len(v), sum(v)) for b, v in expected.items()}


LISTS = st.one_of(st.none(), st.text("ab,", max_size=2), st.lists(st.integers(-5, 5), max_size=4))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(LISTS, min_size=1, max_size=6), keep_empty=st.booleans(), keep_fields=st.booleans())
def test_matches_plain_python(values, keep_empty, keep_fields):
    """Fused and unfused runs give what a plain Python loop gives, for any mix of lists,
    empty lists, nulls and text."""
    literal = repr(values).replace("None", "None")
    text = graph(f"{{field: tags, as: tag, keep_empty: {str(keep_empty).lower()}, "
                 f"keep_fields: {str(keep_fields).lower()}}}", f"{literal}[i]", count=len(values))
    got = fused_like_unfused(text)
    expected: list[dict[str, object]] = []
    failed: list[int] = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            failed.append(i)
            continue
        items = value or ([None] if keep_empty else [])
        for item in items:
            expected.append({**({"n": i} if keep_fields else {}), "tag": item, "seen": 1})
    assert got["out"] == expected
    assert [e["event"]["n"] for e in got["bad"]] == failed


@pytest.mark.parametrize("params, message", [
    ("{as: tag}", "'field'"),
    ("{field: tags, keep_empty: 1}", "expected true or false"),
])
def test_bad_parameters_are_load_problems(params, message):
    result = load_text("g.yaml", graph(params, "[1]"), registry())
    assert result.plan is None
    assert any(message in p.message for p in result.problems), [p.message for p in result.problems]
