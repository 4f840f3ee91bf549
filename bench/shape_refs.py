"""The hand-written Python equivalents of the graphs in bench/shapes/, one loop per shape.

Each loop is written the way a person would write it for this one job: one function (fast
locals), events as dicts, the map as field assignments, the filter as an `if`, aggregates
as dicts of running values in first-arrival order, results as compact JSON Lines (what
`file.write` writes). `bench/shapes.py` runs each in a fresh process beside `engine run`
and compares what they wrote. Variants:

- `stdlib`: the `json` module, text files (and for CSV, lines split on commas: the input
  has no quoting);
- `orjson` (JSON shapes): the same loop with orjson, binary files;
- `csv` (the CSV shape): the same loop reading with `csv.DictReader`.

Usage: python bench/shape_refs.py SHAPE VARIANT --count N --input IN --output OUT [--output2 OUT2] [--state DIR]
(shape 6's server is in bench/shape_http.py).
"""

import argparse
import csv
import json
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

from peers import run_plain

Event = dict[str, Any]
Loads = Callable[[Any], Any]
Dumps = Callable[[Any], Any]
BATCH = 1024  # what the engine moves per step; the LMDB loop commits this many at a time
DEDUPE_WINDOW = 4096  # the dedupe node's default
WINDOW_S = 600  # shape 4's tumbling window, 10m


def codec(variant: str) -> tuple[Loads, Dumps, Callable[[Path, str], IO[Any]]]:
    """(loads, dumps of one line, open): orjson works on bytes, json on text."""
    if variant == "orjson":
        import orjson

        return orjson.loads, lambda value: orjson.dumps(value) + b"\n", lambda path, mode: open(path, mode + "b")
    # A bound encoder: json.dumps with any option builds a new encoder per call.
    encode = json.JSONEncoder(separators=(",", ":")).encode
    return json.loads, lambda value: encode(value) + "\n", lambda path, mode: open(path, mode, encoding="utf-8")


def reference_pipeline(count: int, output: Path) -> None:
    """Shape 1: bench/peers' plain loop; its totals written as the graph writes them."""
    with output.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps({"user": user, "total": total}, separators=(",", ":")) + "\n"
                       for user, total in run_plain.totals(count).items())


def jsonl_etl(source: Path, output: Path, variant: str) -> None:
    """Shape 2: price each event (two fields set, one removed), keep the large ones."""
    loads, dumps, open_file = codec(variant)
    with open_file(source, "r") as lines, open_file(output, "w") as out:
        write = out.write
        for line in lines:
            event = loads(line)
            amount = event["amount"]
            event["amount_cents"] = int(amount * 100)
            value = event["value"] = amount * event["qty"]
            del event["region"]
            if value >= 1000:
                write(dumps(event))


def csv_rows(source: Path, variant: str) -> Iterator[Event]:
    with source.open(encoding="utf-8", newline="") as lines:
        if variant == "csv":
            yield from csv.DictReader(lines)
            return
        header = next(lines).rstrip("\n").split(",")
        for line in lines:
            yield dict(zip(header, line.rstrip("\n").split(",")))


def csv_totals(source: Path, output: Path, variant: str) -> None:
    """Shape 3: type the CSV's text values, total them per user."""
    totals: dict[str, list[Any]] = {}  # user -> [orders, items, revenue, largest]
    for row in csv_rows(source, variant):
        row["id"] = int(row["id"])
        row["ts"] = float(row["ts"])
        amount = row["amount"] = float(row["amount"])
        qty = row["qty"] = int(row["qty"])
        group = totals.get(row["user"])
        if group is None:
            totals[row["user"]] = [1, qty, amount, amount]
        else:
            group[0] += 1
            group[1] += qty
            group[2] += amount
            if amount > group[3]:
                group[3] = amount
    with output.open("w", encoding="utf-8") as out:
        for user, (orders, items, revenue, largest) in totals.items():
            out.write(json.dumps({"user": user, "orders": orders, "items": items, "revenue": revenue,
                                  "largest": largest}, separators=(",", ":")) + "\n")


def route_windows(source: Path, windows_path: Path, totals_path: Path, variant: str) -> None:
    """Shape 4: priced orders per user per 10-minute window of `ts`, bulk items per user.

    The input's `ts` never decreases, so one window is open at a time and it closes when an
    event of a later window arrives (the engine's watermark rule with no lateness).
    """
    loads, dumps, open_file = codec(variant)
    window_start = None
    window: dict[str, list[Any]] = {}  # user -> [orders, revenue], this window
    items: dict[str, list[int]] = {}  # user -> [items, orders], whole input
    with open_file(source, "r") as lines, open_file(windows_path, "w") as windows_out:

        def emit(start: float) -> None:
            for user, (orders, revenue) in window.items():
                windows_out.write(dumps({"user": user, "orders": orders, "revenue": revenue,
                                         "window_start": start, "window_end": start + WINDOW_S}))
            window.clear()

        for line in lines:
            event = loads(line)
            user = event["user"]
            amount = event["amount"]
            if amount >= 100:
                start = float(event["ts"] // WINDOW_S * WINDOW_S)
                if start != window_start:
                    if window_start is not None:
                        emit(window_start)
                    window_start = start
                group = window.get(user)
                if group is None:
                    window[user] = [1, amount]
                else:
                    group[0] += 1
                    group[1] += amount
            qty = event["qty"]
            if qty >= 3:
                total = items.get(user)
                if total is None:
                    items[user] = [qty, 1]
                else:
                    total[0] += qty
                    total[1] += 1
        if window_start is not None:
            emit(window_start)
    with open_file(totals_path, "w") as totals_out:
        for user, (qty_sum, orders) in items.items():
            totals_out.write(dumps({"user": user, "items": qty_sum, "orders": orders}))


def merge_dedupe(count: int, output: Path, variant: str) -> None:
    """Shape 5: two feeds taken a batch each in turn, priced, repeats of a recent id dropped."""
    _, dumps, open_file = codec(variant)

    def primary() -> Iterator[Event]:
        for i in range(count):
            yield {"id": i, "user": i % 1000, "amount": float(i % 97)}

    def replica() -> Iterator[Event]:
        for i in range(count):
            yield {"id": i if i % 4 == 0 else -1 - i, "user": i % 1000, "amount": float(i % 97)}

    seen: OrderedDict[int, None] = OrderedDict()  # the last DEDUPE_WINDOW ids passed on
    feeds = [primary(), replica()]
    with open_file(output, "w") as out:
        write = out.write
        while feeds:
            for feed in list(feeds):
                batch = list(islice(feed, BATCH))
                if not batch:
                    feeds.remove(feed)
                for event in batch:
                    event["amount_cents"] = int(event["amount"] * 100)
                    key = event["id"]
                    if key in seen:
                        seen.move_to_end(key)
                        continue
                    seen[key] = None
                    if len(seen) > DEDUPE_WINDOW:
                        seen.popitem(last=False)
                    write(dumps(event))


def durable_jsonl(source: Path, output: Path, state: Path, variant: str) -> None:
    """Shape 7: shape 2 with every event passing through LMDB first, as a durable edge keeps
    it: a batch appended in one synced transaction (8-byte big-endian sequence keys,
    MessagePack values), then read back, decoded and deleted in another."""
    import lmdb
    import msgpack

    loads, dumps, open_file = codec(variant)
    pack_key = struct.Struct(">Q").pack
    pack = msgpack.Packer(use_bin_type=True).pack
    unpack = msgpack.unpackb
    env = lmdb.open(str(state), map_size=64 * 1024 * 1024, max_dbs=2, sync=True, metasync=True)
    queue = env.open_db(b"queue")
    seq = 0
    with open_file(source, "r") as lines, open_file(output, "w") as out:
        write = out.write
        while batch := [loads(line) for line in islice(lines, BATCH)]:
            with env.begin(write=True, db=queue) as txn:
                txn.cursor().putmulti([(pack_key(seq + n), pack(e)) for n, e in enumerate(batch)], append=True)
            seq += len(batch)
            with env.begin(write=True, db=queue) as txn:
                cursor = txn.cursor()
                cursor.first()
                popped = []
                for _ in range(len(batch)):
                    popped.append(unpack(cursor.value(), raw=False))
                    cursor.delete()
            for event in popped:
                amount = event["amount"]
                event["amount_cents"] = int(amount * 100)
                value = event["value"] = amount * event["qty"]
                del event["region"]
                if value >= 1000:
                    write(dumps(event))
    env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shape", type=int, choices=(1, 2, 3, 4, 5, 7))
    parser.add_argument("variant", choices=("stdlib", "orjson", "csv"))
    parser.add_argument("--count", type=int, default=0, help="events (shapes 1 and 5, which generate theirs)")
    parser.add_argument("--input", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--output2", type=Path, help="shape 4's second output (the totals)")
    parser.add_argument("--state", type=Path, help="shape 7's LMDB directory")
    args = parser.parse_args()
    if args.shape == 1:
        reference_pipeline(args.count, args.output)
    elif args.shape == 2:
        jsonl_etl(args.input, args.output, args.variant)
    elif args.shape == 3:
        csv_totals(args.input, args.output, args.variant)
    elif args.shape == 4:
        route_windows(args.input, args.output, args.output2, args.variant)
    elif args.shape == 5:
        merge_dedupe(args.count // 2, args.output, args.variant)
    else:
        durable_jsonl(args.input, args.output, args.state, args.variant)


if __name__ == "__main__":
    main()
