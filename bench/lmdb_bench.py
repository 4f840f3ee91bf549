"""What a durable edge costs: `LmdbEdge` beside raw py-lmdb, and the reference pipeline
with every edge durable beside the same pipeline in memory.

Edge rows (same process, same disk, `sync=True`: one fsync per commit), per batch of 1024
events of about 200 bytes of JSON:

- raw py-lmdb: the events' JSON bytes appended in one transaction, then read and deleted
  from the front in another: the least a durable FIFO on LMDB can do;
- raw py-lmdb + encoding: the same, encoding each event first as the edge does (MessagePack)
  (what any store of events pays);
- `LmdbEdge`: `offer` (one commit), `take`, `ack` (one commit), on a `block` edge of
  capacity 1024;
- `LmdbEdge`, encrypted: the same with a key (`state_encryption_key_file`): every value
  sealed with AES-256-GCM on the way in and opened on the way back (adapters/storage/crypt.py).

Pipeline rows: bench/peers/headrace_graph.py's graph, run in this process by
`engine.runtime.Runtime` on memory edges (fused chains, the default; and unfused), and
with `storage: lmdb` on every edge (durable edges end fused chains), with and without a key
(events that stay cached in memory are not read back, so not opened). Best of `--repeat`,
rounds interleaved. Usage:

    .venv/bin/python bench/lmdb_bench.py                      # 1M events per row, best of 3
    .venv/bin/python bench/lmdb_bench.py --count 20480 --pipeline-count 20000 --repeat 1
"""

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmdb

from adapters.cli.registry import default_registry
from adapters.storage.crypt import PLAIN, Codec, Sealer
from adapters.storage.lmdb_edge import LmdbEdge, durable_edges
from adapters.storage.lmdb_store import GiB, LmdbStore
from adapters.storage.lmdb_table import encode
from bench.peers.headrace_graph import GRAPH
from engine.plan import EdgePlan
from engine.runtime import Runtime
from loader.api import load_text

BATCH = 1024
Event = dict[str, object]
pack = struct.Struct(">Q").pack


def batch_of_events() -> list[Event]:
    """The reference pipeline's events, priced, with a note that brings each to ~200 bytes."""
    return [{"id": i, "user": i % 1000, "amount": float(i % 97), "kind": "buy" if i % 3 else "sell",
             "amount_cents": (i % 97) * 100, "note": "n" * 122} for i in range(BATCH)]


def raw_loop(folder: Path, batch: list[Event], encoding: bool) -> Callable[[int], int]:
    records = [encode(e) for e in batch]

    def loop(rounds: int) -> int:
        with tempfile.TemporaryDirectory(dir=folder) as where:
            env = lmdb.open(where, map_size=GiB, max_dbs=4, sync=True)
            db = env.open_db(b"queue")
            seq = moved = 0
            for _ in range(rounds):
                values = [encode(e) for e in batch] if encoding else records
                with env.begin(write=True, db=db) as txn:
                    txn.cursor().putmulti([(pack(seq + i), v) for i, v in enumerate(values)], append=True)
                seq += len(values)
                with env.begin(write=True, db=db) as txn:
                    cursor = txn.cursor()
                    cursor.first()
                    popped = []
                    for _ in range(BATCH):
                        popped.append(cursor.value())
                        cursor.delete()
                moved += len(popped)
            env.close()
        return moved

    return loop


def sealer() -> Codec:
    key = os.urandom(32)
    return Sealer(key, "bench key " + base64.b64encode(key[:4]).decode(), "bench")


def edge_loop(folder: Path, batch: list[Event], codec: Codec = PLAIN) -> Callable[[int], int]:
    def loop(rounds: int) -> int:
        with tempfile.TemporaryDirectory(dir=folder) as where:
            store = LmdbStore(Path(where), map_size=GiB // 4, sync=True, codec=codec)
            edge = LmdbEdge(EdgePlan("bench->sink", "bench", "out", "sink", BATCH, "block", durable=True),
                            store, "bench")
            for _ in range(rounds):
                if edge.offer(batch):
                    raise SystemExit("the edge refused events; the benchmark's assumption broke")
                taken = edge.take(BATCH)
                edge.ack(len(taken))
            delivered = edge.delivered
            if edge.depth or edge.in_flight:
                raise SystemExit("events left on the edge")
            store.close()
        return delivered

    return loop


def pipeline(folder: Path, count: int, storage: str, fuse: bool,
             codec: Codec = PLAIN) -> Callable[[], tuple[float, dict[str, object]]]:
    """One run of the reference graph; returns (seconds, totals by user)."""
    def run() -> tuple[float, dict[str, object]]:
        with tempfile.TemporaryDirectory(dir=folder) as where:
            out = Path(where) / "totals.jsonl"
            text = GRAPH.format(count=count, path=json.dumps(str(out)))
            if storage != "memory":
                text = text.replace("policy: block}", f"policy: block, storage: {storage}}}")
            registry = default_registry()
            loaded = load_text("peers_bench.yaml", text, registry)
            assert loaded.plan is not None, [p.message for p in loaded.problems]
            assert all(e.durable == (storage == "lmdb") for e in loaded.plan.edges)
            store = LmdbStore(Path(where) / "state", sync=True, codec=codec) if storage == "lmdb" else None
            runtime = Runtime(loaded.plan, registry, fuse=fuse,
                              durable=durable_edges(store) if store is not None else None)
            started = time.perf_counter()
            if not asyncio.run(runtime.run()):
                raise SystemExit(f"the graph failed: {runtime.failure}")
            seconds = time.perf_counter() - started
            if store is not None:
                store.close()
            totals = {str(row["user"]): row["total"] for row in map(json.loads, out.read_text().splitlines())}
        return seconds, totals

    return run


def engine_mode() -> str:
    from engine import buildinfo

    return buildinfo.mode()


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for index, row in enumerate([header] + rows):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("-+-".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="events per edge row (default 1M)")
    parser.add_argument("--pipeline-count", type=int, default=1_000_000, help="events per pipeline run (default 1M)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best counts (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go (default: the temp dir)")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.gettempdir())
    rounds = max(1, args.count // BATCH)
    batch = batch_of_events()
    size = sum(len(json.dumps(e, separators=(",", ":"))) for e in batch) / BATCH
    rows: dict[str, Callable[[int], int]] = {
        "raw py-lmdb append + pop": raw_loop(folder, batch, False),
        "raw py-lmdb + encoding": raw_loop(folder, batch, True),
        "LmdbEdge offer + take + ack": edge_loop(folder, batch),
        "LmdbEdge, encrypted (AES-GCM)": edge_loop(folder, batch, sealer()),
    }
    runs = {
        "memory edges (fused chains)": pipeline(folder, args.pipeline_count, "memory", True),
        "memory edges (unfused)": pipeline(folder, args.pipeline_count, "memory", False),
        "lmdb edges (storage: lmdb)": pipeline(folder, args.pipeline_count, "lmdb", True),
        "lmdb edges, encrypted": pipeline(folder, args.pipeline_count, "lmdb", True, sealer()),
    }
    best = {name: float("inf") for name in list(rows) + list(runs)}
    totals: dict[str, dict[str, object]] = {}
    for _ in range(args.repeat):
        for name, loop in rows.items():
            started = time.perf_counter()
            if loop(rounds) != rounds * BATCH:
                raise SystemExit(f"{name}: not every event came out")
            best[name] = min(best[name], time.perf_counter() - started)
        for name, run in runs.items():
            seconds, totals[name] = run()
            best[name] = min(best[name], seconds)
    moved = rounds * BATCH
    raw = moved / best["raw py-lmdb append + pop"]
    print(f"Python {sys.version.split()[0]}, engine {engine_mode()}, py-lmdb {lmdb.__version__}; "
          f"databases under {folder}; sync=True; best of {args.repeat}\n")
    print(f"{moved:,} events per row in batches of {BATCH}, {size:.0f} bytes of JSON each\n")
    table(["edge", "events/s", "ratio to raw"],
          [[name, f"{moved / best[name]:,.0f}", f"{moved / best[name] / raw:.2f}"] for name in rows])
    agree = all(t == totals["memory edges (fused chains)"] for t in totals.values())
    memory = args.pipeline_count / best["memory edges (fused chains)"]
    print(f"\nreference pipeline, {args.pipeline_count:,} events, totals {'OK' if agree else 'DIFFER'}\n")
    table(["pipeline", "events/s", "ratio to memory"],
          [[name, f"{args.pipeline_count / best[name]:,.0f}", f"{args.pipeline_count / best[name] / memory:.2f}"]
           for name in runs])
    if not agree:
        raise SystemExit("the runs disagree on the totals")


if __name__ == "__main__":
    main()
