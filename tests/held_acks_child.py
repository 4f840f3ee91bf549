"""The graph of tests/test_held_acks.py in a process of its own (the test kills it with
SIGKILL mid-stream), its sink writing what it gets to a file, slowly, so that events wait on
the memory edge and in the sink's hands.

    python -m tests.held_acks_child STATE_DIR OUT_FILE COUNT
"""

import asyncio
import sys

from adapters.storage.lmdb_edge import durable_edges
from adapters.storage.lmdb_store import LmdbStore
from engine.node import AsyncSink, Batch, NodeContext
from engine.spec import SINK, param
from tests.runtime_support import _spec, build, test_registry

GRAPH = """
version: 2
name: held
nodes:
  src: {{type: generate, with: {{count: {count}, fields: {{n: i}}}}}}
  doubled: {{type: map, from: {{node: src, edge: {{durable: true, capacity: 512}}}}, with: {{set: {{twice: n * 2}}}}}}
  out:
    type: test.slow_file
    from: {{node: doubled, edge: {{capacity: 256}}}}
    with: {{path: "{out}"}}
"""


class SlowFile(AsyncSink):
    """Appends `n` of each event to a file, 5 ms per batch: slow enough that the test's poll
    (every 20 ms) sees a count and kills before the last batches are written."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.path = str(ctx.params["path"])  # type: ignore[index]

    async def write(self, batch: Batch) -> None:
        await asyncio.sleep(0.005)
        with open(self.path, "a") as out:
            out.write("".join(f"{event['n']}\n" for event in batch))


def main(state: str, out: str, count: int) -> int:
    registry = test_registry()
    registry.register(_spec("test.slow_file", SINK, SlowFile, {
        "path": param({"type": "string"}, "file", "out.txt")}))
    store = LmdbStore(state)
    runtime = build(GRAPH.format(count=count, out=out), registry, durable=durable_edges(store))
    ok = asyncio.run(runtime.run())
    left = runtime.edges["src->doubled"].storage_counters()["durable_bytes"]  # type: ignore[attr-defined]
    store.close()
    print(f"ok={ok} left={left}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
