"""Test-only node types and helpers for driving the runtime from graph text."""

import asyncio
import copy
import textwrap

from adapters.cli.registry import SETTINGS_DEFAULTS, default_registry
from adapters.gpu.config import GpuConfig
from engine.node import AsyncSink, Batch, Failures, NodeContext, Source, Transform
from engine.runtime import Runtime
from engine.spec import SINK, SOURCE, TRANSFORM, NodeSpec, SpecRegistry, param, params_schema
from loader.api import load_text
from tests.health_support import LINKED

# Events each recording sink received, by node name; reset by `run_graph`.
RECORDED: dict[str, list[dict[str, object]]] = {}


class Numbers(Source):
    """{"i": 0}, {"i": 1}, ... as fast as allowed, `count` of them."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.count = int(str(ctx.params["count"]))
        self.keys = int(str(ctx.params.get("keys", 1)))
        self.i = 0

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        end = min(self.i + budget, self.count)
        outs[0].extend({"i": i, "k": i % self.keys, "n": 1} for i in range(self.i, end))
        self.i = end
        return self.i < self.count


class Slow(Transform):
    """Passes events on, `per_pass` at a time: a consumer slower than its producer."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.per_pass = int(str(ctx.params.get("per_pass", 1)))

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        n = min(self.per_pass, len(batch))
        outs[0].extend(batch[:n])
        return n


class Record(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        RECORDED[ctx.name] = []

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        RECORDED[self.ctx.name].extend(batch)
        return len(batch)


class SlowRecord(AsyncSink):
    """An IO sink that takes real time per batch."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        RECORDED[ctx.name] = []

    async def write(self, batch: Batch) -> None:
        await asyncio.sleep(0.001)
        RECORDED[self.ctx.name].extend(batch)


def as_mapping(raw: dict[str, object]) -> dict[str, object]:
    """The `parse` of the test-only types here: their nodes read `ctx.params` as the mapping."""
    return raw


def _spec(name: str, kind: str, factory: object, props: dict[str, dict[str, object]]) -> NodeSpec:
    return NodeSpec(name=name, kind=kind, summary=f"test node {name}", params=params_schema(props),
                    factory=factory, parse=as_mapping)  # type: ignore[arg-type]


INT = {"type": "integer"}


def test_registry(gpu: GpuConfig = SETTINGS_DEFAULTS) -> SpecRegistry:
    registry = default_registry(gpu).copy()
    registry.register(_spec("test.numbers", SOURCE, Numbers, {
        "count": param(INT, "how many", 10), "keys": param(INT, "distinct k values", 3)}))
    registry.register(_spec("test.slow", TRANSFORM, Slow, {"per_pass": param(INT, "events per pass", 1)}))
    registry.register(_spec("test.record", SINK, Record, {}))
    registry.register(_spec("test.slow_record", SINK, SlowRecord, {}))
    # Validates, but this engine cannot build it: what a reload must survive.
    registry.register(_spec("test.unbuildable", SINK, None, {}))
    registry.register(LINKED)  # a connector whose connection comes and goes (tests/health_support.py)
    return registry


def build(text: str, registry: SpecRegistry | None = None, **kwargs: object) -> Runtime:
    registry = registry or test_registry()
    result = load_text("g.yaml", textwrap.dedent(text), registry)
    assert result.plan is not None, [p.message for p in result.problems]
    return Runtime(result.plan, registry, **kwargs)  # type: ignore[arg-type]


def run_graph(text: str, **kwargs: object) -> tuple[Runtime, bool]:
    runtime = build(text, **kwargs)
    ok = asyncio.run(runtime.run())
    return runtime, ok


TIMINGS = ("busy_s", "blocked_s")  # counters of time: they differ from run to run


def without_timings(stats: object) -> object:
    """`stats` without the time counters, for comparing two runs or a run with a literal."""
    if isinstance(stats, dict):
        return {k: without_timings(v) for k, v in stats.items() if k not in TIMINGS and k != "elapsed_s"}
    return stats


def counted(entry: object, *keys: str) -> dict[str, object]:
    """Just the named counters of one node's or edge's stats."""
    assert isinstance(entry, dict)
    return {k: entry[k] for k in keys}


def run_recorded(text: str, fuse: bool) -> tuple[dict[str, list[dict[str, object]]], dict[str, object]]:
    """What every `test.record` node received, and the counters (no timings, no high-water
    marks: a fused link's differs from an edge's), after running the graph in `text`."""
    RECORDED.clear()
    runtime = build(text, fuse=fuse)
    assert asyncio.run(runtime.run()), runtime.failure
    stats = without_timings(runtime.stats())
    assert isinstance(stats, dict)
    for edge in stats["edges"].values():
        edge.pop("high_water")
    return copy.deepcopy(RECORDED), stats


def fused_like_unfused(text: str) -> dict[str, list[dict[str, object]]]:
    """The fused run's recorded events, checked equal (field order and counters too) to the
    unfused run's."""
    fused, fused_stats = run_recorded(text, True)
    alone, alone_stats = run_recorded(text, False)
    assert fused == alone
    assert [list(e) for e in fused.get("out", [])] == [list(e) for e in alone.get("out", [])]
    assert fused_stats == alone_stats
    return fused
