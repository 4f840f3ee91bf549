"""The `aggregate` node at run time, driven directly with a manual clock.

Every expected output is computed by hand: the events, their windows and the totals are
small enough to check on paper.
"""

import copy

import pytest

from engine.aggregate import Aggregate, make_aggregate
from engine.builtin_specs import AGGREGATE
from engine.node import INFINITY, Failures, ManualClock, NodeContext, NodeFailure
from engine.plan import ErrorPolicy

T0 = 1767225600.0  # 2026-01-01T00:00:00Z


class Recorder(Failures):
    """Records failed events; asks for a retry (returns False) from `retry_after` failures on."""

    def __init__(self, retry_after: int = -1) -> None:
        self.failed: list[tuple[dict, str]] = []
        self.retry_after = retry_after

    def event_failed(self, event, message, outs):
        self.failed.append((event, message))
        return self.retry_after < 0 or len(self.failed) <= self.retry_after

    @property
    def messages(self) -> list[str]:
        return [m for _, m in self.failed]


def build(params: dict, clock: ManualClock | None = None) -> Aggregate:
    ctx = NodeContext("agg", "aggregate", AGGREGATE.parse(params), ("out",), ErrorPolicy(), clock or ManualClock())
    return make_aggregate(ctx)


def feed(node: Aggregate, events: list[dict], failures: Recorder | None = None) -> list[dict]:
    outs: list[list[dict]] = [[]]
    consumed = node.process(events, outs, failures or Recorder())
    assert consumed == len(events)
    return outs[0]


def flush(node: Aggregate) -> list[dict]:
    outs: list[list[dict]] = [[]]
    node.flush(outs)
    return outs[0]


def timer(node: Aggregate, now: float) -> list[dict]:
    outs: list[list[dict]] = [[]]
    node.on_timer(now, outs)
    return outs[0]


def win(start: float, end: float) -> dict:
    return {"window_start": start, "window_end": end}


# -- no window -------------------------------------------------------------------------


def test_totals_per_key_in_order_of_first_appearance_at_flush():
    node = build({"by": "user", "fields": {"total": "sum(amount)", "n": "count()", "double": "sum(amount * 2)"}})
    events = [{"user": "b", "amount": 1}, {"user": "a", "amount": 2}, {"user": "b", "amount": 3},
              {"user": "c", "amount": 4.5}]
    before = copy.deepcopy(events)
    assert feed(node, events) == []
    assert node.deadline() == INFINITY and node.open_windows() == 0
    assert flush(node) == [
        {"user": "b", "total": 4, "n": 2, "double": 8},
        {"user": "a", "total": 2, "n": 1, "double": 4},
        {"user": "c", "total": 4.5, "n": 1, "double": 9.0},
    ]
    assert events == before  # inputs are never mutated
    assert flush(node) == []  # the totals went out once


def test_every_aggregate_function_and_null_handling():
    fields = {"n": "count()", "s": "sum(x)", "lo": "min(x)", "hi": "max(x)", "mean": "avg(x)",
              "f": "first(x)", "l": "last(x)", "all": "collect(x)"}
    node = build({"fields": fields})
    feed(node, [{"x": 4}, {"x": None}, {"x": 1}, {"x": 7.5}])
    assert flush(node) == [{"n": 4, "s": 12.5, "lo": 1, "hi": 7.5, "mean": 12.5 / 3, "f": 4, "l": 7.5,
                            "all": [4, None, 1, 7.5]}]


def test_aggregates_over_only_nulls():
    node = build({"by": "k", "fields": {"n": "count()", "s": "sum(x)", "lo": "min(x)", "hi": "max(x)",
                                        "mean": "avg(x)", "f": "first(x)", "l": "last(x)", "all": "collect(x)"}})
    feed(node, [{"k": 1, "x": None}, {"k": 1, "x": None}])
    assert flush(node) == [{"k": 1, "n": 2, "s": 0, "lo": None, "hi": None, "mean": None, "f": None,
                            "l": None, "all": [None, None]}]


def test_first_and_last_keep_nulls_and_strings_compare():
    node = build({"fields": {"f": "first(x)", "l": "last(x)", "lo": "min(x)", "hi": "max(x)"}})
    feed(node, [{"x": None}, {"x": "pear"}, {"x": "apple"}, {"x": None}])
    assert flush(node) == [{"f": None, "l": None, "lo": "apple", "hi": "pear"}]


def test_several_by_fields_missing_ones_group_under_null():
    node = build({"by": ["region", "kind"], "fields": {"n": "count()"}})
    feed(node, [{"region": "eu", "kind": "buy"}, {"region": "eu"}, {"region": "eu", "kind": "buy"},
                {"kind": None, "region": "eu"}, {}])
    assert flush(node) == [
        {"region": "eu", "kind": "buy", "n": 2},
        {"region": "eu", "kind": None, "n": 2},
        {"region": None, "kind": None, "n": 1},
    ]


def test_group_keys_of_any_json_value():
    node = build({"by": "k", "fields": {"n": "count()"}})
    feed(node, [{"k": [1, 2]}, {"k": {"a": 1}}, {"k": [1, 2]}, {"k": True}, {"k": 1}, {"k": 1.0}])
    assert flush(node) == [{"k": [1, 2], "n": 2}, {"k": {"a": 1}, "n": 1}, {"k": True, "n": 1}, {"k": 1, "n": 2}]


def test_nothing_in_nothing_out():
    assert flush(build({"fields": {"n": "count()"}})) == []


# -- per-event errors ------------------------------------------------------------------


def test_failing_argument_is_reported_and_leaves_no_partial_update():
    node = build({"by": "k", "fields": {"n": "count()", "ratio": "sum(a / b)", "all": "collect(a)"}})
    failures = Recorder()
    events = [{"k": "x", "a": 6, "b": 3}, {"k": "x", "a": 1, "b": 0}, {"k": "x", "a": 5},
              {"k": "y", "a": 1, "b": 0}, {"k": "x", "a": 8, "b": 4}]
    feed(node, events, failures)
    assert failures.failed == [
        (events[1], "division by zero in fields.ratio 'sum(a / b)'"),
        (events[2], "missing field 'b' in fields.ratio 'sum(a / b)'"),
        (events[3], "division by zero in fields.ratio 'sum(a / b)'"),
    ]
    # The failing events changed nothing: not counted, not collected, no group `y`.
    assert flush(node) == [{"k": "x", "n": 2, "ratio": 4.0, "all": [6, 8]}]


def test_sum_of_a_string_is_an_error_that_keeps_the_state():
    node = build({"fields": {"n": "count()", "s": "sum(v)", "m": "avg(v)"}})
    failures = Recorder()
    feed(node, [{"v": 1}, {"v": "2"}, {"v": 2.5}, {"v": [1]}, {"v": True}], failures)
    assert failures.messages == [
        "sum() needs numbers, not text in fields.s 'sum(v)'",
        "sum() needs numbers, not list in fields.s 'sum(v)'",
        "sum() needs numbers, not bool in fields.s 'sum(v)'",
    ]
    assert flush(node) == [{"n": 2, "s": 3.5, "m": 1.75}]


def test_min_over_values_that_do_not_compare_is_an_error():
    node = build({"fields": {"lo": "min(v)", "n": "count()"}})
    failures = Recorder()
    feed(node, [{"v": 3}, {"v": "a"}, {"v": 2}], failures)
    assert failures.messages == ["min() cannot compare text with number in fields.lo 'min(v)'"]
    assert flush(node) == [{"lo": 2, "n": 2}]


def test_retry_requested_stops_and_returns_what_was_consumed():
    node = build({"fields": {"s": "sum(10 / v)"}})
    failures = Recorder(retry_after=0)
    outs: list[list[dict]] = [[]]
    batch = [{"v": 1}, {"v": 2}, {"v": 0}, {"v": 5}]
    assert node.process(batch, outs, failures) == 2
    assert len(failures.failed) == 1
    # The rest is offered again; this time the failure is dropped.
    assert node.process(batch[2:], outs, Recorder()) == 2
    assert flush(node) == [{"s": 17.0}]


def test_retry_in_a_window_leaves_the_window_as_it_was():
    node = build({"fields": {"n": "count()"},
                  "window": {"type": "tumbling", "size": "10s", "time_field": "ts", "allowed_lateness": "1m"}})
    outs: list[list[dict]] = [[]]
    batch = [{"ts": 1}, {"ts": 12}, {"ts": "soon"}, {"ts": 3}]
    assert node.process(batch, outs, Recorder(retry_after=0)) == 2
    assert node.process(batch[2:], outs, Recorder()) == 2
    assert outs == [[]]
    assert flush(node) == [{"n": 2} | win(0.0, 10.0), {"n": 1} | win(10.0, 20.0)]


# -- tumbling, sliding, session windows in event time -----------------------------------


def test_tumbling_windows_close_when_the_watermark_passes_their_end():
    node = build({"by": "user", "fields": {"n": "count()", "total": "sum(amount)"},
                  "window": {"type": "tumbling", "size": "10s", "time_field": "ts"}})
    assert node.deadline() == INFINITY
    assert feed(node, [{"user": "a", "ts": 1, "amount": 1}, {"user": "b", "ts": 3, "amount": 2},
                       {"user": "a", "ts": 9.5, "amount": 3}]) == []
    # ts 10 starts the next window; the watermark (10) reaches the end of [0, 10).
    assert feed(node, [{"user": "a", "ts": 10, "amount": 4}]) == [
        {"user": "a", "n": 2, "total": 4} | win(0.0, 10.0),
        {"user": "b", "n": 1, "total": 2} | win(0.0, 10.0),
    ]
    assert feed(node, [{"user": "b", "ts": 25, "amount": 5}]) == [{"user": "a", "n": 1, "total": 4} | win(10.0, 20.0)]
    assert node.open_windows() == 1
    assert node.deadline() == INFINITY
    assert flush(node) == [{"user": "b", "n": 1, "total": 5} | win(20.0, 30.0)]
    assert node.open_windows() == 0


def test_iso_8601_event_times_and_epoch_aligned_windows():
    node = build({"fields": {"n": "count()"},
                  "window": {"type": "tumbling", "size": "1m", "time_field": "at"}})
    out = feed(node, [{"at": "2026-01-01T00:00:59Z"}, {"at": "2026-01-01T00:01:00+00:00"}, {"at": T0 + 61.5}])
    assert out == [{"n": 1} | win(T0, T0 + 60)]
    assert flush(node) == [{"n": 2} | win(T0 + 60, T0 + 120)]


def test_sliding_event_in_two_and_three_windows():
    node = build({"fields": {"n": "count()", "xs": "collect(x)"},
                  "window": {"type": "sliding", "size": "10s", "every": "5s", "time_field": "ts"}})
    out = feed(node, [{"ts": 7, "x": "a"}, {"ts": 12, "x": "b"}])
    assert out == [{"n": 1, "xs": ["a"]} | win(0.0, 10.0)]  # 7 is in [0, 10) and [5, 15)
    assert flush(node) == [{"n": 2, "xs": ["a", "b"]} | win(5.0, 15.0), {"n": 1, "xs": ["b"]} | win(10.0, 20.0)]

    node = build({"fields": {"n": "count()"},
                  "window": {"type": "sliding", "size": "15s", "every": "5s", "time_field": "ts"}})
    feed(node, [{"ts": 10}])  # in [0, 15), [5, 20) and [10, 25)
    assert node.open_windows() == 3
    assert flush(node) == [{"n": 1} | win(0.0, 15.0), {"n": 1} | win(5.0, 20.0), {"n": 1} | win(10.0, 25.0)]


def test_sliding_event_partly_behind_the_watermark_counts_in_the_open_windows_only():
    node = build({"fields": {"n": "count()"},
                  "window": {"type": "sliding", "size": "10s", "every": "5s", "time_field": "ts"}})
    assert feed(node, [{"ts": 11}]) == []  # in [5, 15) and [10, 20)
    assert feed(node, [{"ts": 16}]) == [{"n": 1} | win(5.0, 15.0)]  # watermark 16
    # ts 12 is in [5, 15) (closed) and [10, 20) (open): it counts in [10, 20) only.
    failures = Recorder()
    assert feed(node, [{"ts": 12}], failures) == []
    assert failures.failed == []
    assert flush(node) == [{"n": 3} | win(10.0, 20.0), {"n": 1} | win(15.0, 25.0)]


def test_window_bounds_are_exact_for_fractional_times():
    node = build({"fields": {"xs": "collect(ts)"},
                  "window": {"type": "tumbling", "size": "100ms", "time_field": "ts", "allowed_lateness": "1s"}})
    feed(node, [{"ts": 0.3}, {"ts": 0.29999}, {"ts": 0.1}, {"ts": 0.2}])
    assert flush(node) == [{"xs": [0.1]} | win(0.1, 0.2), {"xs": [0.29999, 0.2]} | win(0.2, 0.3),
                           {"xs": [0.3]} | win(0.3, 0.4)]


def test_out_of_order_events_within_lateness_count_in_their_window():
    node = build({"by": "k", "fields": {"n": "count()", "xs": "collect(ts)"},
                  "window": {"type": "tumbling", "size": "10s", "time_field": "ts", "allowed_lateness": "5s"}})
    out = feed(node, [{"k": "a", "ts": T0 + 101}, {"k": "a", "ts": T0 + 97}, {"k": "b", "ts": T0 + 104},
                      {"k": "b", "ts": T0 + 99}])
    assert out == []  # watermark 99: [90, 100) is still open
    out = feed(node, [{"k": "a", "ts": T0 + 105}])  # watermark 100
    assert out == [{"k": "a", "n": 1, "xs": [T0 + 97]} | win(T0 + 90, T0 + 100),
                   {"k": "b", "n": 1, "xs": [T0 + 99]} | win(T0 + 90, T0 + 100)]
    assert flush(node) == [{"k": "a", "n": 2, "xs": [T0 + 101, T0 + 105]} | win(T0 + 100, T0 + 110),
                           {"k": "b", "n": 1, "xs": [T0 + 104]} | win(T0 + 100, T0 + 110)]


def test_late_events_are_errors_and_not_counted():
    node = build({"fields": {"n": "count()"},
                  "window": {"type": "tumbling", "size": "10s", "time_field": "ts", "allowed_lateness": "5s"}})
    failures = Recorder()
    out = feed(node, [{"ts": T0 + 97}, {"ts": T0 + 112}, {"ts": T0 + 95}, {"ts": "2026-01-01T00:01:39.500Z"},
                      {"ts": T0 + 103}], failures)
    assert out == [{"n": 1} | win(T0 + 90, T0 + 100)]  # watermark 107 closed it
    assert failures.messages == [
        "late event: event time 2026-01-01T00:01:35Z is 12s behind the watermark (allowed_lateness 5s)",
        "late event: event time 2026-01-01T00:01:39.500Z is 7.5s behind the watermark (allowed_lateness 5s)",
    ]
    assert flush(node) == [{"n": 1} | win(T0 + 100, T0 + 110), {"n": 1} | win(T0 + 110, T0 + 120)]


def test_default_lateness_is_zero():
    node = build({"fields": {"n": "count()"}, "window": {"type": "tumbling", "size": "10s", "time_field": "ts"}})
    failures = Recorder()
    assert feed(node, [{"ts": 10}, {"ts": 9.999}, {"ts": 10}], failures) == []
    assert failures.messages == [
        "late event: event time 1970-01-01T00:00:09.999Z is 1ms behind the watermark (allowed_lateness 0s)"]
    assert feed(node, [{"ts": 20.25}]) == [{"n": 2} | win(10.0, 20.0)]
    assert feed(node, [{"ts": 5}], failures) == []
    assert failures.messages[-1] == (
        "late event: event time 1970-01-01T00:00:05Z is 15.25s behind the watermark (allowed_lateness 0s)")
    assert flush(node) == [{"n": 1} | win(20.0, 30.0)]


def test_bad_event_times_are_errors():
    node = build({"fields": {"n": "count()"}, "window": {"type": "tumbling", "size": "10s", "time_field": "ts"}})
    failures = Recorder()
    feed(node, [{"ts": 1}, {}, {"ts": True}, {"ts": "yesterday"}, {"ts": None}, {"ts": float("nan")}, {"ts": 2}],
         failures)
    assert failures.messages == [
        "missing field 'ts' in window.time_field",
        "event time must be epoch seconds or an ISO 8601 string, not bool, in window.time_field 'ts'",
        "parse_time() needs ISO 8601 text, e.g. 2026-11-21T10:00:00Z in window.time_field 'ts'",
        "event time must be epoch seconds or an ISO 8601 string, not None, in window.time_field 'ts'",
        "event time is not a finite number in window.time_field 'ts'",
    ]
    assert flush(node) == [{"n": 2} | win(0.0, 10.0)]


def test_session_windows_per_key():
    node = build({"by": "user", "fields": {"n": "count()", "xs": "collect(x)"},
                  "window": {"type": "session", "gap": "10s", "time_field": "ts"}})
    out = feed(node, [{"user": "a", "ts": 0, "x": 1}, {"user": "b", "ts": 2, "x": 2}, {"user": "a", "ts": 9, "x": 3},
                      {"user": "a", "ts": 18, "x": 4}, {"user": "b", "ts": 12, "x": 5}])
    # a: 0, 9 and 18 are each less than 10s apart; b's session at 2 ended at 12 (watermark 18),
    # so b at 12 starts a new one.
    assert out == [{"user": "b", "n": 1, "xs": [2]} | win(2.0, 12.0)]
    assert node.open_windows() == 2
    assert feed(node, [{"user": "b", "ts": 29, "x": 6}]) == [
        {"user": "b", "n": 1, "xs": [5]} | win(12.0, 22.0),
        {"user": "a", "n": 3, "xs": [1, 3, 4]} | win(0.0, 28.0),
    ]
    assert node.open_windows() == 1
    assert flush(node) == [{"user": "b", "n": 1, "xs": [6]} | win(29.0, 39.0)]


def test_events_exactly_gap_apart_are_separate_sessions():
    node = build({"fields": {"n": "count()"},
                  "window": {"type": "session", "gap": "10s", "time_field": "ts", "allowed_lateness": "1m"}})
    feed(node, [{"ts": 0}, {"ts": 10}, {"ts": 25}, {"ts": 15.5}])
    assert flush(node) == [{"n": 1} | win(0.0, 10.0), {"n": 3} | win(10.0, 35.0)]


def test_out_of_order_event_bridges_and_merges_two_sessions():
    fields = {"n": "count()", "f": "first(x)", "l": "last(x)", "xs": "collect(x)", "lo": "min(ts)",
              "mean": "avg(x)"}
    node = build({"by": "k", "fields": fields,
                  "window": {"type": "session", "gap": "10s", "time_field": "ts", "allowed_lateness": "1m"}})
    events = [{"k": "a", "ts": 0, "x": 1}, {"k": "a", "ts": 25, "x": 2}, {"k": "a", "ts": 8, "x": 3},
              {"k": "a", "ts": 16, "x": 4}]
    before = copy.deepcopy(events)
    feed(node, events[:3])
    assert node.open_windows() == 2  # [0, 18) and [25, 35)
    feed(node, events[3:])  # 8 from 8, 9 from 25: one session
    assert events == before
    assert node.open_windows() == 1
    assert flush(node) == [{"k": "a", "n": 4, "f": 1, "l": 4, "xs": [1, 3, 2, 4], "lo": 0, "mean": 2.5}
                           | win(0.0, 35.0)]


def test_session_merge_that_cannot_combine_leaves_both_sessions():
    node = build({"fields": {"n": "count()", "hi": "max(v)"},
                  "window": {"type": "session", "gap": "10s", "time_field": "ts", "allowed_lateness": "1m"}})
    failures = Recorder()
    feed(node, [{"ts": 0, "v": 1}, {"ts": 15, "v": "z"}, {"ts": 7, "v": None}], failures)
    assert failures.messages == ["max() cannot compare text with number in fields.hi 'max(v)'"]
    assert flush(node) == [{"n": 1, "hi": 1} | win(0.0, 10.0), {"n": 1, "hi": "z"} | win(15.0, 25.0)]


def test_session_event_joining_an_open_session_behind_the_watermark_counts():
    node = build({"fields": {"n": "count()"},
                  "window": {"type": "session", "gap": "10s", "time_field": "ts"}})
    failures = Recorder()
    feed(node, [{"ts": T0 + 10}, {"ts": T0 + 18}, {"ts": T0 + 26}, {"ts": T0 + 12}, {"ts": T0 - 1}], failures)
    # Watermark 26. T0+12 joins the open session [10, 36); T0-1 is 11s before it, so it
    # would start a session of its own ending at 9 <= 26: late.
    assert failures.messages == [
        "late event: event time 2025-12-31T23:59:59Z is 27s behind the watermark (allowed_lateness 0s)"]
    assert flush(node) == [{"n": 4} | win(T0 + 10, T0 + 36)]


def test_emission_order_is_end_then_start_then_key_arrival():
    node = build({"by": "k", "fields": {"n": "count()"},
                  "window": {"type": "session", "gap": "10s", "time_field": "ts", "allowed_lateness": "1m"}})
    feed(node, [{"k": "z", "ts": 5}, {"k": "y", "ts": 0}, {"k": "x", "ts": 5}, {"k": "w", "ts": 3}])
    out = feed(node, [{"k": "v", "ts": 100}])
    assert [(e["k"], e["window_start"], e["window_end"]) for e in out] == [
        ("y", 0.0, 10.0), ("w", 3.0, 13.0), ("z", 5.0, 15.0), ("x", 5.0, 15.0)]


# -- processing time ---------------------------------------------------------------------


def test_processing_time_windows_fire_on_the_clock():
    clock = ManualClock(1003.0)
    node = build({"by": "k", "fields": {"n": "count()"}, "window": {"type": "tumbling", "size": "10s"}}, clock)
    assert node.deadline() == INFINITY
    assert feed(node, [{"k": "a", "ts": 0}, {"k": "b"}]) == []
    assert node.deadline() == 1010.0
    clock.advance(6)
    assert feed(node, [{"k": "a"}]) == []
    assert timer(node, 1009.5) == []
    assert timer(node, 1010.0) == [{"k": "a", "n": 2} | win(1000.0, 1010.0), {"k": "b", "n": 1} | win(1000.0, 1010.0)]
    assert node.deadline() == INFINITY
    clock.t = 1015.0
    feed(node, [{"k": "a"}])
    assert node.deadline() == 1020.0
    clock.t = 1031.0  # no timer ran: the next batch closes the window first
    assert feed(node, [{"k": "b"}]) == [{"k": "a", "n": 1} | win(1010.0, 1020.0)]
    assert node.deadline() == 1040.0
    assert flush(node) == [{"k": "b", "n": 1} | win(1030.0, 1040.0)]
    assert node.deadline() == INFINITY


def test_processing_time_never_goes_back():
    clock = ManualClock(25.0)
    node = build({"fields": {"n": "count()"}, "window": {"type": "tumbling", "size": "10s"}}, clock)
    feed(node, [{}])
    assert timer(node, 30.0) == [{"n": 1} | win(20.0, 30.0)]
    clock.t = 28.0  # the wall clock stepped back: the closed window stays closed
    feed(node, [{}])
    assert flush(node) == [{"n": 1} | win(30.0, 40.0)]


def test_processing_time_sessions():
    clock = ManualClock(100.0)
    node = build({"by": "k", "fields": {"n": "count()"}, "window": {"type": "session", "gap": "5s"}}, clock)
    feed(node, [{"k": "a"}])
    clock.t = 103.0
    feed(node, [{"k": "b"}, {"k": "a"}])
    assert node.deadline() == 108.0
    assert timer(node, 107.0) == []
    assert timer(node, 108.0) == [{"k": "a", "n": 2} | win(100.0, 108.0), {"k": "b", "n": 1} | win(103.0, 108.0)]
    assert node.deadline() == INFINITY and node.open_windows() == 0


def test_event_time_has_no_deadline_and_ignores_timers():
    node = build({"fields": {"n": "count()"}, "window": {"type": "tumbling", "size": "1s", "time_field": "ts"}})
    feed(node, [{"ts": 1.5}])
    assert node.deadline() == INFINITY
    assert timer(node, 1e12) == []
    assert flush(node) == [{"n": 1} | win(1.0, 2.0)]


# -- memory ------------------------------------------------------------------------------


@pytest.mark.parametrize("window, held, emitted", [
    ({"type": "tumbling", "size": "1s", "time_field": "ts", "allowed_lateness": "500ms"}, 2, 100 * 3),
    ({"type": "sliding", "size": "2s", "every": "1s", "time_field": "ts"}, 2, 101 * 3),
    ({"type": "session", "gap": "300ms", "time_field": "ts"}, 3, 100 * 3),
])
def test_closed_windows_leave_the_state(window, held, emitted):
    """100 seconds of events, 3 keys: the windows held stay the same few all along."""
    node = build({"by": "k", "fields": {"n": "count()", "xs": "collect(i)"}, "window": window})
    out = []
    for second in range(100):
        out += feed(node, [{"k": i % 3, "i": i, "ts": second + i / 20} for i in range(10)])
        assert node.open_windows() == (1 if second == 0 and window["type"] == "tumbling" else held)
    out += flush(node)
    assert node.open_windows() == 0
    assert len(out) == emitted
    assert sum(e["n"] for e in out) == 1000 * (2 if window["type"] == "sliding" else 1)


def test_session_state_stays_small_with_many_keys_over_time():
    clock = ManualClock(0.0)
    node = build({"by": "k", "fields": {"n": "count()"}, "window": {"type": "session", "gap": "10s"}}, clock)
    out = []
    for step in range(1000):
        clock.t = float(step)
        out += feed(node, [{"k": step}])  # a new key every second: each session lives 10s
        assert node.open_windows() == min(step + 1, 10)
    out += flush(node)
    assert [e["k"] for e in out] == list(range(1000))


def test_invalid_window_sizes_fail_at_build_time():
    with pytest.raises(NodeFailure, match=r"window\.size must be a duration above 0"):
        build({"fields": {"n": "count()"}, "window": {"type": "tumbling", "size": "0s"}})


def test_the_aggregate_spec_builds_this_node():
    assert AGGREGATE.factory is make_aggregate
