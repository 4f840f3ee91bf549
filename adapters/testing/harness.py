"""One graph test run: the plan `engine run` would run, with its sources fed from the test
and its sinks captured, fused and executed by the same runtime on a virtual clock.

Only the edges of the world change. Every source type's factory becomes a fixture source
and every sink type's a capture sink (the types keep their names, so the plan and its hash
are the graph's own); a port the test checks is watched through a tap on the edge leaving
it, which sees inside fused chains without changing how they fuse. A checked port that no
edge reads gets a capture node of its own, which changes no chain either.
"""

import asyncio
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from adapters.storage.durable import durable_factory, has_durable_edges
from adapters.testing.fixtures import CaptureSink, FixtureSource, frozen_copy
from adapters.testing.test_file import Expectation, GraphTest
from engine.ids import edge_id
from engine.node import Batch, Event, NodeContext, NodeFailure, VirtualClock
from engine.plan import DEFAULT_CAPACITY, DEFAULT_POLICY, EdgePlan, ErrorPolicy, GraphPlan, NodePlan
from engine.runtime import Runtime
from engine.spec import FRESH, SINK, SOURCE, NodeSpec, RuntimeNode, SpecRegistry

CAPTURE_TYPE: Final = "test.capture"
CAPTURE_PREFIX: Final = "test_capture__"
DURABLE_TEST_MB: Final = 64


@dataclass
class TestRun:
    outputs: dict[str, list[Event]] = field(default_factory=dict)  # expectation key -> events
    stats: dict[str, object] = field(default_factory=dict)
    failure: str = ""  # the engine's one-line error when the graph failed


class _Feeds:
    """What the current test gives each source, and the capture sinks it built."""

    def __init__(self) -> None:
        self.inputs: dict[str, list[Event]] = {}
        self.every: dict[str, float] = {}  # paced sources: seconds between events
        self.sinks: dict[str, CaptureSink] = {}

    def source(self, ctx: NodeContext) -> RuntimeNode:
        return FixtureSource(ctx, self.inputs.get(ctx.name, []), self.every.get(ctx.name, 0.0))

    def sink(self, ctx: NodeContext) -> RuntimeNode:
        sink = CaptureSink(ctx)
        self.sinks[ctx.name] = sink
        return sink


def _swapped(spec: NodeSpec, feeds: _Feeds) -> NodeSpec:
    if spec.kind == SOURCE:
        return replace(spec, factory=feeds.source, fusion=None, output=FRESH)
    if spec.kind == SINK:
        return replace(spec, factory=feeds.sink, fusion=None)
    return spec


def harness_registry(base: SpecRegistry, feeds: _Feeds) -> SpecRegistry:
    """`base` with every source and sink type swapped, families included."""
    families = [replace(f, specs=tuple(_swapped(s, feeds) for s in f.specs)) for f in base.families()]
    in_family = {s.name for f in families for s in f.specs}
    loose = [_swapped(s, feeds) for s in base.specs() if s.name not in in_family]
    capture = NodeSpec(CAPTURE_TYPE, SINK, "what a graph test checks on a port no edge reads",
                       {"type": "object"}, factory=feeds.sink)
    return SpecRegistry(loose + [capture], families)


def _with_captures(plan: GraphPlan, unread: list[tuple[str, str]]) -> GraphPlan:
    nodes, edges = list(plan.nodes), list(plan.edges)
    for node, port in unread:
        name = f"{CAPTURE_PREFIX}{node}__{port}"
        eid = edge_id(node, port, name)
        nodes.append(NodePlan(name, CAPTURE_TYPE, "{}", (eid,), (), ErrorPolicy()))
        edges.append(EdgePlan(eid, node, port, name, DEFAULT_CAPACITY, DEFAULT_POLICY))
    return replace(plan, nodes=tuple(nodes), edges=tuple(edges))


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, batch: Batch) -> None:
        self.events.extend(frozen_copy(batch))


class Harness:
    """Runs the tests of one graph; the registry is built once, the runtime once per test."""

    def __init__(self, plan: GraphPlan, registry: SpecRegistry) -> None:
        self.plan = plan
        self.feeds = _Feeds()
        self.registry = harness_registry(registry, self.feeds)

    def run(self, test: GraphTest) -> TestRun:
        self.feeds.inputs = test.inputs
        self.feeds.every = test.every
        self.feeds.sinks = {}
        watched = [e for e in test.expect if not e.sink]
        read = {(e.from_node, e.from_port): e.id for e in reversed(self.plan.edges)}
        unread = sorted({(e.node, e.port) for e in watched if (e.node, e.port) not in read})
        plan = _with_captures(self.plan, unread)
        with tempfile.TemporaryDirectory(prefix="headrace-test-") as state:
            durable = durable_factory(Path(state), DURABLE_TEST_MB, sync=False) if has_durable_edges(plan) else None
            try:
                runtime = Runtime(plan, self.registry, clock=VirtualClock(test.start_time), durable=durable)
            except NodeFailure as exc:
                return TestRun(failure=str(exc))
            for runner in runtime.runners.values():  # `rand()` gives the same numbers in every run
                runner.ctx.rng.seed(f"headrace test {plan.name} {runner.name}")
            recorders: dict[tuple[str, str], _Recorder] = {}
            for node, port in sorted({(e.node, e.port) for e in watched} - set(unread)):
                recorders[(node, port)] = recorder = _Recorder()
                runtime.controls.tap(read[(node, port)], recorder)
            try:
                ok = asyncio.run(runtime.run())
            except Exception as exc:  # a bug in a node: the test fails with it, the others run
                runtime.fail(f"internal error: {type(exc).__name__}: {exc}")
                ok = False
            run = TestRun(stats=_without_captures(runtime.stats()), failure="" if ok else runtime.failure)
        for expectation in test.expect:
            run.outputs[expectation.key] = self._captured(expectation, recorders)
        return run

    def _captured(self, e: Expectation, recorders: dict[tuple[str, str], "_Recorder"]) -> list[Event]:
        if e.sink:
            sink = self.feeds.sinks.get(e.node)
            return sink.received if sink is not None and e.port == "out" else []
        if (e.node, e.port) in recorders:
            return recorders[(e.node, e.port)].events
        sink = self.feeds.sinks.get(f"{CAPTURE_PREFIX}{e.node}__{e.port}")
        return sink.received if sink is not None else []


def _without_captures(stats: dict[str, object]) -> dict[str, object]:
    out = dict(stats)
    for group in ("nodes", "edges"):
        entries = stats.get(group)
        if isinstance(entries, dict):
            out[group] = {k: v for k, v in entries.items() if CAPTURE_PREFIX not in k}
    return out
