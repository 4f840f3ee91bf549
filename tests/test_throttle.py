"""The `throttle` node: how many events pass per interval, what is dropped or waits, and when."""

from engine.node import INFINITY, Failures, ManualClock, NodeContext, VirtualClock
from engine.plan import ErrorPolicy
from engine.throttle import THROTTLE, Throttle
from tests.runtime_support import RECORDED, run_graph


class NoFailures(Failures):
    def event_failed(self, event, message, outs):
        raise AssertionError(f"a throttle never fails an event: {message}")


def throttle(clock: ManualClock, **params: object) -> Throttle:
    ctx = NodeContext("t", "throttle", THROTTLE.parse(params), ("out",), ErrorPolicy(), clock)
    return Throttle(ctx)


def step(node: Throttle, batch: list[dict]) -> tuple[int, list[dict]]:
    outs: list[list[dict]] = [[]]
    consumed = node.process(batch, outs, NoFailures())
    return consumed, outs[0]


def test_drop_passes_rate_events_per_interval_per_key_and_counts_the_rest():
    clock = ManualClock(1000.2)
    node = throttle(clock, rate=2, per="1s", key="user")
    batch = [{"user": u, "n": n} for n, u in enumerate("aaabba")]
    assert step(node, batch) == (6, [batch[0], batch[1], batch[3], batch[4]])
    assert node.counters() == {"dropped": 2, "delayed": 0}
    clock.advance(0.7)  # 1000.9: the same interval
    assert step(node, [{"user": "a"}]) == (1, [])
    clock.advance(0.1)  # 1001.0: a new interval, a fresh budget for every key
    assert step(node, [{"user": "a"}, {"user": "a"}, {"user": "a"}]) == (3, [{"user": "a"}, {"user": "a"}])
    assert node.counters() == {"dropped": 4, "delayed": 0}
    assert node.deadline() == INFINITY  # dropping needs no timer


def test_without_a_key_one_budget_covers_every_event():
    node = throttle(ManualClock(0.0), rate=3, per="1m")
    consumed, out = step(node, [{"user": u} for u in "abcde"])
    assert (consumed, [e["user"] for e in out]) == (5, ["a", "b", "c"])
    assert node.counters()["dropped"] == 2


def test_delay_stops_at_the_first_event_over_its_rate_until_the_next_interval():
    clock = ManualClock(10.0)
    node = throttle(clock, rate=2, per="500ms", key="k", when_exceeded="delay")
    batch = [{"k": 1, "n": 0}, {"k": 1, "n": 1}, {"k": 1, "n": 2}, {"k": 2, "n": 3}]
    assert step(node, batch) == (2, batch[:2])
    assert node.deadline() == 10.5
    clock.advance(0.25)
    assert step(node, batch[2:]) == (0, [])  # still waiting: order is kept, so k=2 waits too
    clock.t = node.deadline()
    node.on_timer(clock.now(), [[]])
    assert step(node, batch[2:]) == (2, batch[2:])
    assert node.deadline() == INFINITY
    assert node.counters() == {"dropped": 0, "delayed": 1}  # the waiting event counts once


GRAPH = """
version: 2
nodes:
  events:
    type: generate
    with: {count: 25, fields: {i: i, k: i % 2}}
  t:
    type: throttle
    from: events
    with: {rate: 5, per: 1s, key: k, when_exceeded: WHEN}
  out:
    type: test.record
    from: t
"""


def test_delay_on_virtual_time_lets_every_event_through_at_the_rate():
    clock = VirtualClock(100.0)
    runtime, ok = run_graph(GRAPH.replace("WHEN", "delay"), clock=clock)
    assert ok, runtime.failure
    assert [e["i"] for e in RECORDED["out"]] == list(range(25))
    # 13 events of k=0 at 5 per second (5, 5, 3): two more intervals after the first.
    assert clock.now() == 102.0
    stats = runtime.stats()["nodes"]["t"]  # type: ignore[index]
    assert (stats["in"], stats["out"], stats["dropped"]) == (25, 25, 0)


def test_drop_in_a_graph_counts_what_it_dropped_in_the_stats():
    for fuse in (True, False):
        runtime, ok = run_graph(GRAPH.replace("WHEN", "drop"), clock=VirtualClock(100.0), fuse=fuse)
        assert ok, runtime.failure
        assert [e["i"] for e in RECORDED["out"]] == list(range(10))
        stats = runtime.stats()["nodes"]["t"]  # type: ignore[index]
        assert (stats["in"], stats["out"], stats["dropped"]) == (25, 10, 15)


def test_state_key_is_the_key_fields():
    assert THROTTLE.state_key is not None
    assert THROTTLE.state_key(THROTTLE.parse({"rate": 1, "key": ["a", "b"]})) == ("a", "b")
    assert THROTTLE.state_key(THROTTLE.parse({"rate": 1})) == ()
