"""A partial reload on a running runtime (engine/node_swap.py): the cases where kept and
replaced nodes meet in unusual ways — a finished producer, a carried fused source with a
dead-letter port, a stuck consumer removed, a tap on a replaced edge."""

import asyncio
import textwrap

from engine.runtime import Runtime
from loader.api import load_text
from tests.runtime_support import RECORDED
from tests.runtime_support import test_registry as make_registry


def plan(text: str, registry):
    loaded = load_text("g.yaml", textwrap.dedent(text), registry)
    assert loaded.plan is not None, [str(p) for p in loaded.problems]
    return loaded.plan


async def stop(rt: Runtime, task: asyncio.Task) -> None:
    rt.request_stop()
    assert await asyncio.wait_for(task, 5), rt.failure


async def reload(rt: Runtime, text: str, registry, drain_timeout_s: float = 5.0):
    new = plan(text, registry)
    changes = rt.diff(new)
    assert not changes.whole_swap, changes.whole_swap
    dropped = await rt.replace_nodes(new, changes, drain_timeout_s)
    return changes, dropped


FINISHED = """
version: 2
nodes:
  a: {type: test.numbers, with: {count: 10}}
  ra: {type: test.record, from: a}
  b: {type: generate, with: {rate: 200, fields: {n: i}}}
  rb: {type: "null", from: b}
"""


def test_a_new_consumer_of_a_finished_producer_sees_the_end():
    registry = make_registry()

    async def scenario():
        rt = Runtime(plan(FINISHED, registry), registry)
        task = asyncio.ensure_future(rt.run())
        while not rt.runners["a"].finished:
            await asyncio.sleep(0.01)
        changes, _ = await reload(rt, FINISHED + "  c: {type: test.record, from: a}\n", registry)
        assert changes.added == ("c",) and "a" in changes.kept
        for _ in range(100):
            if rt.runners["c"].finished:
                break
            await asyncio.sleep(0.01)
        assert rt.runners["c"].finished  # its input was closed: a finished `a` sends nothing more
        await stop(rt, task)

    asyncio.run(scenario())
    assert len(RECORDED["ra"]) == 10 and RECORDED["c"] == []


DEAD_LETTERS = """
version: 2
nodes:
  ticks:
    type: generate
    with: {rate: 2000, fields: {n: i, q: "100 // (i % 5)"}}
    on_error: dead_letter
  m: {type: map, from: ticks, with: {set: {v: "n * 1"}}}
  out: {type: test.record, from: m}
  dead: {type: test.record, from: {node: ticks, port: errors, edge: {capacity: 16}}}
"""


def test_a_carried_fused_source_keeps_feeding_its_dead_letters():
    registry = make_registry()

    async def scenario():
        rt = Runtime(plan(DEAD_LETTERS, registry), registry)
        assert [s.members for s in rt.segments] == [["ticks", "m"]]
        task = asyncio.ensure_future(rt.run())
        while len(RECORDED.get("dead", [])) < 20:
            await asyncio.sleep(0.01)
        changes, _ = await reload(rt, DEAD_LETTERS.replace('"n * 1"', '"n * 2"'), registry)
        # The source goes on inside a new chain; every edge it feeds is new, so `dead` too.
        assert changes.kept == ("ticks",) and changes.carried == ("ticks",)
        assert changes.replaced == ("dead", "m", "out")
        while len(RECORDED["out"]) < 400:  # 16 dead letters would fill an edge nobody read
            await asyncio.sleep(0.01)
        await stop(rt, task)

    asyncio.run(scenario())
    out = [e["n"] for e in RECORDED["out"]]
    dead = RECORDED["dead"]  # what the new `dead` recorded
    assert dead and all(e["node"] == "ticks" for e in dead), dead[:1]
    assert out == sorted(out) and len(set(out)) == len(out)  # neither repeated nor reordered
    # The new map's results only, but for what the old `out` drained after the new one was
    # built (both record into the same list): old results first, then only the new map's.
    ratios = [e["v"] // e["n"] for e in RECORDED["out"] if e["n"]]
    assert ratios == sorted(ratios) and ratios[-1] == 2 and set(ratios) <= {1, 2}


STUCK = """
version: 2
nodes:
  p: {type: generate, with: {rate: 5000, fields: {n: i}}}
  keep: {type: test.record, from: p}
  slow:
    type: map
    from: {node: p, edge: {capacity: 4}}
    with: {set: {v: "1 // (n - n)"}}
    on_error: {action: retry, attempts: 5, backoff: 10s}
  rec: {type: test.record, from: slow}
"""
UNSTUCK = """
version: 2
nodes:
  p: {type: generate, with: {rate: 5000, fields: {n: i}}}
  keep: {type: test.record, from: p}
"""


def test_removing_a_stuck_consumer_drops_what_it_held_and_the_rest_goes_on():
    registry = make_registry()

    async def scenario():
        rt = Runtime(plan(STUCK, registry), registry)
        task = asyncio.ensure_future(rt.run())
        while not rt.runners["p"].backlog:  # the edge to the retrying map is full
            await asyncio.sleep(0.01)
        held = sum(len(events) for _, events in rt.runners["p"].backlog)
        changes, dropped = await reload(rt, UNSTUCK, registry, drain_timeout_s=0.05)
        assert changes.removed == ("rec", "slow")
        assert dropped >= held + 4  # the full edge, the producer's refused events, the pending one
        before = len(RECORDED["keep"])
        await asyncio.sleep(0.3)
        assert len(RECORDED["keep"]) > before + 100  # the kept producer was not left stuck
        assert rt.runners["p"].backlog == []
        await stop(rt, task)

    asyncio.run(scenario())


TAPPED = """
version: 2
nodes:
  ticks: {type: generate, with: {rate: 2000, fields: {n: i}}}
  copy: {type: "null", from: ticks}
  out: {type: test.record, from: ticks}
"""


def test_a_tap_on_an_edge_whose_options_change_goes_on():
    registry = make_registry()
    seen: list[int] = []

    async def scenario():
        rt = Runtime(plan(TAPPED, registry), registry)
        task = asyncio.ensure_future(rt.run())
        rt.controls.tap("ticks->out", lambda batch: seen.extend(e["n"] for e in batch))
        while len(seen) < 50:
            await asyncio.sleep(0.01)
        before = rt.edges["ticks->out"]
        wider = TAPPED.replace("out: {type: test.record, from: ticks}",
                               "out: {type: test.record, from: {node: ticks, edge: {capacity: 8}}}")
        changes, _ = await reload(rt, wider, registry)
        assert changes.replaced == ("out",) and rt.edges["ticks->out"] is not before
        assert rt.edges["ticks->out"].enqueued >= before.enqueued  # its counts go on too
        count = len(seen)
        while len(seen) < count + 50:
            await asyncio.sleep(0.01)
        await stop(rt, task)

    asyncio.run(scenario())
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


CHAINED = """
version: 2
nodes:
  ticks: {type: generate, with: {count: 5000, fields: {n: i}}}
  a: {type: map, from: ticks, with: {set: {m: "n + 1"}}}
  b: {type: filter, from: a, with: {where: "m > 0"}}
  out: {type: test.record, from: b}
"""


def test_a_tap_inside_a_fused_chain_is_asked_per_event_only_while_it_wants_more():
    """A sampling tap (returns False) costs one call per batch; a plain observer sees every
    event. Both see what the edge would deliver, in order."""
    registry = make_registry()
    every: list[int] = []
    calls: list[int] = []

    def sample(batch):
        calls.append(batch[0]["m"])
        return False

    async def scenario():
        rt = Runtime(plan(CHAINED, registry), registry, budget=100)
        assert [s.members for s in rt.segments] == [["ticks", "a", "b"]]
        rt.controls.tap("a->b", lambda batch: every.extend(e["m"] for e in batch))
        rt.controls.tap("a->b", sample)
        assert await rt.run()

    asyncio.run(scenario())
    assert every == list(range(1, 5001))
    assert calls == list(range(1, 5001, 100))  # the first event of each batch of 100
