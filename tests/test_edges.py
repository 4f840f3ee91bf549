"""Edge policies, one edge at a time: exact survivors, conservation, capacity.

Every edge test runs on both storages, memory and the durable LMDB edge, with the same
assertions. Tests take through `take`, which acknowledges at once, as a consumer that hands
every batch straight on does (a memory edge forgets at delivery; a durable one counts what
is in flight against its capacity until acknowledged: tests/test_lmdb_edge.py).
"""

from collections.abc import Callable, Iterator
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.storage.lmdb_edge import LmdbEdge
from adapters.storage.lmdb_store import LmdbStore
from engine.edges import Edge, merge_events
from engine.plan import EdgePlan
from engine.policies import POLICY_NAMES

MakeEdge = Callable[..., Edge]


@pytest.fixture(params=["memory", "lmdb"])
def edge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeEdge]:
    """`edge(policy, capacity=3, key=(), merge=())`: a new, empty edge of the storage under test."""
    if request.param == "memory":
        def memory(policy: str, capacity: int = 3, key: tuple[str, ...] = (),
                   merge: tuple[tuple[str, str], ...] = ()) -> Edge:
            return Edge(EdgePlan("a->b", "a", "out", "b", capacity, policy, key, merge))
        yield memory
        return
    # No fsync: these tests are about policies; durability is tested in test_lmdb_edge.py.
    store = LmdbStore(tmp_path_factory.mktemp("state"), sync=False)
    graphs = count()  # a fresh database for every edge, as the property test builds many

    def durable(policy: str, capacity: int = 3, key: tuple[str, ...] = (),
                merge: tuple[tuple[str, str], ...] = ()) -> Edge:
        plan = EdgePlan("a->b", "a", "out", "b", capacity, policy, key, merge, durable=True)
        return LmdbEdge(plan, store, f"g{next(graphs)}")
    yield durable
    store.close()


def take(e: Edge, budget: int) -> list[dict[str, object]]:
    """Take and acknowledge at once."""
    out = e.take(budget)
    e.ack(len(out))
    return out


def ev(i: int, **fields: object) -> dict[str, object]:
    return {"i": i, **fields}


def conserved(e: Edge) -> bool:
    return e.enqueued == e.delivered + e.dropped + e.coalesced + e.depth


def test_block_refuses_what_does_not_fit_and_keeps_fifo(edge: MakeEdge):
    e = edge("block")
    rest = e.offer([ev(i) for i in range(5)])
    assert [r["i"] for r in rest] == [3, 4]
    assert not e.has_room()
    assert [x["i"] for x in take(e, 2)] == [0, 1]
    assert e.offer(rest + [ev(5)]) == [ev(5)]
    assert [x["i"] for x in take(e, 10)] == [2, 3, 4]
    assert e.counters() == {"enqueued": 5, "dropped": 0, "coalesced": 0, "depth": 0, "high_water": 3}


def test_drop_newest_keeps_the_first_arrivals(edge: MakeEdge):
    e = edge("drop_newest")
    assert e.offer([ev(i) for i in range(5)]) == []
    assert e.has_room()  # dropping policies never push back
    assert [x["i"] for x in take(e, 10)] == [0, 1, 2]
    assert (e.enqueued, e.dropped, e.high_water) == (5, 2, 3)


def test_drop_oldest_keeps_the_newest(edge: MakeEdge):
    e = edge("drop_oldest")
    e.offer([ev(i) for i in range(5)])
    e.offer([ev(5)])
    assert [x["i"] for x in take(e, 10)] == [3, 4, 5]
    assert (e.enqueued, e.dropped, e.high_water) == (6, 3, 3)


def test_latest_keeps_only_the_newest_undelivered_event(edge: MakeEdge):
    e = edge("keep_latest", capacity=100)
    e.offer([ev(0), ev(1)])
    e.offer([ev(2)])
    assert e.depth == 1
    assert take(e, 10) == [ev(2)]
    e.offer([ev(3)])
    assert take(e, 10) == [ev(3)]
    assert (e.enqueued, e.dropped, e.high_water) == (4, 2, 1)


def test_coalesce_merges_queued_events_with_the_same_key(edge: MakeEdge):
    e = edge("coalesce", capacity=10, key=("sensor",), merge=(("hot", "max"), ("n", "sum")))
    e.offer([
        {"sensor": "a", "n": 1, "hot": 5, "note": "x"},
        {"sensor": "b", "n": 1, "hot": 1},
        {"sensor": "a", "n": 2, "hot": 3, "note": "y"},
    ])
    assert take(e, 10) == [
        {"sensor": "a", "n": 3, "hot": 5, "note": "y"},  # unlisted fields keep the newest
        {"sensor": "b", "n": 1, "hot": 1},
    ]
    assert (e.enqueued, e.coalesced, e.dropped) == (3, 1, 0)


def test_coalesce_pushes_back_new_keys_when_full_but_still_merges_known_ones(edge: MakeEdge):
    e = edge("coalesce", capacity=2, key=("k",), merge=(("n", "sum"),))
    rest = e.offer([{"k": 1, "n": 1}, {"k": 2, "n": 1}, {"k": 1, "n": 5}, {"k": 3, "n": 1}])
    assert rest == [{"k": 3, "n": 1}]
    assert take(e, 10) == [{"k": 1, "n": 6}, {"k": 2, "n": 1}]


@pytest.mark.parametrize("key", [("k",), ("k", "j")])
def test_coalesce_keys_may_be_lists_or_objects_and_true_is_not_one(edge: MakeEdge, key):
    e = edge("coalesce", capacity=10, key=key, merge=(("n", "sum"),))
    e.offer([
        {"k": [1, 2], "j": {"a": 1}, "n": 1},
        {"k": True, "j": None, "n": 1},
        {"k": 1, "j": None, "n": 1},
        {"k": [1, 2], "j": {"a": 1}, "n": 2},
        {"k": 1.0, "j": None, "n": 4},  # JSON has one number type: 1.0 is 1
    ])
    assert [(x["k"], x["n"]) for x in take(e, 10)] == [([1, 2], 3), (True, 1), (1.0, 5)]
    assert e.coalesced == 2


def test_coalesce_never_changes_an_event_another_consumer_holds(edge: MakeEdge):
    first = {"k": 1, "n": 1}
    e = edge("coalesce", capacity=5, key=("k",), merge=(("n", "sum"),))
    e.offer([first, {"k": 1, "n": 2}])
    assert first == {"k": 1, "n": 1}
    assert take(e, 1) == [{"k": 1, "n": 3}]


@pytest.mark.parametrize(("function", "expected"), [
    ("sum", 7), ("min", 3), ("max", 4), ("first", 3), ("last", 4),
])
def test_merge_functions(function, expected):
    assert merge_events({"x": 3}, {"x": 4}, {"x": function}) == {"x": expected}


def test_merge_keeps_a_value_when_the_other_side_lacks_it():
    assert merge_events({"x": 3}, {"y": 1}, {"x": "sum"}) == {"x": 3, "y": 1}
    assert merge_events({"x": "a"}, {"x": 2}, {"x": "sum"}) == {"x": 2}  # not numbers: newest


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    policy=st.sampled_from(POLICY_NAMES),
    capacity=st.integers(1, 8),
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 12)), max_size=40),
)
def test_every_policy_conserves_events_and_respects_capacity(edge: MakeEdge, policy, capacity, steps):
    e = edge(policy, capacity, key=("k",), merge=(("n", "sum"),))
    produced = 0
    delivered: list[int] = []
    held: list[dict[str, object]] = []  # what a blocked producer keeps
    for is_offer, n in steps:
        if is_offer:
            batch = held + [{"i": produced + j, "k": (produced + j) % 3, "n": 1} for j in range(n)]
            produced += n
            held = e.offer(batch)
        else:
            delivered.extend(int(x["i"]) for x in take(e, n))
        assert e.depth <= capacity
        assert e.high_water <= capacity
        assert conserved(e)
    assert e.enqueued + len(held) == produced
    if policy != "coalesce":
        assert delivered == sorted(delivered)  # FIFO
    if policy == "block":
        assert e.dropped == 0 and delivered == list(range(len(delivered)))
