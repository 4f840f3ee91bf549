"""Checked graph -> GraphPlan: build ids, freeze. (Defaults were applied in loader/checked.py.)"""

from collections.abc import Mapping

from engine.ids import edge_id
from engine.partition import find_stages
from engine.plan import EdgePlan, GraphPlan, NodePlan, SecretParam, params_json
from engine.secrets import resolvable_pointer, secret_digest, value_at
from loader.checked import CheckedGraph, CheckedInput, CheckedNode
from loader.document import KeyPath

# Values from secret variables: path in the document -> the variables' texts (`Document.secrets`).
SecretValues = Mapping[KeyPath, tuple[str, ...]]


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
        partition_by=options.partition_by,
    )


def _secrets(graph: str, node: CheckedNode, secret_values: SecretValues) -> tuple[SecretParam, ...]:
    """The node's secret values: the parameters its type marks secret (masked in their shape)
    and the values taken from secret variables (masked whole)."""
    found: dict[str, tuple[bool, tuple[str, ...]]] = {}
    for key in node.spec.secrets:
        if node.params.get(key) not in (None, "", {}, []):  # an unset secret hides nothing
            found[resolvable_pointer(node.params, (key,))] = (False, ())
    for path, texts in secret_values.items():
        if path[:3] != ("nodes", node.name, "with"):
            continue
        pointer = resolvable_pointer(node.params, path[3:])
        if pointer:
            found[pointer] = (True, found.get(pointer, (True, ()))[1] + texts)
    return tuple(SecretParam(pointer, secret_digest(graph, node.name, pointer, value_at(node.params, pointer)),
                             whole, tuple(sorted(set(texts))))
                 for pointer, (whole, texts) in sorted(found.items()))


def compile_graph(graph: CheckedGraph, secret_values: SecretValues | None = None) -> GraphPlan:
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
            secrets=_secrets(graph.name, node, secret_values or {}),
            parallelism=node.parallelism,
        ))
    edges.sort(key=lambda e: e.id)
    frozen_nodes, frozen_edges = tuple(nodes), tuple(edges)
    return GraphPlan(name=graph.name, format_version=graph.version, nodes=frozen_nodes, edges=frozen_edges,
                     secret_fields=graph.secret_fields, stages=find_stages(frozen_nodes, frozen_edges))
