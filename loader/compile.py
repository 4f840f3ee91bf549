"""Checked graph -> GraphPlan: build ids, freeze. (Defaults were applied in loader/checked.py.)"""

from engine.ids import edge_id
from engine.plan import EdgePlan, GraphPlan, NodePlan, params_json
from loader.checked import CheckedGraph, CheckedInput


def _edge(consumer: str, entry: CheckedInput) -> EdgePlan:
    options = entry.edge
    return EdgePlan(
        id=edge_id(entry.node, entry.port, consumer),
        from_node=entry.node,
        from_port=entry.port,
        to_node=consumer,
        capacity=options.capacity,
        policy=options.policy,
        key=options.key,
        merge=options.merge,
        durable=options.durable,
    )


def compile_graph(graph: CheckedGraph) -> GraphPlan:
    nodes: list[NodePlan] = []
    edges: list[EdgePlan] = []
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        node_edges = [_edge(name, entry) for entry in node.inputs]
        edges.extend(node_edges)
        nodes.append(NodePlan(
            name=name,
            type=node.spec.name,
            params_json=params_json(node.params),
            inputs=tuple(e.id for e in node_edges),
            outputs=node.ports,
            on_error=node.on_error,
        ))
    edges.sort(key=lambda e: e.id)
    return GraphPlan(name=graph.name, format_version=graph.version, nodes=tuple(nodes), edges=tuple(edges),
                     secret_fields=graph.secret_fields)
