"""Helpers for GPU-segment tests: a source of given events, device settings, running a graph."""

import asyncio
import json
import textwrap

import pytest

from adapters.gpu import devices
from adapters.gpu.config import GpuConfig
from adapters.gpu.program import Program, build_program
from adapters.gpu.specs import typed_members
from engine.durations import duration_ms
from engine.node import Batch, Failures, NodeContext, Source
from engine.runtime import Runtime
from engine.spec import SOURCE, SpecRegistry, param
from loader.api import load_text
from tests.runtime_support import RECORDED, _spec, test_registry


class GivenEvents(Source):
    """Emits the events of its `events` parameter (a JSON list), `per_poll` at a time."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.events = json.loads(str(ctx.params["events"]))
        self.per_poll = int(str(ctx.params.get("per_poll", 1024)))
        self.i = 0

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        end = min(self.i + min(budget, self.per_poll), len(self.events))
        outs[0].extend(dict(e) for e in self.events[self.i:end])
        self.i = end
        return self.i < len(self.events)


def gpu_registry(setting: str = "numpy", fallback: str = "none") -> SpecRegistry:
    """The test registry, its GPU family built for `setting` (HEADRACE_OPENCL_DEVICE) and
    `fallback` as the command line builds it from the settings."""
    registry = test_registry(GpuConfig(setting, fallback))
    registry.register(_spec("test.events", SOURCE, GivenEvents, {
        "events": param({"type": "string"}, "JSON list of events", "[]"),
        "per_poll": param({"type": "integer"}, "events per poll", 10)}))
    return registry


def has_opencl() -> bool:
    return any(d.kind == "cpu" or d.kind == "gpu" for d in devices.list_devices())


NO_OPENCL = ("no OpenCL device that builds kernels: install PyOpenCL (pip install 'headrace[gpu]') and an OpenCL "
             "driver (Debian's pocl-opencl-icd is what CI uses); `engine devices` says why a device is skipped")

# Skips here, fails under CI=true (tests/conftest.py).
needs_opencl = pytest.mark.skipif(not has_opencl(), reason=NO_OPENCL)
BACKENDS = ["numpy", pytest.param("cpu", marks=needs_opencl)]  # HEADRACE_OPENCL_DEVICE settings


def build(text: str, setting: str = "numpy", fallback: str = "none", **kwargs: object) -> Runtime:
    registry = gpu_registry(setting, fallback)
    result = load_text("g.yaml", textwrap.dedent(text), registry)
    assert result.plan is not None, [f"{p.line}:{p.column} {p.message}" for p in result.problems]
    return Runtime(result.plan, registry, **kwargs)  # type: ignore[arg-type]


def run(text: str, setting: str = "numpy", **kwargs: object) -> tuple[Runtime, bool]:
    runtime = build(text, setting, **kwargs)
    return runtime, asyncio.run(runtime.run())


def recorded(name: str) -> list[dict[str, object]]:
    return RECORDED.get(name, [])


def program_of(members: list[tuple[str, str, dict[str, object]]]) -> Program:
    """A segment's program from (name, type, `with:` mapping) members, each parsed by its
    type's spec as the runtime parses it."""
    return build_program(typed_members(members), duration_ms)


def events_param(events: list[dict[str, object]]) -> str:
    """The `events` parameter, quoted for YAML."""
    return json.dumps(json.dumps(events))


def graph(events: list[dict[str, object]], body: str, tail: str, sink_from: str) -> str:
    """A graph: `src` emits the events, then the `body` nodes, then `sink` records what comes from `sink_from`."""
    return f"""
    version: 2
    name: g
    nodes:
      src:
        type: test.events
        with: {{events: {events_param(events)}}}
{body}
      sink:
        type: test.record
        from: {sink_from}
{tail}
    """
