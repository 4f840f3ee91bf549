"""Property: on deterministic graphs, a partial reload gives the same output multiset as a
whole-graph swap, for random edits of random plans.

Each case runs a random graph of maps, filters and routes fed by a test source, feeds half
the events, waits until the graph holds nothing, applies a random edit (partially in one
run, as a whole swap in the other), feeds the rest and compares what every sink received.
"""

import asyncio
import random
import textwrap
from collections import Counter

import pytest

from engine.node import Batch, Failures, NodeContext, Source, Transform
from engine.runtime import Runtime
from engine.spec import SINK, SOURCE
from loader.api import load_text
from tests.runtime_support import _spec, param
from tests.runtime_support import test_registry as make_registry

FEED: dict[str, object] = {"events": [], "next": 0, "closed": False}
BAG: dict[str, list[tuple[object, ...]]] = {}


class Feed(Source):
    """Events the test appended to FEED; a new instance continues where the last one stopped."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.clock = ctx.clock
        self.idle_until = 0.0

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        events = FEED["events"]
        start = FEED["next"]
        assert isinstance(events, list) and isinstance(start, int)
        end = min(len(events), start + budget)
        outs[0].extend(dict(e) for e in events[start:end])
        FEED["next"] = end
        self.idle_until = 0.0 if end > start else now + 0.002
        return not (FEED["closed"] and end >= len(events))

    def deadline(self) -> float:
        return self.idle_until


class Bag(Transform):
    """A sink that records (its tag, each event's fields) in BAG, across instances."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.tag = str(_param(ctx, "tag"))

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        BAG.setdefault(self.ctx.name, []).extend((self.tag, *sorted(e.items())) for e in batch)
        return len(batch)


def _param(ctx: NodeContext, name: str) -> object:
    params = ctx.params
    return params.get(name, "") if isinstance(params, dict) else getattr(params, name, "")


def registry():
    reg = make_registry()
    reg.register(_spec("test.feed", SOURCE, Feed, {}))
    reg.register(_spec("test.bag", SINK, Bag, {"tag": param({"type": "string"}, "a label", "a")}))
    return reg


def random_graph(rng: random.Random) -> dict[str, dict[str, object]]:
    """name -> {type, from, with, capacity}: a random DAG over `src`, every leaf a sink."""
    nodes: dict[str, dict[str, object]] = {"src": {"type": "test.feed"}}
    outputs = ["src"]
    for j in range(rng.randint(2, 5)):
        name = f"n{j}"
        upstream = rng.choice(outputs)
        kind = rng.choice(["map", "filter", "route"])
        nodes[name] = {"type": kind, "from": upstream, "capacity": rng.choice([4, 64, 1024])}
        nodes[name]["with"] = _params(rng, kind)
        outputs += [f"{name}.even", f"{name}.unmatched"] if kind == "route" else [name]
    read = {str(n.get("from")) for n in nodes.values()}
    for k, port in enumerate(p for p in outputs if p not in read or rng.random() < 0.3):
        nodes[f"sink{k}"] = {"type": "test.bag", "from": port, "with": {"tag": "a"}, "capacity": 1024}
    return nodes


def _params(rng: random.Random, kind: str) -> dict[str, object]:
    if kind == "map":
        return {"set": {f"x{rng.randint(0, 2)}": f"i * {rng.randint(1, 9)} + {rng.randint(0, 9)}"}}
    if kind == "filter":
        return {"where": f"i % {rng.randint(2, 4)} != {rng.randint(0, 1)}"}
    return {"routes": {"even": f"i % 2 == {rng.randint(0, 1)}"}}


def edit(rng: random.Random, nodes: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    new = {name: dict(node) for name, node in nodes.items()}
    inner = [n for n in new if n.startswith("n")]
    sinks = [n for n in new if n.startswith("sink")]
    choice = rng.choice(["params", "capacity", "sink", "add", "remove"])
    if choice == "params" and inner:
        name = rng.choice(inner)
        new[name]["with"] = _params(rng, str(new[name]["type"]))
    elif choice == "capacity" and inner:
        new[rng.choice(inner)]["capacity"] = rng.choice([2, 8, 512])
    elif choice == "sink" and sinks:
        new[rng.choice(sinks)]["with"] = {"tag": "b"}
    elif choice == "add":
        upstream = rng.choice([n for n in new if new[n]["type"] in ("test.feed", "map", "filter")])
        new["added"] = {"type": "map", "from": upstream, "with": {"set": {"y": "i + 100"}}, "capacity": 16}
        new["added_sink"] = {"type": "test.bag", "from": "added", "with": {"tag": "c"}, "capacity": 1024}
    elif len(sinks) > 1:
        del new[sinks[-1]]
    return new


def yaml(nodes: dict[str, dict[str, object]]) -> str:
    lines = ["version: 2", "nodes:"]
    for name, node in nodes.items():
        lines.append(f"  {name}:")
        lines.append(f"    type: {node['type']}")
        if "from" in node:
            port = str(node["from"])
            upstream, _, out = port.partition(".")
            where = f"{{node: {upstream}, port: {out}" if out else f"{{node: {upstream}"
            lines.append(f"    from: {where}, edge: {{capacity: {node['capacity']}}}}}")
        if node.get("with"):
            lines.append(f"    with: {_flow(node['with'])}")
    return "\n".join(lines) + "\n"


def _flow(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return f'"{value}"'


def plan(text: str):
    loaded = load_text("g.yaml", textwrap.dedent(text), registry())
    assert loaded.plan is not None, [str(p) for p in loaded.problems]
    return loaded.plan


async def settle(rt: Runtime) -> None:
    """Until the graph took every fed event and holds none."""
    for _ in range(2000):
        if FEED["next"] == len(FEED["events"]) and rt.held() == 0:  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the graph did not settle")


async def run_with_edit(old_text: str, new_text: str, partial: bool) -> tuple[Counter, str]:
    FEED.update(events=[{"i": i} for i in range(60)], next=0, closed=False)
    BAG.clear()
    reg = registry()
    rt = Runtime(plan(old_text), reg)
    task = asyncio.ensure_future(rt.run())
    await settle(rt)
    new = plan(new_text)
    how = ""
    if partial:
        changes = rt.diff(new)
        how = changes.whole_swap
        if not how:
            await rt.replace_nodes(new, changes, 5.0)
    if not partial or how:
        rt.request_stop()
        assert await task
        rt = Runtime(new, reg)
        task = asyncio.ensure_future(rt.run())
    events = FEED["events"]
    assert isinstance(events, list)
    events.extend({"i": i} for i in range(60, 140))
    FEED["closed"] = True
    rt.signal.notify()
    assert await asyncio.wait_for(task, 20)
    return Counter((name, item) for name, items in BAG.items() for item in items), how


@pytest.mark.parametrize("seed", range(30))
def test_a_partial_reload_gives_what_a_whole_swap_gives(seed):
    rng = random.Random(seed)
    before = random_graph(rng)
    after = edit(rng, before)
    old_text, new_text = yaml(before), yaml(after)
    partial, how = asyncio.run(run_with_edit(old_text, new_text, partial=True))
    whole, _ = asyncio.run(run_with_edit(old_text, new_text, partial=False))
    assert how == "", f"fell back to a whole swap: {how}"
    assert partial == whole, f"\n{old_text}\n->\n{new_text}"
    assert sum(partial.values()) > 0


async def run_mid_stream(old_text: str, new_text: str, partial: bool, fuse: bool) -> tuple[Counter, str, set[str]]:
    """As run_with_edit, but the edit lands while events are in flight: 1500 events fed at
    once, small batches, the reload when the source has read 600 of them."""
    FEED.update(events=[{"i": i} for i in range(1500)], next=0, closed=False)
    BAG.clear()
    reg = registry()
    rt = Runtime(plan(old_text), reg, fuse=fuse, budget=7)
    task = asyncio.ensure_future(rt.run())
    while FEED["next"] < 600:  # type: ignore[operator]
        await asyncio.sleep(0)
    new = plan(new_text)
    changes = rt.diff(new)
    how = changes.whole_swap if partial else "asked"
    if not how:
        assert await rt.replace_nodes(new, changes, 10.0) == 0
    else:
        rt.request_stop()
        assert await task
        rt = Runtime(new, reg, fuse=fuse, budget=7)
        task = asyncio.ensure_future(rt.run())
    FEED["closed"] = True
    rt.signal.notify()
    assert await asyncio.wait_for(task, 20)
    return Counter((name, item) for name, items in BAG.items() for item in items), how, set(changes.kept)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("seed", range(12))
def test_a_mid_stream_reload_loses_and_repeats_nothing(seed, fuse):
    """Kept sinks get exactly what a whole swap gives them; no sink gets an event twice."""
    rng = random.Random(seed)
    before = random_graph(rng)
    after = edit(rng, before)
    old_text, new_text = yaml(before), yaml(after)
    partial, how, kept = asyncio.run(run_mid_stream(old_text, new_text, partial=True, fuse=fuse))
    whole, _, _ = asyncio.run(run_mid_stream(old_text, new_text, partial=False, fuse=fuse))
    assert how == "", f"fell back to a whole swap: {how}"
    assert Counter({k: n for k, n in partial.items() if k[0] in kept}) == \
        Counter({k: n for k, n in whole.items() if k[0] in kept}), f"\n{old_text}\n->\n{new_text}"
    per_event = Counter((name, dict(item[1:])["i"]) for (name, item), n in partial.items() for _ in range(n))
    assert max(per_event.values()) == 1, f"an event reached a sink twice\n{old_text}\n->\n{new_text}"
