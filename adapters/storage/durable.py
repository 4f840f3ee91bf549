"""Durable edges for `engine run` and `engine serve`: the LMDB store under the state directory.

The store (one LMDB environment per process) opens on the first durable edge a graph
builds, so graphs without one never create state.
"""

from collections.abc import Callable
from pathlib import Path

from engine.edges import Edge
from engine.plan import EdgePlan, GraphPlan

DurableFactory = Callable[[GraphPlan, EdgePlan], Edge]


def has_durable_edges(plan: GraphPlan) -> bool:
    return any(edge.durable for edge in plan.edges)


def durable_factory(state_dir: Path, max_mb: int = 8192, sync: bool = True) -> DurableFactory:
    """`sync=False` only for a store thrown away after the run (a graph test): no fsync."""

    def build(plan: GraphPlan, edge: EdgePlan) -> Edge:
        from adapters.storage.lmdb_edge import LmdbEdge  # py-lmdb loads only for graphs that use it
        from adapters.storage.lmdb_store import LmdbStore, MiB

        store = LmdbStore(state_dir / "edges", max_map_size=max_mb * MiB, sync=sync)
        return LmdbEdge(edge, store, plan.name)
    return build


def maintain() -> int:
    """Clear LMDB reader slots left by crashed processes (a long-running `engine serve`
    calls this with its periodic re-scan); nothing when no durable edge was ever opened."""
    import sys

    store = sys.modules.get("adapters.storage.lmdb_store")
    if store is None:
        return 0
    cleared: int = store.maintain_all()
    return cleared
