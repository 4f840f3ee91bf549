"""`engine diff` as text (a terminal) and markdown (a pull-request comment: a summary table,
then details). Both are read from the JSON-ready report (adapters/diff/report.py)."""

import json
from typing import Final

from adapters.serve.vocabulary import UNCHANGED, nodes_text

Json = dict[str, object]
MISSING: Final = "(none)"
MARKER: Final = "<!-- engine diff -->"  # lets a CI job find and update its own comment


def _value(change: Json, side: str) -> str:
    if side not in change:
        return MISSING
    return json.dumps(change[side], sort_keys=True, ensure_ascii=False)


def _arrow(change: Json) -> str:
    text = f"{_value(change, 'old')} → {_value(change, 'new')}"
    return text + " (secret changed)" if change.get("secret") else text


def _graphs(out: Json) -> list[tuple[str, Json]]:
    graphs = out["graphs"]
    assert isinstance(graphs, dict)
    return [(name, g) for name, g in graphs.items() if isinstance(g, dict)]


def _node_lists(graph: Json) -> dict[str, list[str]]:
    nodes = graph.get("nodes")
    lists: dict[str, list[str]] = {}
    for name, kind in (nodes.items() if isinstance(nodes, dict) else ()):
        lists.setdefault(str(kind), []).append(str(name))
    return lists


def _lines(graph: Json) -> list[str]:
    """The details of one graph, one fact a line (shared by text and markdown)."""
    lines: list[str] = []
    for problem in _list(graph, "problems"):
        lines.append(f"problem: {problem}")
    if graph.get("keeps_running"):
        lines.append("what runs now keeps running")
    if graph.get("action") == "updated":
        lines.append("nodes: " + nodes_text(_node_lists(graph), str(graph.get("whole_swap", ""))))
    for change in _list(graph, "changes"):
        if isinstance(change, dict):
            lines.append(f"{change['path']}: {_arrow(change)}")
    edges = graph.get("edges")
    for edge_id, edge in (edges.items() if isinstance(edges, dict) else ()):
        if not isinstance(edge, dict):
            continue
        kind = edge.get("change")
        if kind == "changed":
            for change in _list(edge, "changes"):
                if isinstance(change, dict):
                    lines.append(f"edge {edge_id} {change['path']}: {_arrow(change)}")
        else:
            shown = edge.get("new" if kind == "added" else "old")
            lines.append(f"edge {edge_id} {kind}: {json.dumps(shown, sort_keys=True)}")
    consequences = graph.get("consequences")
    if isinstance(consequences, dict):
        for orphan in _list(consequences, "orphaned"):
            if isinstance(orphan, dict):
                lines.append(f"durable edge {orphan['edge']}: its stored events are orphaned ({orphan['why']}); "
                             f"engine state prune would delete {orphan['prune']}")
        starts = [str(s) for s in _list(consequences, "sources_start_over")]
        if starts:
            lines.append("sources that start over from the beginning: " + ", ".join(starts))
    version = graph.get("format_version")
    if isinstance(version, dict):
        lines.append(f"format version {version.get('old')} → {version.get('new')}")
    return lines


def _list(graph: Json, key: str) -> list[object]:
    value = graph.get(key)
    return value if isinstance(value, list) else []


def text(out: Json) -> str:
    rows: list[str] = []
    for name, graph in _graphs(out):
        rows.append(f"{name} ({graph.get('file')}): {graph.get('action')}")
        if graph.get("action") == UNCHANGED and "format_version" not in graph:
            continue
        rows.extend(f"  {line}" for line in _lines(graph))
    if not rows:
        rows.append("no graph files on either side")
    return "\n".join(rows) + "\n"


def _cell(value: str) -> str:
    return _code(value.replace("\n", " "))


def markdown(out: Json) -> str:
    graphs = _graphs(out)
    rows = [MARKER, "### engine diff", ""]
    if not graphs:
        return "\n".join(rows + ["No graph files on either side.", ""])
    rows += ["| graph | file | action | nodes |", "|---|---|---|---|"]
    for name, graph in graphs:
        nodes = nodes_text(_node_lists(graph), str(graph.get("whole_swap", ""))) \
            if graph.get("action") == "updated" else ""
        rows.append(f"| {_cell(name)} | {_cell(str(graph.get('file')))} | **{graph.get('action')}** "
                    f"| {_cell(nodes)} |")
    details = [(name, graph) for name, graph in graphs if _lines(graph) and graph.get("action") != UNCHANGED]
    for name, graph in details:
        rows += ["", f"#### {_code(name)} — {graph.get('action')}", ""]
        rows += [f"- {_code(line)}" for line in _lines(graph)]
    return "\n".join(rows) + "\n"


def _code(line: str) -> str:
    """A detail line with markdown's special characters escaped (`****` is no rule)."""
    for char in "\\`*[]<|":
        line = line.replace(char, "\\" + char)
    return line
