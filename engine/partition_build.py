"""Building the runners of a partitioned stage: its router and its instances
(engine/partition.py), for a runtime and for a partial reload."""

from typing import TYPE_CHECKING

from engine.edges import Edge
from engine.node import NodeContext
from engine.partition import ROUTER_TYPE, stage_of_instance
from engine.partition_router import PartitionRouter, parse_router
from engine.plan import GraphPlan, NodePlan
from engine.runner import NodeRunner
from engine.spec import RuntimeNode
from engine.stage_instance import LocalStage, StageInstance, stage_spec

if TYPE_CHECKING:
    from engine.runtime import Runtime


def partition_runner(rt: "Runtime", node: NodePlan, edges: dict[str, Edge], graph: GraphPlan,
                      carried: RuntimeNode | None) -> NodeRunner:
    outputs = [[e for e in edges.values() if e.plan.from_node == node.name and e.plan.from_port == port]
               for port in node.outputs]
    inputs = [edges[i] for i in node.inputs]
    if carried is not None:
        return NodeRunner(node, carried.ctx, carried, inputs, outputs)
    if node.type == ROUTER_TYPE:
        ctx = NodeContext(node.name, node.type, parse_router(node.params()), node.outputs, node.on_error,
                          rt.clock, rt.plan.name)
        return NodeRunner(node, ctx, PartitionRouter(ctx), inputs, outputs)
    stage, index = stage_of_instance(graph, node)
    spec = stage_spec(graph, stage, index)
    ctx = NodeContext(node.name, node.type, spec, node.outputs, node.on_error, rt.clock, rt.plan.name)
    impl: RuntimeNode
    if rt.stage_factory is not None:
        impl = rt.stage_factory(spec, ctx)
    else:
        impl = LocalStage(ctx, StageInstance(spec, rt.registry, rt.clock))
    runner = NodeRunner(node, ctx, impl, inputs, outputs)
    runner.members = [node.name, *stage.members]  # pausing `per_user` pauses its instances
    return runner
