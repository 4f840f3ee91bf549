"""A stage instance's StageSpec as JSON text, to hand to its actor.

The engine's plan classes are compiled with mypyc; rather than rely on how native classes
pickle, the actor gets plain text and rebuilds them. Members keep their real parameter
values (secrets too: the actor runs them), so this text is never logged or shown.
"""

import json

from engine.plan import EdgePlan, ErrorPolicy, NodePlan, SecretParam, StagePlan
from engine.stage_instance import StageSpec


def encode_spec(spec: StageSpec) -> str:
    return json.dumps({
        "graph": spec.graph,
        "stage": {"name": spec.stage.name, **spec.stage.to_dict()},
        "index": spec.index,
        "members": [_node(n) for n in spec.members],
        "internal": [{"id": e.id, **e.to_dict()} for e in spec.internal],
        "outputs": [list(pair) for pair in spec.outputs],
    })


def decode_spec(text: str) -> StageSpec:
    raw = json.loads(text)
    stage = raw["stage"]
    return StageSpec(
        graph=raw["graph"],
        stage=StagePlan(name=stage["name"], members=tuple(stage["members"]), parallelism=stage["parallelism"],
                        partition_by=tuple(stage["partition_by"]), entry=stage["entry"]),
        index=raw["index"],
        members=tuple(_node_from(n) for n in raw["members"]),
        internal=tuple(_edge_from(e) for e in raw["internal"]),
        outputs=tuple((m, p) for m, p in raw["outputs"]),
    )


def _node(node: NodePlan) -> dict[str, object]:
    return {
        "name": node.name, "type": node.type, "params_json": node.params_json,
        "inputs": list(node.inputs), "outputs": list(node.outputs),
        "on_error": [node.on_error.action, node.on_error.attempts, node.on_error.backoff_ms, node.on_error.then],
        "secrets": [[s.pointer, s.digest, s.whole, list(s.texts)] for s in node.secrets],
        "parallelism": node.parallelism,
    }


def _node_from(raw: dict[str, object]) -> NodePlan:
    on_error = raw["on_error"]
    secrets = raw["secrets"]
    inputs, outputs = raw["inputs"], raw["outputs"]
    assert isinstance(on_error, list) and isinstance(secrets, list)
    assert isinstance(inputs, list) and isinstance(outputs, list)
    return NodePlan(
        name=str(raw["name"]), type=str(raw["type"]), params_json=str(raw["params_json"]),
        inputs=tuple(str(i) for i in inputs), outputs=tuple(str(o) for o in outputs),
        on_error=ErrorPolicy(str(on_error[0]), int(on_error[1]), int(on_error[2]), str(on_error[3])),
        secrets=tuple(SecretParam(str(s[0]), str(s[1]), bool(s[2]), tuple(str(t) for t in s[3])) for s in secrets),
        parallelism=int(str(raw["parallelism"])),
    )


def _edge_from(raw: dict[str, object]) -> EdgePlan:
    key, merge, partition_by = raw.get("key", []), raw.get("merge", {}), raw.get("partition_by", [])
    assert isinstance(key, list) and isinstance(merge, dict) and isinstance(partition_by, list)
    return EdgePlan(
        id=str(raw["id"]), from_node=str(raw["from_node"]), from_port=str(raw["from_port"]),
        to_node=str(raw["to_node"]), capacity=int(str(raw["capacity"])), policy=str(raw["policy"]),
        key=tuple(str(k) for k in key), merge=tuple(sorted((str(f), str(fn)) for f, fn in merge.items())),
        durable=raw.get("durable") is True, partition_by=tuple(str(f) for f in partition_by),
    )
