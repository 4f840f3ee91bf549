"""The durable edge: what survives a restart, acknowledgement, capacity with events in flight,
map growth and its limit, a full disk, damaged storage, stale readers, and a model of the
queue under random offers, takes, acknowledgements and crashes.

A restart is simulated by closing the store (the environment) and opening a new one on the
same directory, as a new process would: nothing in memory survives it. Tests of the five
policies themselves run on both storages in tests/test_edges.py.
"""

import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.storage.lmdb_edge import LmdbEdge, durable_edges
from adapters.storage.lmdb_store import DurableStorageError, KiB, LmdbStore
from adapters.storage.lmdb_table import checkpoint_key, checkpoint_prefix, database_name, decode, edge_of
from engine.plan import EdgePlan
from engine.policies import POLICY_NAMES
from tests.conftest import ROOT
from tests.runtime_support import RECORDED, build


def plan(policy: str = "block", capacity: int = 100, key: tuple[str, ...] = (),
         merge: tuple[tuple[str, str], ...] = ()) -> EdgePlan:
    return EdgePlan("a->b", "a", "out", "b", capacity, policy, key, merge, durable=True)


def events(start: int, n: int, pad: int = 0) -> list[dict[str, object]]:
    return [{"i": i, "k": i % 3, "n": 1, **({"pad": "x" * pad} if pad else {})} for i in range(start, start + n)]


def ids(batch: list[dict[str, object]]) -> list[int]:
    return [int(str(e["i"])) for e in batch]


def stored(store: LmdbStore, edge: LmdbEdge) -> list[int]:
    """The events in the edge's database, in key order."""
    return store.read(lambda txn: [decode([v])[0]["i"] for _, v in txn.cursor(edge.table.db)])


class Restartable:
    """A store on one directory that can be closed and opened again: a process restart."""

    def __init__(self, directory: Path, **options: object) -> None:
        self.directory = directory
        self.options = options
        self.store = LmdbStore(directory, **options)  # type: ignore[arg-type]

    def restart(self) -> LmdbStore:
        self.store.close()
        self.store = LmdbStore(self.directory, **self.options)  # type: ignore[arg-type]
        return self.store


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Restartable]:
    restartable = Restartable(tmp_path / "state")
    yield restartable
    restartable.store.close()


def test_everything_stored_is_delivered_again_in_order_after_a_restart(state):
    e = LmdbEdge(plan(), state.store, "g")
    assert e.offer(events(0, 5)) == []
    e = LmdbEdge(plan(), state.restart(), "g")
    assert e.depth == 5
    assert e.counters() == {"enqueued": 5, "dropped": 0, "coalesced": 0, "depth": 5, "high_water": 5}
    assert ids(e.take(10)) == [0, 1, 2, 3, 4]
    assert e.enqueued == e.delivered + e.dropped + e.coalesced + e.depth


def test_ack_deletes_the_oldest_taken_and_in_flight_events_come_back_after_a_crash(state):
    e = LmdbEdge(plan(), state.store, "g")
    e.offer(events(0, 6))
    assert ids(e.take(4)) == [0, 1, 2, 3]
    e.ack(2)
    assert stored(state.store, e) == [2, 3, 4, 5]  # taken, not acknowledged: still there
    assert e.depth == 2
    e = LmdbEdge(plan(), state.restart(), "g")  # crash: 2 and 3 were in flight
    assert ids(e.take(10)) == [2, 3, 4, 5]
    e.ack(4)
    assert stored(state.store, e) == []
    e = LmdbEdge(plan(), state.restart(), "g")
    assert e.depth == 0 and e.take(10) == []


def test_new_events_follow_the_redelivered_ones(state):
    e = LmdbEdge(plan(), state.store, "g")
    e.offer(events(0, 3))
    e.take(3)
    e = LmdbEdge(plan(), state.restart(), "g")
    e.offer(events(3, 2))
    assert ids(e.take(2)) == [0, 1]
    e.ack(2)
    assert ids(e.take(10)) == [2, 3, 4]


def test_capacity_counts_events_in_flight(state):
    e = LmdbEdge(plan("block", capacity=3), state.store, "g")
    assert e.offer(events(0, 3)) == []
    assert ids(e.take(3)) == [0, 1, 2]
    assert e.depth == 0 and not e.has_room()  # nothing waits, but three are in flight
    assert ids(e.offer(events(3, 1))) == [3]
    e.ack(1)
    assert e.has_room()
    assert e.offer(events(3, 2)) == events(4, 1)
    assert e.high_water == 3


def test_drop_oldest_evicts_only_undelivered_events(state):
    e = LmdbEdge(plan("drop_oldest", capacity=3), state.store, "g")
    e.offer(events(0, 3))
    assert ids(e.take(2)) == [0, 1]
    e.offer(events(3, 2))  # one slot left beside the two in flight: the newest wins
    assert (e.dropped, e.depth) == (2, 1)
    assert stored(state.store, e) == [0, 1, 4]
    assert ids(e.take(10)) == [4]


def test_events_older_than_the_cache_are_read_back_in_order(state):
    e = LmdbEdge(plan("block", capacity=10_000), state.store, "g")
    for start in range(0, 5000, 1000):
        e.offer(events(start, 1000))
    assert len(e.cache) < 5000
    taken: list[int] = []
    while batch := e.take(777):
        taken.extend(ids(batch))
        e.ack(len(batch))
    assert taken == list(range(5000))


def test_coalesce_merges_into_events_recovered_after_a_restart(state):
    p = plan("coalesce", capacity=10, key=("k",), merge=(("n", "sum"),))
    e = LmdbEdge(p, state.store, "g")
    e.offer(events(0, 3))  # keys 0, 1, 2
    e = LmdbEdge(p, state.restart(), "g")
    e.offer(events(3, 3))  # each merges into the recovered event with its key
    assert [(x["k"], x["n"], x["i"]) for x in e.take(10)] == [(0, 2, 3), (1, 2, 4), (2, 2, 5)]
    assert e.coalesced == 3


def test_coalesce_merges_into_recovered_events_without_reading_each_back(state, monkeypatch):
    p = plan("coalesce", capacity=100, key=("k",), merge=(("n", "sum"),))

    def keyed(start: int) -> list[dict[str, object]]:
        return [{"i": i, "k": i % 50, "n": 1} for i in range(start, start + 50)]

    e = LmdbEdge(p, state.store, "g")
    e.offer(keyed(0))
    e = LmdbEdge(p, state.restart(), "g")
    reads: list[int] = []
    real_get = e.table.get
    monkeypatch.setattr(e.table, "get", lambda seq: reads.append(seq) or real_get(seq))
    for start in (50, 100, 150):
        assert e.offer(keyed(start)) == []  # keys 0..49 again: every one merges
    assert reads == []
    assert stored(state.store, e) == list(range(150, 200))  # merged in place, nothing appended
    assert [(x["k"], x["n"], x["i"]) for x in e.take(100)] == [(k, 4, 150 + k) for k in range(50)]


def test_after_a_crash_two_stored_events_can_share_a_key_and_the_later_takes_merges(state):
    p = plan("coalesce", capacity=10, key=("k",), merge=(("n", "sum"),))
    e = LmdbEdge(p, state.store, "g")
    e.offer([{"k": "a", "n": 1, "i": 0}])
    e.take(1)  # in flight: a new "a" is queued beside it
    e.offer([{"k": "a", "n": 10, "i": 1}])
    e = LmdbEdge(p, state.restart(), "g")  # crash: both are waiting now
    e.offer([{"k": "a", "n": 100, "i": 2}])
    assert e.take(10) == [{"k": "a", "n": 1, "i": 0}, {"k": "a", "n": 110, "i": 2}]
    e.offer([{"k": "a", "n": 1000, "i": 3}])  # both in flight: a new event again
    assert e.take(10) == [{"k": "a", "n": 1000, "i": 3}]

def test_the_map_grows_from_a_tiny_start(tmp_path):
    store = LmdbStore(tmp_path, map_size=64 * KiB)
    e = LmdbEdge(plan("block", capacity=100_000), store, "g")
    for start in range(0, 20_000, 1000):
        assert e.offer(events(start, 1000, pad=150)) == []
    assert store.env.info()["map_size"] > 64 * KiB
    store.close()
    store = LmdbStore(tmp_path, map_size=64 * KiB)
    assert LmdbEdge(plan("block", capacity=100_000), store, "g").depth == 20_000
    store.close()


@pytest.mark.parametrize("policy", ["block", "drop_newest"])
def test_at_the_size_limit_the_edge_behaves_as_full_and_warns_once(tmp_path, caplog, policy):
    store = LmdbStore(tmp_path, map_size=64 * KiB, max_map_size=256 * KiB, sync=False)
    e = LmdbEdge(plan(policy, capacity=100_000), store, "g")
    start = 0
    with caplog.at_level(logging.WARNING, logger="headrace"):
        while e.offer(events(start, 100, pad=200)) == [] and e.dropped == 0:
            start += 100
        accepted = start
        batch = events(start, 100, pad=200)
        assert e.offer(batch) == (batch if policy == "block" else [])  # still full
    assert 0 < accepted < 100_000 and e.depth == accepted
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("durable edge 'a->b' is at its size limit (256 KiB): ")
    if policy == "drop_newest":
        assert e.dropped == 200 and e.enqueued == accepted + 200
    assert e.enqueued == e.delivered + e.dropped + e.coalesced + e.depth
    e.ack(len(e.take(accepted)))  # the consumer catches up: room again
    assert e.offer(events(start, 100, pad=200)) == [] and e.depth == 100
    assert store.env.info()["map_size"] <= 256 * KiB
    store.close()


DISK_FULL_CHILD = """
import resource, signal, sys
from pathlib import Path
from adapters.storage.lmdb_edge import LmdbEdge
from adapters.storage.lmdb_store import LmdbStore
from engine.plan import EdgePlan
from engine.policies import POLICY_NAMES
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
store = LmdbStore(Path(sys.argv[1]))
edge = LmdbEdge(EdgePlan("a->b", "a", "out", "b", 10**6, "block", durable=True), store, "g")
resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))  # the disk holds 1 MiB
accepted = 0
for start in range(0, 10**5, 100):
    if edge.offer([{"i": i, "pad": "x" * 200} for i in range(start, start + 100)]):
        break
    accepted += 100
print(accepted)
"""


def test_a_full_disk_refuses_writes_and_keeps_what_was_committed(tmp_path):
    done = subprocess.run([sys.executable, "-c", DISK_FULL_CHILD, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    accepted = int(done.stdout)
    assert 0 < accepted < 10**5
    assert "durable edge 'a->b' cannot be written: no space left" in done.stderr
    store = LmdbStore(tmp_path)
    e = LmdbEdge(plan("block", capacity=10**6), store, "g")
    assert ids(e.take(10**6)) == list(range(accepted))
    store.close()


def test_a_file_that_is_not_lmdb_is_refused_with_its_path_and_the_fix(tmp_path):
    (tmp_path / "data.mdb").write_bytes(bytes(range(256)) * 64)
    with pytest.raises(DurableStorageError) as caught:
        LmdbStore(tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message and "move it aside; it is not a Headrace state directory" in message
    assert "\n" not in message


def test_a_file_where_the_directory_should_be_is_refused(tmp_path):
    (tmp_path / "edges").write_text("not a directory")
    with pytest.raises(DurableStorageError, match="is not a directory: move it aside"):
        LmdbStore(tmp_path / "edges")


def test_one_environment_per_directory_and_process(tmp_path):
    first = LmdbStore(tmp_path)
    second = LmdbStore(tmp_path / "." / "")
    assert second.env is first.env
    first.close()
    e = LmdbEdge(plan(), second, "g")  # still open for the second store
    assert e.offer(events(0, 1)) == []
    second.close()


def test_a_newer_edge_on_the_same_database_takes_it_over(state):
    old = LmdbEdge(plan(), state.store, "g")
    old.offer(events(0, 2))
    new = LmdbEdge(plan(), state.store, "g")  # a reloaded graph: built while the old one drains
    old.offer(events(2, 1))
    assert new.depth == 3  # loaded on first use, after the old one stopped
    with pytest.raises(DurableStorageError, match="in use by a newer version of the graph"):
        old.take(1)


def test_positions_are_saved_with_the_offer_that_completes_the_batch(state):
    e = LmdbEdge(plan("block", capacity=2), state.store, "g")
    e.stage_checkpoint("a", "after-3")
    rest = e.offer(events(0, 3))
    assert e.checkpoint("a") == ""  # one event is still refused: not yet
    e.ack(len(e.take(2)))
    assert e.offer(rest) == []
    assert e.checkpoint("a") == "after-3"
    e.stage_checkpoint("b#state", "seen")  # the consumer's state goes with its acknowledgement
    e.offer(events(3, 1))
    assert e.checkpoint("b#state") == ""
    e.ack(len(e.take(1)))
    assert LmdbEdge(plan("block", capacity=2), state.restart(), "g").checkpoint("b#state") == "seen"


def test_an_event_that_is_not_json_stops_with_one_line(state):
    e = LmdbEdge(plan(), state.store, "g")
    with pytest.raises(DurableStorageError, match="durable edge 'a->b': an event cannot be stored as JSON"):
        e.offer([{"i": object()}])


def test_a_stored_value_that_cannot_be_read_stops_with_one_line(state):
    e = LmdbEdge(plan(), state.store, "g")
    e.offer(events(0, 1))
    state.store.write(lambda txn: txn.put(b"\0" * 8, b"{not json", db=e.table.db))
    e = LmdbEdge(plan(), state.restart(), "g")
    with pytest.raises(DurableStorageError, match=r"'g/a->b' holds an event that cannot be read .*: move it aside"):
        e.take(1)


READER = """
import sys, time, lmdb
env = lmdb.open(sys.argv[1], max_dbs=4096)
txn = env.begin() if sys.argv[2] == "read" else None
print("open", flush=True)
time.sleep(60)
"""


def open_elsewhere(directory: Path, read: bool) -> subprocess.Popen[str]:
    """Another process with the environment open, inside a read transaction or not."""
    child = subprocess.Popen([sys.executable, "-c", READER, str(directory), "read" if read else "hold"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "open"
    return child


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)


def test_maintain_clears_the_reader_slot_of_a_killed_process(tmp_path):
    store = LmdbStore(tmp_path)
    kill(open_elsewhere(tmp_path, read=True))
    assert store.maintain() >= 1
    assert store.maintain() == 0
    store.close()


def test_opening_clears_reader_slots_that_killed_processes_left(tmp_path):
    # Opened by no other process, LMDB resets the reader table itself; another process
    # keeping the environment open keeps the stale slot, which the store clears.
    LmdbStore(tmp_path).close()
    holder = open_elsewhere(tmp_path, read=False)
    kill(open_elsewhere(tmp_path, read=True))
    store = LmdbStore(tmp_path)
    kill(holder)
    assert store.cleared_at_open >= 1
    store.close()


GRAPH = """\
version: 1
defaults:
  edge: {storage: lmdb, capacity: 64}
nodes:
  numbers: {type: test.numbers, with: {count: 1000, keys: 7}}
  doubled: {type: map, from: numbers, with: {set: {twice: i * 2}}}
  out: {type: test.record, from: doubled}
"""


def test_a_graph_runs_on_durable_edges_and_leaves_them_empty(tmp_path):
    store = LmdbStore(tmp_path)
    runtime = build(GRAPH, durable=durable_edges(store))
    assert asyncio.run(runtime.run())
    assert [e["twice"] for e in RECORDED["out"]] == [i * 2 for i in range(1000)]
    for edge in runtime.edges.values():
        assert isinstance(edge, LmdbEdge) and stored(store, edge) == []
        assert edge.counters()["high_water"] <= 64
    store.close()


# -- a model of the queue ---------------------------------------------------------------


Entry = tuple[int, int, int]  # an event as (i, k, n): coalesce sums n and keeps the newest i


def entry(event: dict[str, object]) -> Entry:
    return int(str(event["i"])), int(str(event["k"])), int(str(event["n"]))


class Model:
    """What the database should hold: `stored` (oldest first), the first `in_flight` taken."""

    def __init__(self, policy: str, capacity: int) -> None:
        self.policy = policy
        self.capacity = capacity
        self.stored: list[Entry] = []
        self.in_flight = 0

    def offer(self, batch: list[Entry]) -> list[Entry]:
        room = max(self.capacity - len(self.stored), 0)
        if self.policy in ("block", "drop_newest"):
            self.stored += batch[:room]
            return batch[room:] if self.policy == "block" else []
        if self.policy == "coalesce":
            return self.coalesce(batch)
        taken, waiting = self.stored[:self.in_flight], self.stored[self.in_flight:]
        if self.policy == "keep_latest":
            self.stored = taken + batch[-1:] if batch else self.stored
        else:  # drop_oldest: the newest that fit beside what is in flight
            slots = max(self.capacity - self.in_flight, 0)
            waiting += batch
            self.stored = taken + waiting[max(len(waiting) - slots, 0):] if slots else taken
        return []

    def coalesce(self, batch: list[Entry]) -> list[Entry]:
        for index, (i, k, n) in enumerate(batch):
            # Merges go to the last waiting event with the key (after a crash there can be two).
            queued = [at for at in range(self.in_flight, len(self.stored)) if self.stored[at][1] == k]
            if queued:
                _, _, total = self.stored[queued[-1]]
                self.stored[queued[-1]] = (i, k, total + n)
            elif len(self.stored) < self.capacity:
                self.stored.append((i, k, n))
            else:
                return batch[index:]
        return []

    def take(self, n: int) -> list[Entry]:
        out = self.stored[self.in_flight:self.in_flight + n]
        self.in_flight += len(out)
        return out

    def ack(self, n: int) -> None:
        del self.stored[:n]
        self.in_flight -= n


STEPS = st.lists(st.tuples(st.sampled_from(["offer"] * 3 + ["take"] * 3 + ["ack"] * 2 + ["crash", "restart"]),
                           st.integers(0, 7)),
                 max_size=30)


@settings(max_examples=300, deadline=None)
@given(policy=st.sampled_from(POLICY_NAMES),
       capacity=st.integers(1, 6), cache_limit=st.sampled_from([0, 2, 2048]), steps=STEPS)
def test_the_edge_matches_a_model_across_crashes(tmp_path_factory, policy, capacity, cache_limit, steps):
    restartable = Restartable(tmp_path_factory.mktemp("model"), sync=False)
    p = plan(policy, capacity, key=("k",), merge=(("n", "sum"),))
    e = LmdbEdge(p, restartable.store, "g")
    e.cache_limit = cache_limit  # small: most events are read back from the database
    model = Model(policy, capacity)
    produced = 0
    held: list[dict[str, object]] = []  # what a blocked producer keeps
    for step, n in steps:
        if step == "offer":
            batch = held + events(produced, n)
            produced += n
            expected = model.offer([entry(x) for x in batch])
            held = e.offer(batch)
            assert [entry(x) for x in held] == expected
        elif step == "take":
            assert [entry(x) for x in e.take(n)] == model.take(n)
        elif step == "ack":
            n = min(n, model.in_flight)
            e.ack(n)
            model.ack(n)
        else:
            if step == "restart":  # a clean stop: the consumer handed everything on first
                e.ack(model.in_flight)
                model.ack(model.in_flight)
            model.in_flight = 0  # a crash forgets the cursor: everything stored comes again
            e = LmdbEdge(p, restartable.restart(), "g")
            e.cache_limit = cache_limit
        assert restartable.store.read(lambda txn, e=e: [entry(decode([v])[0]) for _, v in txn.cursor(e.table.db)]) \
            == model.stored
        assert e.depth == len(model.stored) - model.in_flight
        assert e.enqueued == e.delivered + e.dropped + e.coalesced + e.depth
    restartable.store.close()



def test_an_edges_checkpoint_prefix_matches_its_keys_only():
    prefix = checkpoint_prefix("g", "a->b")
    assert checkpoint_key("g", "a->b", "sink").startswith(prefix)
    assert checkpoint_key("g", "a->b", 'o"dd\u00e9').startswith(prefix)
    assert not checkpoint_key("g", "a->bc", "sink").startswith(prefix)
    assert not checkpoint_key("gg", "a->b", "sink").startswith(prefix)
    assert edge_of(database_name("g", "a->b")) == ("g", "a->b") and edge_of(b"#checkpoints") is None
