"""Building a runtime's GPU segments: type each chain, pick the device, open it.

The `opencl` family's segment builder (adapters/gpu/family.py) calls this with the chains it
found and the GpuConfig the command line built from the settings (`opencl_device`,
`opencl_fallback`; see adapters/gpu/devices.py). Anything that cannot run on this machine
(float64 on a device without it, an OpenCL C kernel with no OpenCL device, a driver refusing
generated code) is a NodeFailure naming the node, so `engine run` exits with one line and
`engine serve` rejects the version.
"""

import logging
from typing import Any

from adapters.gpu import devices
from adapters.gpu.config import GpuConfig
from adapters.gpu.numpy_backend import Outcome, run_numpy
from adapters.gpu.params import MemberParams
from adapters.gpu.program import Program, ProgramError, build_program
from adapters.gpu.segment_runtime import GpuSegment, GpuTransform
from engine.chain import SegmentRunner
from engine.durations import duration_ms
from engine.edges import Edge
from engine.node import Clock, NodeFailure
from engine.params import expect
from engine.runner import NodeRunner

log = logging.getLogger("headrace.gpu")


class OpenclRuns:
    """Runs programs (a segment's, and its prefixes on the error path) on one device,
    building each program's kernels once."""

    def __init__(self, device: devices.DeviceInfo) -> None:
        from adapters.gpu.opencl_backend import OpenclRunner  # PyOpenCL loads only when used
        self.make = OpenclRunner
        self.context, self.queue = devices.open_queue(device)
        self.runners: dict[int, Any] = {}
        self.keep: list[Program] = []  # programs stay alive while their ids are keys

    def runner(self, program: Program) -> Any:
        found = self.runners.get(id(program))
        if found is None:
            found = self.make(program, self.context, self.queue)
            self.runners[id(program)] = found
            self.keep.append(program)
        return found

    def __call__(self, program: Program, columns: dict[str, Any], entered: Any) -> Outcome:
        outcome: Outcome = self.runner(program).run(columns, entered)
        return outcome


def choose_runner(program: Program, where: str, config: GpuConfig) -> tuple[Any, str]:
    """The run function for a program on this machine, and a line saying where it runs."""
    if config.settings_problem:
        raise NodeFailure(f"GPU segment {where}: {config.settings_problem}")
    try:
        choice = devices.choose(config.device, config.fallback, program.needs_fp64, program.needs_opencl)
    except devices.DeviceError as exc:
        raise NodeFailure(f"GPU segment {where}: {exc}") from None
    if choice.backend == "numpy" or choice.device is None:
        return run_numpy, f"NumPy ({choice.reason})"
    from adapters.gpu.opencl_backend import KernelBuildError
    try:
        runs = OpenclRuns(choice.device)
        runs.runner(program)  # build now: a refused kernel is a build failure, not a run failure
    except (KernelBuildError, devices.DeviceError) as exc:
        raise NodeFailure(f"GPU segment {where}: {exc}") from None
    return runs, f"OpenCL on {choice.device.label} ({choice.reason})"


def build_gpu_segments(chains: list[list[str]], runners: dict[str, NodeRunner], edges: dict[str, Edge],
                       clock: Clock, config: GpuConfig) -> list[SegmentRunner]:
    found: list[SegmentRunner] = []
    for chain in chains:
        members = [runners[name] for name in chain]
        where = " -> ".join(f"'{name}'" for name in chain)
        try:
            program = build_program([(r.name, expect(r.ctx.params, MemberParams)) for r in members], duration_ms)
        except ProgramError as exc:  # validation reports these with their line; plans built by hand land here
            raise NodeFailure(f"node '{chain[exc.member]}': {exc.message}") from None
        run, placement = choose_runner(program, where, config)
        log.info(f"GPU segment {where} runs on {placement}")
        links = [edges[m.plan.inputs[0]] for m in members[1:]]
        immediate = any(edges[i].plan.durable for i in members[0].plan.inputs)
        segment = GpuSegment(members, links, program, run, clock, immediate)
        segment.placement = placement
        found.append(SegmentRunner(segment, GpuTransform(segment)))
    return found



