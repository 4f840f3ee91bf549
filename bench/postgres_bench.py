"""What `postgres.write` costs beside hand-written psycopg 3 loops of the same rows, in one
process against one server:

- insert: the node (`mode: insert`, COPY, one transaction per `batch_size` rows) beside a
  plain psycopg COPY loop (`write_row` of native values, one transaction per chunk); the
  target is a ratio of at least 0.8.
- upsert: the node (`mode: upsert`) beside plain `executemany` of the same
  `INSERT ... ON CONFLICT (id) DO UPDATE` (native values, one transaction per chunk).

The node is driven as the runtime drives a sink (`write(batch)` with batches of
`--batch` events, already decoded), so the figure is the connector's own work: value
conversion, COPY or statements, commits. Each run starts from an empty (truncated) table;
the rows of a round alternate (swapping places every round) after one untimed warm-up of
each; the median of `--repeat` rounds counts, the best is shown beside it. Every run must
leave exactly the rows given. A reported figure, not a test: tests/test_bench_scripts.py only
runs `--quick`. Without `--dsn` the script starts its own server (tests/servers.py's
PostgresServer: PostgreSQL's initdb and postgres must be installed). Usage:

    .venv/bin/python bench/postgres_bench.py                  # 200k rows per run, 5 rounds
    .venv/bin/python bench/postgres_bench.py --quick          # a smoke run: seconds
    .venv/bin/python bench/postgres_bench.py --dsn postgresql://u:pw@host/db
"""

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from adapters.io.postgres.params import parse_postgres_write
from adapters.io.postgres.write import PostgresWrite
from engine.node import Clock, NodeContext
from engine.plan import ErrorPolicy

TARGET = 0.8
TABLE = "bench_rows"
COLUMNS = ("id", "customer", "total", "ts", "note")
CREATE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, customer text NOT NULL, "
          "total double precision, ts timestamptz, note text)")
UPSERT = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
          "SET customer = EXCLUDED.customer, total = EXCLUDED.total, ts = EXCLUDED.ts, note = EXCLUDED.note")

Event = dict[str, object]
Runner = Callable[[str, list[Event], int], Coroutine[Any, Any, None]]


def make_events(count: int) -> list[Event]:
    """Events as a decoding source hands them on: JSON values (a timestamp is RFC 3339 text)."""
    return [{"id": i, "customer": f"customer-{i % 1000}", "total": i * 0.25,
             "ts": f"2024-05-01T12:{i // 60 % 60:02d}:{i % 60:02d}Z", "note": "x" * (i % 40)}
            for i in range(count)]


async def headrace(mode: str) -> Runner:
    async def run(dsn: str, events: list[Event], batch: int) -> None:
        params = parse_postgres_write({"dsn": dsn, "table": TABLE, "mode": mode, "key": ["id"], "batch_size": batch})
        sink = PostgresWrite(NodeContext("db", "postgres.write", params, (), ErrorPolicy(), Clock()))
        await sink.open()
        try:
            for at in range(0, len(events), batch):
                await sink.write(events[at:at + batch])
        finally:
            await sink.close()
    return run


async def plain_copy(dsn: str, events: list[Event], batch: int) -> None:
    """What one would write by hand: COPY of native values, one transaction per chunk."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for at in range(0, len(events), batch):
            async with conn.transaction(), conn.cursor() as cur, \
                    cur.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for event in events[at:at + batch]:
                    await copy.write_row([event[c] for c in COLUMNS])


async def plain_executemany(dsn: str, events: list[Event], batch: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for at in range(0, len(events), batch):
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(UPSERT, [[event[c] for c in COLUMNS] for event in events[at:at + batch]])


def timed(dsn: str, runner: Runner, events: list[Event], batch: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(CREATE)
        conn.execute(f"TRUNCATE {TABLE}")
    started = time.perf_counter()
    asyncio.run(runner(dsn, events, batch))
    seconds = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        count, total = conn.execute(f"SELECT count(*), sum(id) FROM {TABLE}").fetchone() or (0, 0)
    assert (count, total) == (len(events), sum(range(len(events)))), ("rows differ", count, total)
    return seconds


def compare(dsn: str, rows: list[tuple[str, Runner]], events: list[Event], batch: int,
            repeat: int) -> dict[str, list[float]]:
    for _, runner in rows:  # warm-up: connections, caches, the table's pages
        timed(dsn, runner, events, batch)
    times: dict[str, list[float]] = {label: [] for label, _ in rows}
    for round_ in range(repeat):
        for label, runner in rows if round_ % 2 == 0 else rows[::-1]:
            times[label].append(timed(dsn, runner, events, batch))
    return times


def report(title: str, times: dict[str, list[float]], count: int) -> float:
    """Prints the rows; returns the first row's median rate over the second's."""
    print(f"\n{title} ({count} rows per run)\n")
    print("| runner | median rows/s | best rows/s |")
    print("|---|---:|---:|")
    rates = {}
    for label, seconds in times.items():
        rates[label] = count / statistics.median(seconds)
        print(f"| {label} | {rates[label]:,.0f} | {count / min(seconds):,.0f} |")
    first, second = list(rates.values())
    ratio = first / second
    print(f"\nratio: {ratio:.2f}")
    return ratio


@contextlib.contextmanager
def server(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    from tests.servers import PostgresServer  # a server of its own, as the tests start one
    with tempfile.TemporaryDirectory() as folder, PostgresServer(Path(folder)) as started:
        yield started.dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000, help="rows per run (default 200k)")
    parser.add_argument("--batch", type=int, default=1000, help="rows per write and per transaction (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the median counts (default 5)")
    parser.add_argument("--dsn", help="a server to use (default: start one; tests/servers.py)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5000 rows, one round")
    args = parser.parse_args()
    if args.quick:
        args.count, args.repeat = 5000, 1
    events = make_events(args.count)
    with server(args.dsn) as dsn:
        print(f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), batch {args.batch}, {args.repeat} rounds")
        insert = report("insert", compare(dsn, [("postgres.write mode: insert (COPY)", asyncio.run(headrace("insert"))),
                                                ("plain psycopg COPY loop", plain_copy)],
                                          events, args.batch, args.repeat), args.count)
        report("upsert", compare(dsn, [("postgres.write mode: upsert", asyncio.run(headrace("upsert"))),
                                       ("plain psycopg executemany", plain_executemany)],
                                 events, args.batch, args.repeat), args.count)
    print(f"\ninsert ratio {insert:.2f} (target >= {TARGET}): {'OK' if insert >= TARGET else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
