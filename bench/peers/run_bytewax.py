"""bytewax 0.21.1: input -> map -> filter -> key_on -> map_value -> reduce_final -> output.

Run with `bytewax.testing.run_main` (one worker in this thread: what `python -m
bytewax.run` does for one worker, without its argument parsing). `--batch-size N` is the
TestingSource batch size: 1 is its default; larger batches cut the per-item crossing
between the Rust dataflow and Python.
"""

import operator
import sys

import bytewax.operators as op
from _common import add_cents, arguments, events, is_buy, write_totals
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main


def main() -> None:
    count, path = arguments()
    batch_size = int(sys.argv[sys.argv.index("--batch-size") + 1]) if "--batch-size" in sys.argv else 1
    flow = Dataflow("peers_bench")
    stream = op.input("events", flow, TestingSource(events(count), batch_size=batch_size))
    priced = op.map("priced", stream, add_cents)
    buys = op.filter("buys", priced, is_buy)
    # bytewax keys are strings.
    keyed = op.key_on("by_user", buys, lambda event: str(event["user"]))
    cents = op.map_value("cents", keyed, lambda event: event["amount_cents"])
    per_user = op.reduce_final("per_user", cents, operator.add)
    collected: list[tuple[str, int]] = []
    op.output("out", per_user, TestingSink(collected))
    run_main(flow)
    write_totals(path, dict(collected))


if __name__ == "__main__":
    main()
