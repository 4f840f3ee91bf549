"""A node with several inputs reads them in a fixed rotation (docs/edges.md, "Ordering and
fan-out"): each turn starts at the input after the one the last turn started at, and a turn
whose first input has less than the batch budget goes on to the next inputs in order."""

import asyncio

import pytest

from tests.runtime_support import RECORDED, build

GRAPH = """
version: 2
nodes:
  a: {{type: generate, with: {{count: {a}, fields: {{s: "'a'", n: i}}}}}}
  b: {{type: generate, with: {{count: {b}, fields: {{s: "'b'", n: i}}}}}}
  c: {{type: generate, with: {{count: {c}, fields: {{s: "'c'", n: i}}}}}}
  sink: {{type: test.record, from: [a, b, c]}}
"""


def read_order(counts: dict[str, int], budget: int) -> str:
    """The order `sink` read its inputs in, once every input already held all its events
    (the sink is paused until the sources have finished, then resumed)."""
    runtime = build(GRAPH.format(**counts), budget=budget)
    runtime.controls.pause("sink")

    async def run() -> None:
        task = asyncio.ensure_future(runtime.run())
        edges = {name: runtime.edges[f"{name}->sink"] for name in counts}
        for _ in range(1000):
            if all(edges[name].depth == count for name, count in counts.items()):
                break
            await asyncio.sleep(0.01)
        assert {name: edge.depth for name, edge in edges.items()} == counts
        runtime.controls.resume("sink")
        assert await asyncio.wait_for(task, 30)

    asyncio.run(run())
    return " ".join(f"{e['s']}{e['n']}" for e in RECORDED["sink"])


@pytest.mark.parametrize(("counts", "order"), [
    # Turns of 4: a, b, c, then a, b, c again.
    ({"a": 8, "b": 8, "c": 8}, "a0 a1 a2 a3  b0 b1 b2 b3  c0 c1 c2 c3  a4 a5 a6 a7  b4 b5 b6 b7  c4 c5 c6 c7"),
    # a runs short in the first turn, which fills up from b; the second turn starts at b,
    # the fourth at a (empty: b, then c), the fifth at b (empty: c).
    ({"a": 2, "b": 8, "c": 8}, "a0 a1 b0 b1  b2 b3 b4 b5  c0 c1 c2 c3  b6 b7 c4 c5  c6 c7"),
], ids=["even", "one-short"])
def test_several_inputs_are_read_in_a_fixed_rotation(counts: dict[str, int], order: str) -> None:
    assert read_order(counts, budget=4) == " ".join(order.split())
