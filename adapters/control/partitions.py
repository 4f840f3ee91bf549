"""What the control plane shows of a graph whose nodes may run as parallel instances.

A partitioned node (`per_user`, parallelism 2) runs as `per_user[0]` and `per_user[1]`
behind a router `NAME[route]`: `engine ctl status` lists the node with the sum of its
instances, then each instance and the router, and pausing the node pauses every instance.
"""

from engine.partition import summed_name
from engine.plan import GraphPlan
from engine.runner import NodeRunner
from engine.runtime import Runtime

PAUSED = "paused"


def node_rows(plan: GraphPlan, runtime: Runtime) -> list[tuple[str, str, list[str]]]:
    """(name, type, inputs) of every node as loaded, then of every instance and router."""
    rows = [(node.name, node.type, list(node.inputs)) for node in plan.nodes]
    shown = {node.name for node in plan.nodes}
    types = {node.name: node.type for node in plan.nodes}
    for node in runtime.plan.nodes:
        if node.name in shown:
            continue
        rows.append((node.name, node.type, list(node.inputs)))
        shown.add(node.name)
    stats = runtime.stats()["nodes"]
    assert isinstance(stats, dict)
    for name in sorted(stats):  # member instances inside a stage instance (`per_user[1]`)
        if name not in shown:
            rows.append((name, types.get(summed_name(name), ""), []))
            shown.add(name)
    return rows


def node_state(runtime: Runtime, name: str) -> str:
    if runtime.controls.node_paused(name) or runtime.controls.node_paused(summed_name(name)):
        return PAUSED
    runners = _runners_of(runtime, name)
    return "finished" if runners and all(r.finished for r in runners) else "running"


def has_node(runtime: Runtime, name: str) -> bool:
    return bool(_runners_of(runtime, name))


def _runners_of(runtime: Runtime, name: str) -> list[NodeRunner]:
    """The runners that run node `name`: its own, or, partitioned, every instance's."""
    runner = runtime.runners.get(name)
    if runner is not None:
        return [runner]
    return [r for r in runtime.runners.values() if name in r.members]
