"""The compiled graph plan: the only thing the runtime accepts.

Plans are frozen and hashable, hold no YAML objects, and serialise to canonical JSON
(sorted keys) so the same graph gives the same bytes whatever file or format it came
from. `content_hash` is what reload compares. A secret parameter is printed and hashed as
`****` beside a salted hash of its value (`NodePlan.secrets`, engine/secrets.py).
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Final

from engine.policies import BLOCK, KEEP_LATEST, POLICIES, policy_named
from engine.secrets import masked_at

MERGE_FUNCTIONS: Final = ("sum", "min", "max", "first", "last")
ERROR_ACTIONS: Final = ("stop", "drop", "dead_letter", "retry")
DEFAULT_CAPACITY: Final = 1024
DEFAULT_POLICY: Final = BLOCK
DEFAULT_ERROR_ACTION: Final = "drop"
DEFAULT_RETRY_ATTEMPTS: Final = 3
DEFAULT_RETRY_BACKOFF_MS: Final = 100
ERRORS_PORT: Final = "errors"


def canonical_json(value: object, indent: int | None = None) -> str:
    """Keys in the order the plan builds them (which is fixed), no incidental whitespace
    unless `indent` is given. Not sorted: the order of `routes`, `fields` and `set`
    entries is meaningful (`mode: first`, output field order)."""
    if indent is None:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(value, indent=indent, ensure_ascii=False)


def params_json(params: dict[str, object]) -> str:
    """A node's `with:` as canonical JSON: parameter names sorted (their order means
    nothing), values as written (inside them, order can matter)."""
    return canonical_json({key: params[key] for key in sorted(params)})


@dataclass(frozen=True)
class EdgePlan:
    id: str
    from_node: str
    from_port: str
    to_node: str
    capacity: int
    policy: str  # a name in engine.policies.POLICIES
    # Coalesce only: the key fields, and (field, merge function) pairs sorted by field.
    key: tuple[str, ...] = ()
    merge: tuple[tuple[str, str], ...] = ()
    durable: bool = False  # kept on disk until its consumer has handed the events on
    # Into a node with `parallelism` > 1: the fields whose stable hash picks the instance
    # of each event (engine/partition.py); () spreads events round-robin.
    partition_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "from_node": self.from_node,
            "from_port": self.from_port,
            "to_node": self.to_node,
            "capacity": self.capacity,
            "policy": self.policy,
        }
        if policy_named(self.policy).keyed:
            out["key"] = list(self.key)
            out["merge"] = dict(self.merge)
        if self.durable:  # only when set, so plans without durable edges keep their hashes
            out["durable"] = True
        if self.partition_by:  # only when set, so plans without partitions keep their hashes
            out["partition_by"] = list(self.partition_by)
        return out


@dataclass(frozen=True)
class ErrorPolicy:
    action: str = DEFAULT_ERROR_ACTION
    # Retry only: attempts after the first failure, the first backoff, and what follows.
    attempts: int = 0
    backoff_ms: int = 0
    then: str = ""

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"action": self.action}
        if self.action == "retry":
            out["attempts"] = self.attempts
            out["backoff_ms"] = self.backoff_ms
            out["then"] = self.then
        return out


@dataclass(frozen=True)
class SecretParam:
    """One secret value in a node's `with:` (engine/secrets.py)."""

    pointer: str  # a JSON Pointer into `with:`, e.g. `/headers/Authorization`
    digest: str  # `secret_digest` of the value: what the plan's hash covers instead of it
    # `****` whole (a value from a secret variable), or the shape `masked_secret` keeps (a
    # parameter its node type marks secret: a URL keeps its host).
    whole: bool = True
    # The variables' texts inside the value, to take out of log lines; never printed.
    texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodePlan:
    name: str
    type: str
    # The node's `with:` parameters as canonical JSON: hashable and free of YAML types. The
    # real values, secrets too: what the node runs with, never printed as it is.
    params_json: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    on_error: ErrorPolicy
    secrets: tuple[SecretParam, ...] = ()  # sorted by pointer
    parallelism: int = 1  # instances of the node (engine/partition.py)

    def params(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.params_json)
        return loaded

    def to_dict(self) -> dict[str, object]:
        """The node as printed and hashed: each secret value masked, its digest in `secrets`."""
        out: dict[str, object] = {
            "type": self.type,
            "with": masked_at(self.params(), self.secrets),
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "on_error": self.on_error.to_dict(),
        }
        if self.secrets:  # only when set, so plans without secrets keep their hashes
            out["secrets"] = {s.pointer: s.digest for s in self.secrets}
        if self.parallelism > 1:  # only when set, so plans without partitions keep their hashes
            out["parallelism"] = self.parallelism
        return out


@dataclass(frozen=True)
class StagePlan:
    """Nodes that run together in each of `parallelism` instances (engine/partition.py):
    consecutive nodes with the same parallelism joined by edges without a new
    `partition_by`. Events enter through one edge, routed by `partition_by` (or
    round-robin when it is empty); what leaves the stage is merged downstream."""

    name: str  # the node the entry edge feeds
    members: tuple[str, ...]  # in topological order, names breaking ties
    parallelism: int
    partition_by: tuple[str, ...]
    entry: str  # the id of the edge events enter through

    def to_dict(self) -> dict[str, object]:
        return {"members": list(self.members), "parallelism": self.parallelism,
                "partition_by": list(self.partition_by), "entry": self.entry}


@dataclass(frozen=True)
class GraphPlan:
    name: str
    format_version: int
    nodes: tuple[NodePlan, ...]
    edges: tuple[EdgePlan, ...]
    # Event fields masked wherever events are shown (a control-plane tap); sorted.
    secret_fields: tuple[str, ...] = ()
    # The partitioned stages, by name (derived from the nodes and edges: see
    # engine/partition.py `find_stages`); printed so a reader sees what runs together.
    stages: tuple[StagePlan, ...] = ()

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "name": self.name,
            "format_version": self.format_version,
            "nodes": {n.name: n.to_dict() for n in self.nodes},
            "edges": {e.id: e.to_dict() for e in self.edges},
        }
        if self.secret_fields:  # only when set, so plans without it keep their hashes
            body["secret_fields"] = list(self.secret_fields)
        if self.stages:  # only when set, so plans without partitions keep their hashes
            body["stages"] = {s.name: s.to_dict() for s in self.stages}
        return body

    def content_hash(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_json(self.body()).encode()).hexdigest()

    def to_dict(self) -> dict[str, object]:
        out = self.body()
        out["hash"] = self.content_hash()
        return out

    def to_json(self) -> str:
        return canonical_json(self.to_dict(), indent=2) + "\n"


def _error_policy_from(raw: dict[str, object]) -> ErrorPolicy:
    return ErrorPolicy(
        action=str(raw["action"]),
        attempts=int(str(raw.get("attempts", 0))),
        backoff_ms=int(str(raw.get("backoff_ms", 0))),
        then=str(raw.get("then", "")),
    )


_EDGE_KEYS: Final = ("from_node", "from_port", "to_node", "capacity", "policy", "key", "merge", "durable",
                     "partition_by")
_REBUILD: Final = "or rebuild the plan from its graph file with `engine plan FILE`"


def _edge_words(edge_id: str, raw: dict[str, object]) -> None:
    """Refuse what this plan format does not say, naming the edge and the fix: plans written
    before the plan spoke the graph file's words had `storage: lmdb` and policy `latest`,
    which would otherwise read as a memory edge and fail only when the edge is built."""
    for key in raw:
        if key == "storage":
            raise ValueError(f"edge '{edge_id}': 'storage' is an older plan's word: write \"durable\": true "
                             f"for an edge kept on disk (storage lmdb) and leave it out for memory, {_REBUILD}")
        if key not in _EDGE_KEYS:
            raise ValueError(f"edge '{edge_id}': unknown key '{key}' (an edge has: {', '.join(_EDGE_KEYS)})")
    policy = raw.get("policy")
    if policy == "latest":
        raise ValueError(f"edge '{edge_id}': policy 'latest' is an older plan's word: write '{KEEP_LATEST}', "
                         f"{_REBUILD}")
    if not isinstance(policy, str) or policy not in POLICIES:
        raise ValueError(f"edge '{edge_id}': unknown policy {policy!r} (policies: {', '.join(POLICIES)})")


def _edge_from(edge_id: str, raw: dict[str, object]) -> EdgePlan:
    _edge_words(edge_id, raw)
    key = raw.get("key", [])
    merge = raw.get("merge", {})
    assert isinstance(key, list) and isinstance(merge, dict)
    return EdgePlan(
        id=edge_id,
        from_node=str(raw["from_node"]),
        from_port=str(raw["from_port"]),
        to_node=str(raw["to_node"]),
        capacity=int(str(raw["capacity"])),
        policy=str(raw["policy"]),
        durable=raw.get("durable") is True,
        partition_by=_strings(raw.get("partition_by")),
        key=tuple(str(k) for k in key),
        merge=tuple(sorted((str(f), str(fn)) for f, fn in merge.items())),
    )


def plan_from_dict(raw: dict[str, object]) -> GraphPlan:
    """Rebuild a plan from `GraphPlan.to_dict()` output (for example `engine plan`)."""
    nodes_raw = raw["nodes"]
    edges_raw = raw["edges"]
    assert isinstance(nodes_raw, dict) and isinstance(edges_raw, dict)
    nodes: list[NodePlan] = []
    for name in sorted(nodes_raw):
        node = nodes_raw[name]
        assert isinstance(node, dict)
        inputs = node["inputs"]
        outputs = node["outputs"]
        on_error = node["on_error"]
        secrets = node.get("secrets", {})
        assert isinstance(secrets, dict)
        with_params = node["with"]
        assert isinstance(with_params, dict)
        assert isinstance(inputs, list) and isinstance(outputs, list)
        assert isinstance(on_error, dict)
        nodes.append(
            NodePlan(
                name=str(name),
                type=str(node["type"]),
                params_json=params_json(with_params),
                inputs=tuple(str(i) for i in inputs),
                outputs=tuple(str(o) for o in outputs),
                on_error=_error_policy_from(on_error),
                # Their values were printed masked: kept masked, in the shape they had.
                secrets=tuple(SecretParam(str(p), str(secrets[p]), whole=False) for p in sorted(secrets)),
                parallelism=int(str(node.get("parallelism", 1))),
            )
        )
    edges = [_edge_from(str(eid), edges_raw[eid]) for eid in sorted(edges_raw)]
    stages_raw = raw.get("stages", {})
    assert isinstance(stages_raw, dict)
    return GraphPlan(
        name=str(raw["name"]),
        format_version=int(str(raw["format_version"])),
        nodes=tuple(nodes),
        edges=tuple(edges),
        secret_fields=_strings(raw.get("secret_fields")),
        stages=tuple(_stage_from(str(name), stages_raw[name]) for name in sorted(stages_raw)),
    )


def _stage_from(name: str, raw: object) -> StagePlan:
    assert isinstance(raw, dict)
    return StagePlan(name=name, members=_strings(raw.get("members")), parallelism=int(str(raw["parallelism"])),
                     partition_by=_strings(raw.get("partition_by")), entry=str(raw["entry"]))


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()
