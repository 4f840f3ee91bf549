"""The `ray` executor's stage factories, from the settings (read by the command line)."""

from typing import TYPE_CHECKING

from adapters.ray.cluster import ClusterError, RayOptions, connect
from engine.node import NodeContext, NodeFailure
from engine.runtime import StageFactory
from engine.spec import RuntimeNode
from engine.stage_instance import StageSpec

if TYPE_CHECKING:
    from adapters.settings import Settings

RAY = "ray"


def options_from(settings: "Settings", address: str | None = None) -> RayOptions:
    return RayOptions(address=address or settings.ray_address, cpus_per_instance=settings.ray_cpus_per_instance)


def ray_stages(options: RayOptions) -> StageFactory:
    """Join or start the cluster now (so that an unreachable one is one line before anything
    runs) and build stage instances as Ray actors."""
    from adapters.ray.stage import stage_factory
    connect(options)
    return stage_factory(options.cpus_per_instance)


def serve_stages(settings: "Settings") -> StageFactory | None:
    """`engine serve`'s stage factory: with the ray executor, it joins the cluster the first
    time a graph with stages is built; a cluster it cannot reach rejects that graph (one
    line) and the others run on."""
    if settings.executor != RAY:
        return None
    options = options_from(settings)

    def build(spec: StageSpec, ctx: NodeContext) -> RuntimeNode:
        try:
            factory = ray_stages(options)
        except ClusterError as exc:
            raise NodeFailure(str(exc)) from None
        return factory(spec, ctx)
    return build


__all__ = ["RAY", "ClusterError", "RayOptions", "ray_stages", "serve_stages"]
