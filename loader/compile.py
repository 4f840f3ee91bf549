"""Checked graph -> GraphPlan: resolve defaults, build ids, freeze."""

from engine.ids import edge_id
from engine.plan import (
    DEFAULT_CAPACITY, DEFAULT_ERROR_ACTION, DEFAULT_POLICY, DEFAULT_STORAGE, EdgePlan, ErrorPolicy, GraphPlan,
    NodePlan, params_json,
)
from engine.durations import duration_ms
from loader.semantic import CheckedGraph, CheckedInput, CheckedNode

DEFAULT_RETRY_ATTEMPTS = 3
DEFAULT_RETRY_BACKOFF = "100ms"


def _error_policy(raw: object) -> ErrorPolicy:
    if isinstance(raw, str):
        return ErrorPolicy(action=raw)
    if not isinstance(raw, dict):
        return ErrorPolicy(action=DEFAULT_ERROR_ACTION)
    action = str(raw.get("action", DEFAULT_ERROR_ACTION))
    if action != "retry":
        return ErrorPolicy(action=action)
    return ErrorPolicy(
        action=action,
        attempts=int(str(raw.get("attempts", DEFAULT_RETRY_ATTEMPTS))),
        backoff_ms=duration_ms(raw.get("backoff", DEFAULT_RETRY_BACKOFF)) or 0,
        then=str(raw.get("then", DEFAULT_ERROR_ACTION)),
    )


def _with_defaults(node: CheckedNode) -> dict[str, object]:
    """Spell out every defaulted parameter, so an explicit default gives the same plan."""
    params = dict(node.params)
    properties = node.spec.params.get("properties", {})
    assert isinstance(properties, dict)
    for key, schema in properties.items():
        if isinstance(schema, dict) and "default" in schema and key not in params:
            params[key] = schema["default"]
    return params


def _edge(consumer: str, entry: CheckedInput) -> EdgePlan:
    options = entry.options
    policy = str(options.get("policy", DEFAULT_POLICY))
    key: tuple[str, ...] = ()
    merge: tuple[tuple[str, str], ...] = ()
    if policy == "coalesce":
        raw_key = options.get("key", ())
        key = (raw_key,) if isinstance(raw_key, str) else tuple(str(k) for k in raw_key) if isinstance(raw_key, list) else ()
        raw_merge = options.get("merge", {})
        merge = tuple(sorted((str(f), str(fn)) for f, fn in raw_merge.items())) if isinstance(raw_merge, dict) else ()
    return EdgePlan(
        id=edge_id(entry.node, entry.port, consumer),
        from_node=entry.node,
        from_port=entry.port,
        to_node=consumer,
        capacity=int(str(options.get("capacity", DEFAULT_CAPACITY))),
        policy=policy,
        key=key,
        merge=merge,
        storage=str(options.get("storage", DEFAULT_STORAGE)),
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
            params_json=params_json(_with_defaults(node)),
            inputs=tuple(e.id for e in node_edges),
            outputs=node.ports,
            on_error=_error_policy(node.on_error),
        ))
    edges.sort(key=lambda e: e.id)
    return GraphPlan(name=graph.name, format_version=graph.version, nodes=tuple(nodes), edges=tuple(edges),
                     secret_fields=graph.secret_fields)
