"""Partitioned nodes on the `local` executor: the same results as the unpartitioned graph
(as multisets; per key in order), per-instance counters beside their sums, routing by
`stable_hash`, round-robin, windows, `engine test`, pause/resume and a graceful stop."""

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.node import VirtualClock
from engine.stable_hash import stable_hash
from tests.partition_support import assert_same_results, chain_graph, steps_strategy, user_totals
from tests.runtime_support import RECORDED, build, run_graph


def outputs(text: str, sink: str = "out", **kwargs: object) -> list[dict[str, object]]:
    runtime, ok = run_graph(text, **kwargs)
    assert ok, runtime.failure
    return list(RECORDED[sink])


def node_stats(runtime) -> dict[str, dict[str, object]]:
    nodes = runtime.stats()["nodes"]
    assert isinstance(nodes, dict)
    return nodes


def test_the_shipped_example_gives_the_unpartitioned_totals_at_every_parallelism():
    expected = outputs(user_totals(3000, None))
    assert len(expected) == 97  # one total per user
    for n in (1, 2, 3):
        for fuse in (True, False):
            assert_same_results(outputs(user_totals(3000, n), fuse=fuse), expected)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps_strategy, count=st.integers(1, 400), keys=st.integers(1, 6))
def test_generated_chains_give_the_unpartitioned_results(steps, count, keys):
    expected = outputs(chain_graph(count, keys, steps, partitioned=False))
    assert_same_results(outputs(chain_graph(count, keys, steps)), expected)


def test_each_instance_and_the_node_sum_show_in_the_stats():
    runtime, ok = run_graph(user_totals(3000, 2))
    assert ok, runtime.failure
    nodes = node_stats(runtime)
    for member in ("scored", "per_user"):
        parts = [nodes[f"{member}[{i}]"] for i in range(2)]
        total = nodes[member]
        assert total["instances"] == 2
        assert total["in"] == sum(p["in"] for p in parts) == 3000
        assert total["out"] == sum(p["out"] for p in parts)
        assert total["errors"] == 0
        assert total["busy_s"] >= max(p["busy_s"] for p in parts)
    assert nodes["per_user"]["out"] == 97 == nodes["out"]["in"]
    route = nodes["scored[route]"]  # the router: one port per instance
    assert route["ports"] == {str(i): nodes[f"scored[{i}]"]["in"] for i in range(2)}
    assert "per_user[2]" not in nodes


def test_an_event_goes_to_the_instance_its_key_hashes_to():
    users = [f"u{i % 11}" for i in range(500)]
    runtime, ok = run_graph("""
        version: 2
        nodes:
          src:
            type: generate
            with: {count: 500, fields: {user: "'u' + str(i % 11)", amount: i}}
          m:
            type: map
            from: {node: src, edge: {partition_by: user}}
            parallelism: 3
            with: {set: {instance: "stable_hash(user) % 3"}}
          out:
            type: test.record
            from: m
    """)
    assert ok, runtime.failure
    nodes = node_stats(runtime)
    for i in range(3):
        assert nodes[f"m[{i}]"]["in"] == sum(1 for u in users if stable_hash(u) % 3 == i)
    # Per key, the order of the source: every user's events went through one instance.
    assert [e["amount"] for e in RECORDED["out"] if e["user"] == "u3"] == list(range(3, 500, 11))


def test_a_stateless_map_without_partition_by_deals_events_round_robin():
    runtime, ok = run_graph("""
        version: 2
        nodes:
          src:
            type: generate
            with: {count: 2500, fields: {n: i}}
          m:
            type: map
            from: src
            parallelism: 3
            with: {set: {twice: "n * 2"}}
          out:
            type: test.record
            from: m
    """, budget=100)  # many batches: the deal goes on across them
    assert ok, runtime.failure
    nodes = node_stats(runtime)
    assert [nodes[f"m[{i}]"]["in"] for i in range(3)] == [834, 833, 833]
    assert sorted(e["twice"] for e in RECORDED["out"]) == [2 * n for n in range(2500)]


WINDOWED = """
    version: 2
    nodes:
      src:
        type: generate
        with: {count: 60, fields: {user: "'u' + str(i % 4)", amount: i}}
      paced:
        type: throttle
        from: src
        with: {rate: 5, per: 1s, when_exceeded: delay}
      w:
        type: aggregate
        from: FROM
        PARALLELISM
        with: {by: user, window: {type: tumbling, size: 2s}, fields: {n: "count()", total: "sum(amount)"}}
      out:
        type: test.record
        from: w
"""


def test_a_processing_time_window_closes_on_time_inside_an_instance():
    plain = WINDOWED.replace("FROM", "paced").replace("PARALLELISM", "")
    parted = WINDOWED.replace("FROM", "{node: paced, edge: {partition_by: user}}").replace(
        "PARALLELISM", "parallelism: 2")
    expected = outputs(plain, clock=VirtualClock(1000.0))
    clock = VirtualClock(1000.0)
    got = outputs(parted, clock=clock)
    assert clock.now() >= 1011.0  # 60 events at 5 a second: the windows closed on the clock
    starts = {e["window_start"] for e in got}
    assert len(starts) >= 6, starts  # one window per 2 virtual seconds, not one at the end
    assert_same_results(got, expected)


GRAPH_TEST = """\
version: 1
graph: windows.yaml
tests:
  - name: totals per user, one window per virtual minute, in two instances
    inputs:
      src:
        events:
          - {user: a, amount: 1}
          - {user: b, amount: 2}
          - {user: a, amount: 3}
          - {user: b, amount: 4}
        every: 40s
    expect:
      out:
        count: 4
        all: "n == 1"
    stats:
      nodes: {w: {in: 4, out: 4}}
  - name: what one user sent stays in its order
    inputs:
      src: [{user: a, amount: 1}, {user: a, amount: 2}, {user: a, amount: 3}]
    expect:
      out:
        equals: [{user: a, n: 3, total: 6, first: 1, window_start: 1704067200.0, window_end: 1704067260.0}]
"""

GRAPH_FOR_TEST = """\
version: 2
nodes:
  src:
    type: generate
    with: {count: 1, fields: {user: "'a'", amount: i}}
  w:
    type: aggregate
    from: {node: src, edge: {partition_by: user}}
    parallelism: 2
    with: {by: user, window: {type: tumbling, size: 1m}, fields: {n: count(), total: sum(amount), first: first(amount)}}
  out:
    type: stdout
    from: w
"""


def test_engine_test_runs_graph_tests_of_a_partitioned_graph(cli, tmp_path):
    (tmp_path / "windows.yaml").write_text(GRAPH_FOR_TEST)
    (tmp_path / "windows.test.yaml").write_text(GRAPH_TEST)
    code, out, err = cli("test", str(tmp_path / "windows.test.yaml"))
    assert code == 0, out + err
    assert "2 passed" in out, out


PAUSABLE = """
    version: 2
    nodes:
      src:
        type: test.numbers
        with: {count: 50000, keys: 5}
      m:
        type: map
        from: {node: src, edge: {partition_by: k, capacity: 64}}
        parallelism: 2
        with: {set: {j: "i + 1"}}
      per_k:
        type: aggregate
        from: m
        parallelism: 2
        with: {by: k, fields: {n: "count()"}}
      out:
        type: test.record
        from: per_k
"""


def test_pausing_a_partitioned_node_pauses_every_instance_and_resume_finishes():
    runtime = build(PAUSABLE)
    assert runtime.controls.pause("per_k")  # a member of the stage: its instances pause

    async def run() -> dict[str, dict[str, object]]:
        task = asyncio.ensure_future(runtime.run())
        for _ in range(200):
            await asyncio.sleep(0.01)
            edges = [runtime.edges[f"m[route].{i}->m[{i}]"] for i in range(2)]
            if any(e.depth >= 64 for e in edges):
                break
        assert any(e.depth >= 64 for e in edges)  # one is full: the router waits for room
        paused = node_stats(runtime)
        assert not task.done()
        runtime.controls.resume("per_k")
        assert await asyncio.wait_for(task, 60), runtime.failure
        return paused

    paused = asyncio.run(run())
    assert paused["m[0]"]["in"] == paused["m[1]"]["in"] == 0  # backed up at the instances' edges
    assert paused["src"]["out"] < 50000
    assert sorted(e["n"] for e in RECORDED["out"]) == [10000] * 5


def test_a_graceful_stop_drains_the_instances_and_flushes_their_totals():
    runtime = build(PAUSABLE.replace("count: 50000", "count: 100000000"))

    async def run() -> bool:
        task = asyncio.ensure_future(runtime.run())
        while node_stats(runtime)["m"]["in"] < 5000:
            await asyncio.sleep(0.01)
        runtime.request_stop()
        return await asyncio.wait_for(task, 30)

    assert asyncio.run(run()), runtime.failure
    nodes = node_stats(runtime)
    emitted = nodes["src"]["out"]
    assert nodes["m"]["in"] == nodes["per_k"]["in"] == emitted  # everything emitted drained
    assert sum(e["n"] for e in RECORDED["out"]) == emitted  # and every total came out
    assert len(RECORDED["out"]) == 5

