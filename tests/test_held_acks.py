"""A durable edge keeps what its consumer handed on to memory edges until it has left the
graph: a crash then loses nothing that was on the memory edges or in a sink's hands
(engine/durability.py's held acknowledgements)."""

import asyncio
import contextlib

from adapters.storage.lmdb_edge import durable_edges
from adapters.storage.lmdb_store import LmdbStore
from tests.runtime_support import RECORDED, build

COUNT = 6000
GRAPH = f"""
version: 2
name: held
nodes:
  src: {{type: generate, with: {{count: {COUNT}, fields: {{n: i}}}}}}
  doubled: {{type: map, from: {{node: src, edge: {{durable: true, capacity: 512}}}}, with: {{set: {{twice: n * 2}}}}}}
  out: {{type: test.slow_record, from: {{node: doubled, edge: {{capacity: 256}}}}}}
"""


async def _crash_after(runtime, written: int) -> None:
    """Runs the graph until the sink has written `written` events, then stops it the way a
    kill would: nothing after that moment is acknowledged."""
    task = asyncio.ensure_future(runtime.run())
    while len(RECORDED.get("out", [])) < written:
        await asyncio.sleep(0.001)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_events_on_memory_edges_after_a_durable_one_come_again_after_a_crash(tmp_path):
    store = LmdbStore(tmp_path)
    first = build(GRAPH, durable=durable_edges(store))
    asyncio.run(_crash_after(first, 1500))
    before = {e["n"] for e in RECORDED["out"]}
    assert len(before) < COUNT  # the crash came mid-stream
    store.close()

    store = LmdbStore(tmp_path)
    second = build(GRAPH, durable=durable_edges(store))
    assert asyncio.run(second.run())
    after = {e["n"] for e in RECORDED["out"]}
    # Nothing lost: what the sink had not written when the graph died is delivered again.
    assert before | after == set(range(COUNT))
    assert all(e["twice"] == e["n"] * 2 for e in RECORDED["out"])
    edge = second.edges["src->doubled"]
    assert edge.storage_counters()["durable_bytes"] == 0  # every event acknowledged in the end
    store.close()


def test_a_steady_stream_is_acknowledged_as_it_flows(tmp_path):
    """Held acknowledgements never wedge the graph: the durable edge's capacity bounds what is
    held, the nodes after it catch up, and the edge ends empty."""
    store = LmdbStore(tmp_path)
    runtime = build(GRAPH, durable=durable_edges(store))
    assert asyncio.run(runtime.run())
    assert sorted(e["n"] for e in RECORDED["out"]) == list(range(COUNT))
    edge = runtime.edges["src->doubled"]
    assert edge.counters()["high_water"] <= 512
    assert edge.storage_counters()["durable_bytes"] == 0
    store.close()
