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


def durable_factory(state_dir: Path, max_mb: int = 8192, sync: bool = True,
                    key_file: Path | None = None) -> DurableFactory:
    """`sync=False` only for a store thrown away after the run (a graph test): no fsync.
    `key_file` (state_encryption_key_file) is read now: a bad one is a start-up error."""
    from adapters.storage.crypt import codec_for  # cryptography loads only with a key

    codec = codec_for(key_file)

    def build(plan: GraphPlan, edge: EdgePlan) -> Edge:
        from adapters.storage.lmdb_edge import LmdbEdge  # py-lmdb loads only for graphs that use it
        from adapters.storage.lmdb_store import LmdbStore, MiB

        store = LmdbStore(state_dir / "edges", max_map_size=max_mb * MiB, sync=sync, codec=codec)
        return LmdbEdge(edge, store, plan.name)
    return build


def check_state(state_dir: Path, key_file: Path | None) -> None:
    """At start-up of `engine serve`, before any graph: refuse a key that does not fit the
    state directory (a missing, wrong or unneeded key), rather than fail each graph later.
    Raises NodeFailure with one line."""
    from adapters.storage.crypt import codec_for

    codec = codec_for(key_file)
    if not (state_dir / "edges" / "data.mdb").exists():
        return
    from adapters.storage.lmdb_store import LmdbStore

    LmdbStore(state_dir / "edges", codec=codec).close()


def maintain() -> int:
    """Clear LMDB reader slots left by crashed processes (a long-running `engine serve`
    calls this with its periodic re-scan); nothing when no durable edge was ever opened."""
    import sys

    store = sys.modules.get("adapters.storage.lmdb_store")
    if store is None:
        return 0
    cleared: int = store.maintain_all()
    return cleared
