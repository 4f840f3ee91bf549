"""The `join` node: which merged events come out, in which order, and what a wrong graph is told."""

import textwrap

import pytest

from engine.join import Join
from engine.join_spec import JOIN
from engine.node import Failures, ManualClock, NodeContext
from engine.plan import ErrorPolicy
from loader.api import load_text
from tests.runtime_support import RECORDED, run_graph
from tests.runtime_support import test_registry as registry_with_test_nodes

ORDERS, PAYMENTS = 0, 1  # input indexes, as the runner numbers `from: [orders, payments]`


class Recorder(Failures):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def event_failed(self, event, message, outs):
        self.messages.append(message)
        return True


def join(**params: object) -> tuple[Join, Recorder]:
    raw = {"left": "orders", "right": "payments", "on": {"order_id": "order"}, "within": "10s",
           "time_field": "ts", **params}
    ctx = NodeContext("j", "join", JOIN.parse(raw), ("out",), ErrorPolicy(), ManualClock())
    ctx.inputs = ("orders", "payments")
    return Join(ctx), Recorder()


def feed(node: Join, failures: Recorder, *batches: tuple[int, list[dict]], end: bool = False) -> list[dict]:
    outs: list[list[dict]] = [[]]
    for side, batch in batches:
        assert node.process_from(side, batch, outs, failures) == len(batch)
    if end:
        node.flush(outs)
    return outs[0]


def test_equal_keys_within_the_interval_are_merged_either_way_round():
    node, failures = join()
    out = feed(node, failures,
               (ORDERS, [{"order_id": 1, "ts": 100}, {"order_id": 2, "ts": 100}]),
               (PAYMENTS, [{"order": 1, "ts": 110}, {"order": 2, "ts": 111}, {"order": 3, "ts": 100}]),
               (ORDERS, [{"order_id": 3, "ts": 95}]))
    assert out == [
        {"order_id": 1, "ts": 100, "order": 1, "r_ts": 110},  # 10s apart: within, bounds included
        {"order_id": 3, "ts": 95, "order": 3, "r_ts": 100},  # the right side came first
    ]
    assert failures.messages == []


def test_every_pair_is_emitted_once_in_the_order_the_held_side_arrived():
    node, failures = join(on="id")
    out = feed(node, failures,
               (PAYMENTS, [{"id": 7, "ts": 1, "n": "p1"}, {"id": 7, "ts": 2, "n": "p2"}]),
               (ORDERS, [{"id": 7, "ts": 3, "n": "o1"}]),
               (PAYMENTS, [{"id": 7, "ts": 4, "n": "p3"}]))
    # A right key named as its left one is not repeated; other clashes get the prefix.
    assert out == [
        {"id": 7, "ts": 3, "n": "o1", "r_ts": 1, "r_n": "p1"},
        {"id": 7, "ts": 3, "n": "o1", "r_ts": 2, "r_n": "p2"},
        {"id": 7, "ts": 3, "n": "o1", "r_ts": 4, "r_n": "p3"},
    ]


def test_right_prefix_and_multi_field_keys():
    node, failures = join(on={"a": "a", "b": "bb"}, right_prefix="pay_")
    out = feed(node, failures,
               (ORDERS, [{"a": 1, "b": "x", "ts": 0, "v": 1}, {"a": 1, "b": "y", "ts": 0, "v": 2}]),
               (PAYMENTS, [{"a": 1, "bb": "y", "ts": 0, "v": 3}]))
    assert out == [{"a": 1, "b": "y", "ts": 0, "v": 2, "bb": "y", "pay_ts": 0, "pay_v": 3}]


def test_a_left_join_emits_unmatched_orders_once_their_window_closed_then_the_rest_at_the_end():
    node, failures = join(type="left", allowed_lateness="5s")
    out = feed(node, failures,
               (ORDERS, [{"order_id": 1, "ts": 100}, {"order_id": 2, "ts": 101}, {"order_id": 3, "ts": 102}]),
               (PAYMENTS, [{"order": 2, "ts": 105}]))
    assert out == [{"order_id": 2, "ts": 101, "order": 2, "r_ts": 105}]  # 1 and 3 could still be paid
    # Watermark 116 - 5 = 111 passes 100 + 10: order 1 can no longer match; 3 (102 + 10 = 112) can.
    out = feed(node, failures, (PAYMENTS, [{"order": 9, "ts": 116}]))
    assert out == [{"order_id": 1, "ts": 100}]
    assert node.counters() == {"held": 4, "unmatched": 1}  # orders 2 and 3, payments 2 and 9
    # At the end of input the unmatched orders still held come out, by event time.
    assert feed(node, failures, end=True) == [{"order_id": 3, "ts": 102}]
    assert node.counters() == {"held": 0, "unmatched": 2}


def test_an_inner_join_lets_unmatched_events_go_silently():
    node, failures = join(allowed_lateness="0s")
    out = feed(node, failures,
               (ORDERS, [{"order_id": 1, "ts": 0}]),
               (PAYMENTS, [{"order": 2, "ts": 100}]), end=True)
    assert out == []
    assert node.counters()["held"] == 0


def test_late_events_are_errors_and_state_stays_bounded():
    node, failures = join(allowed_lateness="30s")
    feed(node, failures, (ORDERS, [{"order_id": i, "ts": i * 10} for i in range(100)]))
    # Held: what is not yet 10s + 30s behind the newest time (990).
    assert node.counters()["held"] == 5
    out = feed(node, failures, (PAYMENTS, [{"order": 1, "ts": 10}, {"order": 98, "ts": "1970-01-01T00:16:25Z"}]))
    assert out == [{"order_id": 98, "ts": 980, "order": 98, "r_ts": "1970-01-01T00:16:25Z"}]
    assert failures.messages == [
        "late event: event time 1970-01-01T00:00:10Z is 950s behind the watermark (allowed_lateness 30s)"]


@pytest.mark.parametrize(("event", "message"), [
    ({"order_id": 1}, "missing field 'ts' in time_field"),
    ({"order_id": 1, "ts": True}, "event time must be epoch seconds or an ISO 8601 string, not bool, "
                                  "in time_field 'ts'"),
])
def test_an_event_without_a_usable_time_is_an_error_naming_the_field(event, message):
    node, failures = join()
    assert feed(node, failures, (ORDERS, [event])) == []
    assert failures.messages == [message]


def test_a_missing_or_null_key_never_matches_but_a_left_join_still_passes_it_on():
    node, failures = join(type="left")
    out = feed(node, failures,
               (ORDERS, [{"ts": 1}, {"order_id": None, "ts": 1}]),
               (PAYMENTS, [{"ts": 1}, {"order": None, "ts": 1}]), end=True)
    assert out == [{"ts": 1}, {"order_id": None, "ts": 1}]


GRAPH = """
version: 2
nodes:
  orders:
    type: generate
    with: {count: 50, fields: {order_id: i, ts: i * 10}}
  payments:
    type: generate
    with: {count: 50, fields: {order: "i if i % 3 else -1", ts: "i * 10 + 4", paid: "1"}}
  j:
    type: join
    from: [orders, payments]
    with: {left: orders, right: payments, on: {order_id: order}, within: 5s, time_field: ts, type: left,
           allowed_lateness: 1h}
  out:
    type: test.record
    from: j
"""


def test_a_graph_joins_its_two_inputs_whichever_order_from_lists_them():
    outputs = []
    for text in (GRAPH, GRAPH.replace("[orders, payments]", "[payments, orders]")):
        runtime, ok = run_graph(text)
        assert ok, runtime.failure
        outputs.append(RECORDED["out"])
    assert outputs[0] == outputs[1]
    matched = [e for e in outputs[0] if "paid" in e]
    assert len(matched) == 33 and all(e["order"] == e["order_id"] and e["r_ts"] == e["ts"] + 4 for e in matched)
    assert sorted(e["order_id"] for e in outputs[0] if "paid" not in e) == list(range(0, 50, 3))
    assert runtime.stats()["nodes"]["j"]["unmatched"] == 17  # type: ignore[index]


def problems(text: str) -> list[tuple[str, int, str, str]]:
    result = load_text("g.yaml", textwrap.dedent(text), registry_with_test_nodes())
    return [(p.code, p.line, p.message, p.hint) for p in result.problems]


def test_left_or_right_not_among_the_inputs_is_a_load_problem_at_its_place():
    text = GRAPH.replace("left: orders,", "left: order,")
    assert problems(text) == [("HR066", 13, "left 'order' is not one of the inputs in `from` ('orders', 'payments')",
                               "did you mean 'orders'?")]
    text = GRAPH.replace("right: payments,", "right: refunds,")
    assert problems(text) == [("HR066", 13, "right 'refunds' is not one of the inputs in `from` "
                               "('orders', 'payments')", "name one of 'orders', 'payments'")]


def test_a_join_needs_exactly_two_inputs_and_two_different_sides():
    text = GRAPH.replace("from: [orders, payments]", "from: orders")
    assert problems(text) == [("HR066", 12, "a join reads exactly two inputs, its left and right; `from` lists 1",
                               "list the two nodes to join in `from`, e.g. from: [orders, payments]")]
    text = GRAPH.replace("right: payments,", "right: orders,")
    assert problems(text) == [("HR066", 13, "left and right both name 'orders'",
                               "name the other input of `from` as right")]


def test_ports_of_one_node_are_told_apart_as_node_port():
    text = """
    version: 2
    nodes:
      events:
        type: generate
        with: {count: 10, fields: {id: "i // 2", ts: i, kind: "'a' if i % 2 else 'b'"}}
      split:
        type: route
        with: {routes: {a: "kind == 'a'", b: "kind == 'b'"}}
        from: events
      j:
        type: join
        from: [split.a, split.b]
        with: {left: split, right: split.b, on: id, within: 1s, time_field: ts}
      out:
        type: test.record
        from: j
      rest:
        type: "null"
        from: split.unmatched
    """
    assert problems(text) == [("HR066", 14, "left 'split' names both inputs ('split.a', 'split.b')",
                               "name one of them as `node.port`")]
    runtime, ok = run_graph(text.replace("left: split,", "left: split.a,"))
    assert ok, runtime.failure
    assert RECORDED["out"] == [{"id": i, "ts": 2 * i + 1, "kind": "a", "r_ts": 2 * i, "r_kind": "b"} for i in range(5)]


def test_state_key_names_both_sides_fields():
    assert JOIN.state_key is not None
    assert JOIN.state_key(JOIN.parse({"on": {"order_id": "order"}})) == ("order_id", "order")
    assert JOIN.state_key(JOIN.parse({"on": "id"})) == ("id",)
