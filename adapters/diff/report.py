"""The report `engine diff` prints: serve's decision per graph (adapters/serve/decide.py),
with the details a reviewer needs, as one JSON-ready mapping (docs/diff.md has its shape).

Every value shown passes engine/secrets.py: the plans are compared unmasked (a rotated
token is a change) but shown masked, so a changed secret reads `**** → ****`.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from adapters.serve.decide import Decision
from adapters.serve.vocabulary import ADDED, REJECTED, REMOVED, UNCHANGED, UPDATED
from engine.plan import GraphPlan
from engine.plan_chains import source_nodes
from engine.plan_diff import NODE_ADDED, NODE_KEPT, NODE_REMOVED, NODE_REPLACED
from engine.secrets import MASK, printable_plan
from engine.spec import SpecRegistry

Json = dict[str, object]
_ABSENT = object()


@dataclass(frozen=True)
class OldGraph:
    """One graph file of the old side: its plan when it loads, and the version it declares."""

    plan: GraphPlan | None
    declared_version: int = 0


def report(decisions: list[Decision], old: Mapping[str, OldGraph], registry: SpecRegistry) -> Json:
    graphs: Json = {}
    for decision in decisions:
        key = decision.graph or decision.file
        if key in graphs:  # two files claiming one name: the rejected one goes by its file
            key = decision.file
        graphs[key] = _graph(decision, old.get(decision.file), registry)
    return {"graphs": graphs}


def changes(out: Json) -> bool:
    """Whether anything would change (`--exit-code`)."""
    graphs = out["graphs"]
    assert isinstance(graphs, dict)
    return any(isinstance(g, dict) and g.get("action") != UNCHANGED for g in graphs.values())


def _graph(decision: Decision, before: OldGraph | None, registry: SpecRegistry) -> Json:
    old = before.plan if before is not None else None
    new = decision.plan
    out: Json = {"action": decision.result, "file": decision.file, "nodes": {}}
    if decision.result == REJECTED:
        out["problems"] = list(decision.problems)
        if old is not None:
            out["keeps_running"] = True  # serve keeps the old version
        return out
    if decision.result == REMOVED and old is not None:
        out["nodes"] = {n.name: NODE_REMOVED for n in old.nodes}
        out["consequences"] = _tidy({"orphaned": _orphaned(old, None, "the graph is removed")})
        return out
    if new is None:
        return out
    if decision.result == ADDED:
        out["nodes"] = {n.name: NODE_ADDED for n in new.nodes}
    if decision.result == UPDATED and decision.nodes is not None:
        nodes: Json = {}
        for kind, names in ((NODE_KEPT, decision.nodes.kept), (NODE_REPLACED, decision.nodes.replaced),
                            (NODE_ADDED, decision.nodes.added), (NODE_REMOVED, decision.nodes.removed)):
            for name in names:
                nodes[name] = kind
        out["nodes"] = dict(sorted(nodes.items()))
        if decision.nodes.whole_swap:
            out["whole_swap"] = decision.nodes.whole_swap
    if decision.result == UPDATED and old is not None:
        out.update(_plan_changes(old, new, registry))
        consequences = _tidy({
            "orphaned": _orphaned(old, new, ""),
            "sources_start_over": sorted(source_nodes(new, registry) & set(decision.nodes.replaced
                                                                            if decision.nodes else ())),
        })
        if consequences:
            out["consequences"] = consequences
    declared = decision.loaded.migrated_from if decision.loaded is not None else 0
    new_version = declared or new.format_version
    if before is not None and before.declared_version and before.declared_version != new_version:
        out["format_version"] = {"old": before.declared_version, "new": new_version}
    return out


def _tidy(found: Json) -> Json:
    return {k: v for k, v in found.items() if v}


def _orphaned(old: GraphPlan, new: GraphPlan | None, why_all: str) -> list[Json]:
    """Durable edges of `old` whose stored events nobody will read: they stay in the state
    directory until `engine state prune` deletes them (`prune` names them graph/edge)."""
    out: list[Json] = []
    kept = {e.id: e for e in new.edges} if new is not None else {}
    for edge in old.edges:
        if not edge.durable:
            continue
        after = kept.get(edge.id)
        if why_all:
            why = why_all
        elif new is not None and new.name != old.name:
            why = f"the graph is renamed to '{new.name}'"
        elif after is None:
            why = "the edge is removed"
        elif not after.durable:
            why = "the edge is no longer durable"
        else:
            continue
        out.append({"edge": edge.id, "why": why, "prune": f"{old.name}/{edge.id}"})
    return out


def _plan_changes(old: GraphPlan, new: GraphPlan, registry: SpecRegistry) -> Json:
    """Parameter and edge changes, by path, with masked values."""
    raw_old, raw_new = old.body(), new.body()
    shown_old, shown_new = printable_plan(old, registry), printable_plan(new, registry)
    params: list[Json] = []
    edges: Json = {}
    for path in _paths(raw_old, raw_new, ()):
        change = _change(path, raw_old, raw_new, shown_old, shown_new)
        if path and path[0] == "edges" and len(path) >= 2:
            edge = edges.setdefault(path[1], {"change": "changed", "changes": []})
            assert isinstance(edge, dict)
            if len(path) == 2:
                edge["change"] = "added" if "old" not in change else "removed" if "new" not in change else "changed"
                edge.update({k: v for k, v in change.items() if k in ("old", "new")})
            else:
                items = edge["changes"]
                assert isinstance(items, list)
                items.append({**change, "path": ".".join(path[2:])})
        else:
            params.append(change)
    out: Json = {}
    if params:
        out["changes"] = params
    if edges:
        out["edges"] = {k: _tidy(v) if isinstance(v, dict) else v for k, v in sorted(edges.items())}
    return out


def _paths(old: object, new: object, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The paths where two plan bodies differ: mappings are walked, anything else (lists
    too) is one value. A whole node or edge added or removed is one path."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[tuple[str, ...]] = []
        for key in sorted(set(old) | set(new), key=str):
            if key in ("hash",):
                continue
            found.extend(_paths(old.get(key, _ABSENT), new.get(key, _ABSENT), path + (str(key),)))
        return found
    return [path]


def _at(tree: object, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return _ABSENT
        tree = tree[key]
    return tree


def _change(path: tuple[str, ...], raw_old: Json, raw_new: Json, shown_old: Json, shown_new: Json) -> Json:
    if len(path) >= 4 and path[0] == "nodes" and path[2] == "secrets":
        # The plan keeps a hash of each secret (`secrets` by pointer into `with`): a changed
        # hash is a changed secret, shown at its parameter's path and masked.
        where = ".".join(p for p in path[3].split("/") if p)
        out: Json = {"path": f"nodes.{path[1]}.with.{where}" if where else ".".join(path)}
        for side, raw in (("old", raw_old), ("new", raw_new)):
            if _at(raw, path) is not _ABSENT:
                out[side] = MASK
        out["secret"] = True
        return out
    out = {"path": ".".join(path)}
    before, after = _shown(path, raw_old, shown_old), _shown(path, raw_new, shown_new)
    if before is not _ABSENT:
        out["old"] = before
    if after is not _ABSENT:
        out["new"] = after
    if before is not _ABSENT and before == after:
        out["secret"] = True  # the values differ, but both are secret: shown masked
    return out


def _shown(path: tuple[str, ...], raw: Json, shown: Json) -> object:
    """The masked value at `path`; MASK where masking changed the shape under it."""
    if _at(raw, path) is _ABSENT:
        return _ABSENT
    value = _at(shown, path)
    return MASK if value is _ABSENT else value


__all__ = ["ADDED", "REJECTED", "REMOVED", "UNCHANGED", "UPDATED", "OldGraph", "changes", "report"]
