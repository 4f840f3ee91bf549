"""The scheduler and edges together: a producer faster than its consumer, per policy."""

import pytest

from tests.runtime_support import RECORDED, counted, run_graph, without_timings

N = 5000


def pressured(policy: str, capacity: int = 16, extra: str = "", sink: str = "test.record") -> str:
    return f"""
        version: 1
        nodes:
          numbers: {{type: test.numbers, with: {{count: {N}, keys: 5}}}}
          slow:
            type: test.slow
            with: {{per_pass: 7}}
            from: {{node: numbers, capacity: {capacity}, policy: {policy}{extra}}}
          sink: {{type: {sink}, from: slow}}
        """


def delivered() -> list[int]:
    return [int(str(e["i"])) for e in RECORDED["sink"]]


def edge_stats(runtime, edge_id="numbers->slow"):
    return runtime.stats()["edges"][edge_id]


@pytest.mark.parametrize("sink", ["test.record", "test.slow_record"])
def test_block_loses_nothing_and_never_exceeds_capacity(sink):
    runtime, ok = run_graph(pressured("block", sink=sink))
    assert ok
    assert delivered() == list(range(N))
    stats = edge_stats(runtime)
    assert counted(stats, "enqueued", "dropped", "coalesced", "depth", "high_water") == {
        "enqueued": N, "dropped": 0, "coalesced": 0, "depth": 0, "high_water": 16}
    nodes = runtime.stats()["nodes"]
    assert nodes["numbers"]["out"] == N and nodes["slow"]["in"] == N and nodes["sink"]["in"] == N


@pytest.mark.parametrize("sink", ["test.record", "test.slow_record"])
def test_drop_oldest_keeps_the_newest_and_counts_the_rest(sink):
    runtime, ok = run_graph(pressured("drop_oldest", sink=sink))
    assert ok
    got = delivered()
    stats = edge_stats(runtime)
    assert stats["dropped"] > 0
    assert len(got) + stats["dropped"] == N == stats["enqueued"]
    assert got == sorted(got)
    assert got[-16:] == list(range(N - 16, N))  # the last full edge is delivered
    assert stats["high_water"] <= 16


def test_drop_newest_keeps_the_first_arrivals():
    runtime, ok = run_graph(pressured("drop_newest"))
    assert ok
    got = delivered()
    stats = edge_stats(runtime)
    assert stats["dropped"] > 0 and len(got) + stats["dropped"] == N
    assert got[:16] == list(range(16))
    assert got == sorted(got) and stats["high_water"] <= 16


def test_latest_delivers_only_the_newest_waiting_event():
    runtime, ok = run_graph(pressured("latest"))
    assert ok
    got = delivered()
    stats = edge_stats(runtime)
    assert got[-1] == N - 1
    assert got == sorted(got) and len(set(got)) == len(got)
    assert len(got) + stats["dropped"] == N
    assert stats["high_water"] == 1


def test_coalesce_merges_per_key_and_conserves_the_sum():
    runtime, ok = run_graph(pressured("coalesce", capacity=8, extra=", key: k, merge: {n: sum}"))
    assert ok
    stats = edge_stats(runtime)
    events = RECORDED["sink"]
    assert stats["coalesced"] > 0 and stats["dropped"] == 0
    assert len(events) + stats["coalesced"] == N
    assert sum(int(str(e["n"])) for e in events) == N  # every event's `n` is in some total
    for key in range(5):
        assert sum(int(str(e["n"])) for e in events if e["k"] == key) == N // 5
    assert stats["high_water"] <= 5


def test_runs_are_deterministic():
    graph = pressured("drop_oldest")
    first, _ = run_graph(graph)
    first_events = list(RECORDED["sink"])
    second, _ = run_graph(graph)
    assert RECORDED["sink"] == first_events
    assert without_timings(first.stats()) == without_timings(second.stats())


def test_fan_in_reads_every_input_and_ends_when_all_are_done():
    _, ok = run_graph("""
        version: 1
        nodes:
          a: {type: test.numbers, with: {count: 3000}}
          b: {type: test.numbers, with: {count: 10}}
          sink: {type: test.record, from: [a, b]}
        """)
    assert ok
    assert len(RECORDED["sink"]) == 3010
    assert [e["i"] for e in RECORDED["sink"] if e["i"] is not None][:3] == [0, 1, 2]


def test_dedupe_drops_repeated_keys_and_its_state_round_trips():
    from engine.dedupe import Dedupe, parse_dedupe
    from engine.node import Clock, Failures, NodeContext
    from engine.plan import ErrorPolicy

    def node(window: int = 3) -> Dedupe:
        return Dedupe(NodeContext("d", "dedupe", parse_dedupe({"key": ["id", "k"], "window": window}), ("out",),
                                  ErrorPolicy(), Clock()))

    first = node()
    outs: list = [[]]
    events = [{"id": 1, "k": True}, {"id": 1, "k": 1}, {"id": 1, "k": True}, {"id": [2], "k": None},
              {"id": 3}, {"id": 4}, {"id": 1, "k": True}]
    assert first.process(events, outs, Failures()) == 7
    # true is not 1; lists are keys; only the last 3 keys are remembered, so id 1 passes again
    assert outs[0] == [events[0], events[1], events[3], events[4], events[5], events[6]]
    second = node()
    second.restore(first.state())
    again: list = [[]]
    second.process([{"id": 4}, {"id": 1, "k": True}, {"id": 5}], again, Failures())
    assert again[0] == [{"id": 5}]


def test_dedupe_on_one_field_keeps_json_values_apart_and_its_state_round_trips():
    from engine.dedupe import Dedupe, parse_dedupe
    from engine.node import Clock, Failures, NodeContext
    from engine.plan import ErrorPolicy

    def node(window: int = 4) -> Dedupe:
        return Dedupe(NodeContext("d", "dedupe", parse_dedupe({"key": ["id"], "window": window}), ("out",),
                                  ErrorPolicy(), Clock()))

    first = node()
    outs: list = [[]]
    events = [{"id": 1}, {"id": True}, {"id": "1"}, {"id": 1.0}, {"id": [1]}, {"id": None}, {}, {"id": [1]},
              {"id": {"a": 1}}, {"id": 1}]
    assert first.process(events, outs, Failures()) == len(events)
    # true, "1" and [1] are not 1; 1.0 is; a missing field is null; the last 4 keys seen are
    # remembered (a repeat counts as seen again), so true and "1" are forgotten, 1 is not
    assert outs[0] == [events[0], events[1], events[2], events[4], events[5], events[8]]
    assert first.state() == '[[null],[[1]],[{"a":1}],[1]]'  # the raw values, least recent first, as JSON
    second = node()
    second.restore(first.state())
    again: list = [[]]
    second.process([{"id": [1]}, {"id": {"a": 1}}, {"id": 1}, {"id": None}, {"id": True}], again, Failures())
    assert again[0] == [{"id": True}]
