"""What an edge costs: `engine.edges.Edge` offer/take per policy beside a bare deque.

Each policy's edge (capacity 1024) gets a batch of 1024 events offered, then one
`take(1024)`, over and over: the pattern the scheduler drives. The reference is the
least any bounded FIFO in Python can do for the same work, `deque.extend` then draining
into a list. All in this process, best of `--repeat`, the rounds interleaved so that a
change in machine load hits every row alike. Usage:

    .venv/bin/python bench/edge_bench.py                  # 5M events per row, best of 5
    .venv/bin/python bench/edge_bench.py --count 100000 --repeat 1
"""

import argparse
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

# Measure the working tree's engine, whatever is installed in the venv.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.edges import Edge
from engine.plan import EdgePlan
from engine.policies import POLICIES

BATCH = 1024
Event = dict[str, object]


def events(keys: int) -> list[Event]:
    """One batch of reference events; `keys` distinct `user` values."""
    return [
        {"id": i, "user": i % keys, "amount": float(i % 97), "kind": "buy" if i % 3 else "sell"}
        for i in range(BATCH)
    ]


def make_edge(policy: str) -> Edge:
    # A keyed policy (coalesce) needs a key and merges; the others ignore both.
    return Edge(EdgePlan("bench->sink", "bench", "out", "sink", BATCH, policy, ("user",), (("amount", "sum"),)))


def edge_loop(policy: str, batch: list[Event]) -> Callable[[int], int]:
    """A loop of `rounds` offer/take pairs on a fresh edge; returns events delivered."""

    def loop(rounds: int) -> int:
        edge = make_edge(policy)
        offer, take = edge.offer, edge.take
        for _ in range(rounds):
            if offer(batch):  # capacity == batch size and the edge is drained: nothing refused
                raise SystemExit(f"{policy}: edge refused events; the benchmark's assumption broke")
            take(BATCH)
        if edge.enqueued != edge.delivered + edge.dropped + edge.coalesced + edge.depth:
            raise SystemExit(f"{policy}: counters do not add up")
        return edge.delivered

    return loop


def deque_loop(batch: list[Event]) -> Callable[[int], int]:
    def loop(rounds: int) -> int:
        queue: deque[Event] = deque()
        extend, clear = queue.extend, queue.clear
        delivered = 0
        for _ in range(rounds):
            extend(batch)
            out = list(queue)
            clear()
            delivered += len(out)
        return delivered

    return loop


def engine_mode() -> str:
    try:
        from engine import buildinfo

        return buildinfo.mode()
    except ImportError:  # an engine without buildinfo: look at the module itself
        return "compiled" if str(sys.modules["engine.edges"].__file__).endswith(".so") else "interpreted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5_000_000, help="events offered per row (default 5M)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best counts (default 5)")
    args = parser.parse_args()
    rounds = max(1, args.count // BATCH)
    distinct, merging = events(BATCH), events(64)
    rows: dict[str, Callable[[int], int]] = {"deque extend + list drain (reference)": deque_loop(distinct)}
    for policy in POLICIES.values():  # every policy of the table, so a new one is measured too
        if policy.keyed:
            rows[f"{policy.name} (1024 keys: no merges)"] = edge_loop(policy.name, distinct)
            rows[f"{policy.name} (64 keys: 960 merges a batch)"] = edge_loop(policy.name, merging)
        else:
            rows[policy.name] = edge_loop(policy.name, distinct)
    best = {name: float("inf") for name in rows}
    delivered: dict[str, int] = {}
    for _ in range(args.repeat):
        for name, loop in rows.items():
            started = time.perf_counter()
            delivered[name] = loop(rounds)
            best[name] = min(best[name], time.perf_counter() - started)
    offered = rounds * BATCH
    reference = offered / best["deque extend + list drain (reference)"]
    print(f"Python {sys.version.split()[0]}, engine {engine_mode()}; {offered:,} events offered per row "
          f"in batches of {BATCH}, capacity {BATCH}; best of {args.repeat}\n")
    header = ["policy", "events/s", "ratio to deque", "delivered per batch"]
    table = [header] + [
        [name, f"{offered / best[name]:,.0f}", f"{offered / best[name] / reference:.3f}",
         f"{delivered[name] / rounds:g}"]
        for name in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for index, row in enumerate(table):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("-+-".join("-" * w for w in widths))
    # Without this, `keep_latest`'s ratio reads as a speed-up of the edge machinery.
    print("\nkeep_latest keeps only the newest event of each offered batch, so it never touches the other 1023.")


if __name__ == "__main__":
    main()
