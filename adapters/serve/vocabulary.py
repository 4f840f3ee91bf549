"""The reload vocabulary, one set of words for serve's log lines, `engine ctl`, WatchEvents
and the audit log.

Per graph file: `added` (a new graph), `updated` (its plan changed, or a drained graph
restarted), `unchanged`, `removed`, `rejected`. Per node of an updated graph: `kept`,
`replaced`, `added`, `removed` (engine/plan_diff.py).
"""

from collections.abc import Mapping
from typing import Final

from engine.plan_diff import NODE_ADDED, NODE_KEPT, NODE_REMOVED, NODE_REPLACED

ADDED: Final = "added"
UPDATED: Final = "updated"
UNCHANGED: Final = "unchanged"
REMOVED: Final = "removed"
REJECTED: Final = "rejected"
GRAPH_RESULTS: Final = (ADDED, UPDATED, UNCHANGED, REMOVED, REJECTED)
NODE_RESULTS: Final = (NODE_KEPT, NODE_REPLACED, NODE_ADDED, NODE_REMOVED)
SHOWN: Final = 6  # names listed per kind before "and N more"


def nodes_text(lists: Mapping[str, object], whole_swap: str) -> str:
    """`kept a, b; replaced out` — or why the whole graph was swapped — for one line."""
    if whole_swap:
        return f"whole graph swapped: {whole_swap}"
    parts = []
    for kind in NODE_RESULTS:
        value = lists.get(kind)
        names = [str(n) for n in value] if isinstance(value, (list, tuple)) else []
        if names:
            more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
            parts.append(f"{kind} {', '.join(names[:SHOWN])}{more}")
    return "; ".join(parts)
