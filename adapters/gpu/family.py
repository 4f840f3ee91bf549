"""The GPU node family as one bundle: the `opencl.*` specs, the builder of their segments
and the check that validates them. The command line builds it with the GpuConfig it read
from the settings (`gpu_family(config)`), so the device choice follows `--config` and the
environment alike; nothing here reads settings.
"""

from adapters.gpu.check import check_segments
from adapters.gpu.config import GpuConfig
from adapters.gpu.specs import FAMILY, OPENCL_SPECS, membership
from engine.chain import SegmentBuilder, SegmentRunner
from engine.edges import Edge
from engine.node import Clock
from engine.plan import GraphPlan, NodePlan
from engine.runner import NodeRunner
from engine.spec import NodeFamily


class GpuSegments(SegmentBuilder):
    """Builds a runtime's GPU segments on the device `config` chooses."""

    def __init__(self, config: GpuConfig) -> None:
        self.config = config

    def membership(self, node: NodePlan) -> int:
        return membership(node)

    def build(self, plan: GraphPlan, runners: dict[str, NodeRunner], edges: dict[str, Edge],
              clock: Clock) -> list[SegmentRunner]:
        from adapters.gpu.build import build_gpu_segments  # NumPy and PyOpenCL load only when used

        # A partial reload builds only the segments of the nodes it replaces.
        chains = [chain for chain in self.chains(plan) if all(name in runners for name in chain)]
        return build_gpu_segments(chains, runners, edges, clock, self.config)


def gpu_family(config: GpuConfig) -> NodeFamily:
    return NodeFamily(FAMILY, OPENCL_SPECS, GpuSegments(config), (check_segments,))
