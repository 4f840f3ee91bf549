"""What a reload does to each graph file: the one decision `engine serve` acts on and
`engine diff` shows.

`decide_file` is a pure function of what runs for a file (`Current`) and the file's new
text: it loads the text, checks the graph name, compares plan hashes and, for a changed
running graph, asks engine/plan_chains.py:reload_changes which nodes are kept, replaced,
added and removed. `Host.apply` (adapters/serve/host.py) then acts on the decision; only
building the new nodes can still turn an `added` or `updated` into `rejected` there.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from adapters.serve.running import DRAINED, FAILED, RUNNING, STOPPED
from adapters.serve.scan import GraphFile, Snapshot
from adapters.serve.vocabulary import ADDED, REJECTED, REMOVED, UNCHANGED, UPDATED
from engine.plan import GraphPlan
from engine.plan_chains import reload_changes
from engine.plan_diff import NodeChanges, whole_graph
from engine.spec import SpecRegistry
from loader.api import LoadResult, claim_name, load_text
from loader.problems import ERROR

__all__ = ["Current", "Decision", "claims", "decide", "decide_file", "removed_files"]


@dataclass(frozen=True)
class Current:
    """What runs for one graph file, as the decision sees it."""

    plan: GraphPlan
    plan_hash: str
    state: str  # adapters/serve/running.py: running, finished, failed, stopped, drained
    # The nodes that run as one now (fused chains, GPU segments); asked only for a change.
    chains: Callable[[], list[list[str]]]
    blocker: str = ""  # why nodes cannot be replaced in place now (paused, stopping)


@dataclass(frozen=True)
class Decision:
    file: str
    graph: str
    result: str  # adapters/serve/vocabulary.py: added, updated, unchanged, removed, rejected
    plan: GraphPlan | None = None  # the new plan (added, updated, unchanged)
    plan_hash: str = ""
    problems: tuple[str, ...] = ()
    nodes: NodeChanges | None = None  # updated: what happens to each node
    in_place: bool = False  # updated: the kept nodes go on in the running runtime
    loaded: LoadResult | None = None  # the new file as loaded (for `engine diff`'s details)


def claims(running: Mapping[str, str], snapshot: Snapshot) -> dict[str, str]:
    """Graph name -> file, seeded with what runs (`running`: file -> graph name), so two
    files cannot run one name: a name already running stays with its file, and a newcomer
    taking it is the one rejected."""
    return {graph: file for file, graph in running.items() if file in snapshot}


def removed_files(current: Iterable[str], snapshot: Snapshot) -> list[str]:
    return sorted(set(current) - set(snapshot))


def decide_file(name: str, file: GraphFile, running: Current | None, claimed: dict[str, str],
                registry: SpecRegistry, env: Mapping[str, str] | None, restart_stopped: bool = False,
                keep_unset: bool = False) -> Decision:
    """What a reload does with one file of the new snapshot (records its name in `claimed`)."""
    current = running.plan.name if running is not None else ""
    if file.error:
        return Decision(name, current, REJECTED, problems=(f"{file.path}: {file.error}",))
    loaded = load_text(str(file.path), file.text, registry, env, keep_unset)
    errors = [p for p in loaded.problems if p.severity == ERROR]
    if loaded.plan is None or errors:
        problems = tuple(f"{p.file}:{p.line}:{p.column}: {p.code} {p.message}" for p in errors)
        return Decision(name, current or loaded.name, REJECTED, problems=problems, loaded=loaded)
    plan = loaded.plan
    holder = claim_name(claimed, plan.name, name)
    if holder:
        return Decision(name, plan.name, REJECTED, problems=(
            f"{file.path}: the graph name '{plan.name}' is already used by {holder}; "
            "give one of them another `name:`",), loaded=loaded)
    plan_hash = plan.content_hash()
    if running is None:
        return Decision(name, plan.name, ADDED, plan, plan_hash, loaded=loaded)
    # `engine ctl reload` also starts a failed graph again once its cause is gone (a lost
    # Ray node, a database back up); a file-watch reload leaves an unchanged one failed.
    stopped = running.state in (STOPPED, DRAINED, FAILED)
    if running.plan_hash == plan_hash and not (restart_stopped and stopped):
        return Decision(name, plan.name, UNCHANGED, plan, plan_hash, loaded=loaded)
    if running.plan.name != plan.name:
        changes = whole_graph(running.plan, plan, "the graph was renamed")
    elif running.state != RUNNING:
        changes = whole_graph(running.plan, plan, f"the graph is {running.state}")
    else:
        chains = [] if running.blocker else running.chains()
        changes = reload_changes(running.plan, plan, registry, chains, running.blocker)
    return Decision(name, plan.name, UPDATED, plan, plan_hash, nodes=changes,
                    in_place=not changes.whole_swap, loaded=loaded)


def decide(current: Mapping[str, Current], snapshot: Snapshot, registry: SpecRegistry,
           env: Mapping[str, str] | None, keep_unset: bool = False) -> list[Decision]:
    """Every file's decision, in the order a reload takes them, then the removed files."""
    claimed = claims({file: c.plan.name for file, c in current.items()}, snapshot)
    out = [decide_file(name, snapshot[name], current.get(name), claimed, registry, env, keep_unset=keep_unset)
           for name in sorted(snapshot)]
    for name in removed_files(current, snapshot):
        gone = current[name]
        out.append(Decision(name, gone.plan.name, REMOVED, plan_hash=gone.plan_hash))
    return out
