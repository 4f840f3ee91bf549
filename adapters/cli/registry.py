"""The node types this build of Headrace offers."""

from adapters.gpu.check import check_segments
from adapters.gpu.specs import FAMILY, OPENCL_SPECS
from adapters.io_specs import IO_SPECS
from engine.builtin_specs import BUILTIN_SPECS
from engine.chain import SegmentRunner
from engine.edges import Edge
from engine.node import Clock
from engine.plan import GraphPlan
from engine.runner import NodeRunner
from engine.spec import SpecRegistry

def _gpu_segments(plan: GraphPlan, runners: dict[str, NodeRunner], edges: dict[str, Edge],
                  clock: Clock) -> list[SegmentRunner]:
    from adapters.gpu.build import build_gpu_segments  # NumPy and PyOpenCL load only when used
    return build_gpu_segments(plan, runners, edges, clock)


def default_registry() -> SpecRegistry:
    return SpecRegistry(BUILTIN_SPECS + IO_SPECS + OPENCL_SPECS, {FAMILY: _gpu_segments}, [check_segments])
