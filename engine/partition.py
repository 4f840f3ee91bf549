"""Partitioned stages: which nodes run together in parallel instances, and the plan that
runs them.

A node with `parallelism: N` runs as N instances. Consecutive nodes with the same
parallelism, joined by edges without a new `partition_by`, form one *stage*: each instance
of the stage runs all its members (engine/stage_instance.py), so an event that entered
instance 2 stays in instance 2 until it leaves the stage. Events enter a stage through
exactly one edge; its `partition_by` routes each to instance `stable_hash(key) % N`
(engine/stable_hash.py), or, without `partition_by`, round-robin. What leaves a stage is
merged: the consumer reads every instance's edge.

`expand` turns a plan with stages into the plan the runtime builds (`Runtime.plan`): per
stage a router node `NAME[route]` (type `partition`) and one node per instance
`NAME[i]` (type `stage`), which an executor runs in this process or on a Ray actor.
A plan without stages expands to itself.
"""

from typing import Final

from engine.ids import edge_id
from engine.plan import EdgePlan, GraphPlan, NodePlan, StagePlan, params_json

ROUTER_TYPE: Final = "partition"  # internal: never written in a graph file
STAGE_TYPE: Final = "stage"
INTERNAL_TYPES: Final = (ROUTER_TYPE, STAGE_TYPE)
ROUTER_SUFFIX: Final = "[route]"


def instance_name(stage: str, index: int) -> str:
    return f"{stage}[{index}]"


def router_name(stage: str) -> str:
    return stage + ROUTER_SUFFIX


def find_stages(nodes: tuple[NodePlan, ...], edges: tuple[EdgePlan, ...]) -> tuple[StagePlan, ...]:
    """The stages of a graph, sorted by name. A stage with more than one entry edge (the
    loader refuses it, HR100) gets the first by id as its entry."""
    parallel = {n.name: n.parallelism for n in nodes if n.parallelism > 1}
    group: dict[str, str] = {name: name for name in parallel}

    def root(name: str) -> str:
        while group[name] != name:
            group[name] = group[group[name]]
            name = group[name]
        return name

    for e in edges:
        if joins_stage(e, parallel):
            a, b = root(e.from_node), root(e.to_node)
            if a != b:
                group[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for name in sorted(parallel):
        members.setdefault(root(name), []).append(name)
    order = topological(nodes, edges)
    stages: list[StagePlan] = []
    for names in members.values():
        inside = set(names)
        entries = sorted((e for e in edges if e.to_node in inside and e.from_node not in inside),
                         key=lambda e: e.id)
        if not entries:
            continue  # a stage nothing feeds (a cycle the loader refuses)
        entry = entries[0]
        stages.append(StagePlan(
            name=entry.to_node,
            members=tuple(sorted(names, key=order.index)),
            parallelism=parallel[entry.to_node],
            partition_by=entry.partition_by,
            entry=entry.id,
        ))
    return tuple(sorted(stages, key=lambda s: s.name))


def joins_stage(e: EdgePlan, parallel: dict[str, int]) -> bool:
    """Whether an edge keeps its two ends in one stage: both have the same parallelism and
    it does not partition again."""
    a = parallel.get(e.from_node, 1)
    return a > 1 and a == parallel.get(e.to_node, 1) and not e.partition_by


def entry_edges(stage_members: set[str], edges: tuple[EdgePlan, ...]) -> list[EdgePlan]:
    return [e for e in edges if e.to_node in stage_members and e.from_node not in stage_members]


def topological(nodes: tuple[NodePlan, ...], edges: tuple[EdgePlan, ...]) -> list[str]:
    """Node names, producers before consumers, names breaking ties (a cycle, which the loader
    refuses, last)."""
    indegree = {n.name: len(n.inputs) for n in nodes}
    ready = sorted(name for name, d in indegree.items() if d == 0)
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for e in edges:
            if e.from_node == name and e.to_node in indegree:
                indegree[e.to_node] -= 1
                if indegree[e.to_node] == 0:
                    ready.append(e.to_node)
                    ready.sort()
    order.extend(sorted(n.name for n in nodes if n.name not in order))  # a cycle: never run
    return order


def exit_port(stage: StagePlan, member: str, port: str) -> str:
    """The port of a stage instance node that carries `member.port` out of the stage: the
    member's own port name for a one-node stage, `member:port` otherwise."""
    if len(stage.members) == 1:
        return port
    return f"{member}:{port}"


def exits(stage: StagePlan, edges: tuple[EdgePlan, ...]) -> list[tuple[str, str]]:
    """(member, port) pairs with an edge leaving the stage, in member then port order."""
    inside = set(stage.members)
    found = {(e.from_node, e.from_port) for e in edges if e.from_node in inside and e.to_node not in inside}
    return sorted(found, key=lambda mp: (stage.members.index(mp[0]), mp[1]))


def stage_params(stage: StagePlan, plan: GraphPlan, index: int) -> str:
    """The instance node's `with:`: its stage and members as the plan prints them, so a
    reload that changes a member (or N, or the key) replaces every instance."""
    members = {name: plan.node(name).to_dict() for name in stage.members}
    inside = set(stage.members)
    internal = sorted(e.id for e in plan.edges if e.from_node in inside and e.to_node in inside)
    return params_json({"stage": stage.to_dict(), "members": members, "internal_edges": internal,
                        "instance": index})


def expand(plan: GraphPlan) -> GraphPlan:
    """The plan the runtime builds: every stage as a router and N instance nodes."""
    if not plan.stages:
        return plan
    member_of: dict[str, StagePlan] = {m: s for s in plan.stages for m in s.members}
    nodes: dict[str, NodePlan] = {}
    edges: list[EdgePlan] = []
    new_inputs: dict[str, list[str]] = {}

    def add_edge(e: EdgePlan) -> None:
        edges.append(e)
        new_inputs.setdefault(e.to_node, []).append(e.id)

    def producers(e: EdgePlan) -> list[tuple[str, str]]:
        """Where an edge of the graph starts in the expanded plan: every instance of a
        stage member, or the node itself."""
        stage = member_of.get(e.from_node)
        if stage is None:
            return [(e.from_node, e.from_port)]
        return [(instance_name(stage.name, i), exit_port(stage, e.from_node, e.from_port))
                for i in range(stage.parallelism)]

    for e in plan.edges:
        target = member_of.get(e.to_node)
        if target is not None and e.from_node in target.members:
            continue  # inside a stage: its instance runs it
        consumer = e.to_node
        if target is not None:
            consumer = router_name(target.name)  # the entry edge: into the stage's router
        for node, port in producers(e):
            add_edge(_edge(e, node, port, consumer))
    for stage in plan.stages:
        entry = next(e for e in plan.edges if e.id == stage.entry)
        router = router_name(stage.name)
        ports = tuple(str(i) for i in range(stage.parallelism))
        for i in range(stage.parallelism):
            add_edge(_edge(entry, router, ports[i], instance_name(stage.name, i)))
        nodes[router] = NodePlan(
            name=router, type=ROUTER_TYPE,
            params_json=params_json({"partition_by": list(stage.partition_by), "instances": stage.parallelism}),
            inputs=(), outputs=ports, on_error=plan.node(stage.name).on_error)
        outputs = tuple(exit_port(stage, m, p) for m, p in exits(stage, plan.edges))
        for i in range(stage.parallelism):
            instance = instance_name(stage.name, i)
            nodes[instance] = NodePlan(name=instance, type=STAGE_TYPE, params_json=stage_params(stage, plan, i),
                                   inputs=(), outputs=outputs, on_error=plan.node(stage.name).on_error)
    for kept in plan.nodes:
        if kept.name not in member_of:
            nodes[kept.name] = kept
    final = tuple(_with_inputs(nodes[n], new_inputs.get(n, [])) for n in sorted(nodes))
    # Without stages: expanding what is already expanded changes nothing.
    return GraphPlan(name=plan.name, format_version=plan.format_version, nodes=final,
                     edges=tuple(sorted(edges, key=lambda e: e.id)), secret_fields=plan.secret_fields)


def _edge(original: EdgePlan, from_node: str, from_port: str, to_node: str) -> EdgePlan:
    return EdgePlan(id=edge_id(from_node, from_port, to_node), from_node=from_node, from_port=from_port,
                    to_node=to_node, capacity=original.capacity, policy=original.policy, key=original.key,
                    merge=original.merge, durable=original.durable, partition_by=original.partition_by)


def _with_inputs(node: NodePlan, inputs: list[str]) -> NodePlan:
    if node.type not in INTERNAL_TYPES and not node.inputs:
        return node
    return NodePlan(name=node.name, type=node.type, params_json=node.params_json, inputs=tuple(inputs),
                    outputs=node.outputs, on_error=node.on_error, secrets=node.secrets,
                    parallelism=node.parallelism)


def stage_of_instance(graph: GraphPlan, node: NodePlan) -> tuple[StagePlan, int]:
    """The stage of the user's `graph` and the index an instance node runs."""
    index = node.params().get("instance")
    assert isinstance(index, int)
    name = summed_name(node.name)
    for stage in graph.stages:
        if stage.name == name:
            return stage, index
    raise KeyError(node.name)


def summed_name(instance: str) -> str:
    """`per_user[1]` -> `per_user`; other names as they are."""
    cut = instance.rfind("[")
    return instance[:cut] if cut > 0 and instance.endswith("]") else instance



def with_stage_totals(nodes: dict[str, dict[str, object]], stages: tuple[StagePlan, ...]) -> None:
    """Add, per member of each stage, the sum over its instances under the member's own
    name (`per_user` beside `per_user[0]`, `per_user[1]`)."""
    for stage in stages:
        for member in stage.members:
            total: dict[str, object] = {"in": 0, "out": 0, "errors": 0, "busy_s": 0.0, "instances": stage.parallelism}
            ports: dict[str, int] = {}
            for i in range(stage.parallelism):
                one = nodes.get(instance_name(member, i))
                if one is None:
                    continue
                for key in ("in", "out", "errors"):
                    total[key] = _int(total[key]) + _int(one.get(key, 0))
                total["busy_s"] = round(_float(total["busy_s"]) + _float(one.get("busy_s", 0.0)), 6)
                one_ports = one.get("ports", {})
                if isinstance(one_ports, dict):
                    for port, count in one_ports.items():
                        ports[str(port)] = ports.get(str(port), 0) + _int(count)
            total["ports"] = ports
            nodes[member] = total


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0
