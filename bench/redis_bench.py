"""What the Redis Streams connector costs beside a hand-written redis-py loop doing the same
work, in the same process, against the same redis-server (started here from tests/servers.py:
a loopback port and an append-only file; `--appendfsync` its fsync policy, default everysec,
where the tests use always).

Rows, each `--count` entries of five fields (`{id, user, amount, kind, note}`):

- read, plain redis-py: `XREADGROUP COUNT --batch` (">", `BLOCK 100`) then `XACK` of the
  batch's ids, on a new group, until every entry is read; the entries' field dicts are the
  events;
- read, `redis.read -> null`: the same stream on a new group, `batch_size: --batch`, until
  `null` has counted every entry (then a graceful stop);
- write, plain redis-py: the same events built in Python, one non-transactional pipeline of
  `XADD`s per 1024 (the runtime's batch), values as text (numbers through orjson);
- write, `generate -> redis.write`: a fresh stream each time.

Rows alternate within each round (and swap places every round) after one untimed warm-up of
each; the median of `--repeat` rounds counts, the best is shown beside it. The target is at
least 0.8x the plain loop's rate for both directions. Every run checks its count (the
stream's length; entries pending in the group: none). Usage:

    .venv/bin/python bench/redis_bench.py                 # 200k entries per row, 5 rounds
    .venv/bin/python bench/redis_bench.py --quick         # a smoke run: seconds
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import redis.asyncio as aioredis

from adapters.cli.registry import default_registry
from engine import buildinfo
from engine.runtime import BATCH_BUDGET, Runtime
from loader.api import load_text
from tests.servers import RedisServer

TARGET = 0.8
SOURCE_STREAM = "bench-in"
SINK_STREAM = "bench-out"
KINDS = ("buy", "sell", "hold")
FIELDS = {"id": "i", "user": "'u' + str(i % 1000)", "amount": "i % 997 * 0.25", "kind": "'buy' if i % 3 else 'sell'",
          "note": "'order number ' + str(i)"}
READ_GRAPH = """version: 2
name: redis_bench_read
nodes:
  src: {{type: redis.read, with: {{url: "{url}", stream: STREAM, group: {group}, batch_size: {batch}, block: 100ms}}}}
  sink: {{type: "null", from: src}}
""".replace("STREAM", SOURCE_STREAM)
WRITE_GRAPH = """version: 2
name: redis_bench_write
nodes:
  gen: {{type: generate, with: {{count: {count}, fields: {fields}}}}}
  out: {{type: redis.write, from: gen, with: {{url: "{url}", stream: STREAM}}}}
""".replace("STREAM", SINK_STREAM)

Run = Callable[[], Awaitable[float]]


class BenchRedis(RedisServer):
    """The tests' server with a chosen `appendfsync`: with `always` (the tests' setting) both
    rows wait mostly for the disk's fsync of each XREADGROUP/XACK/pipeline, which hides what
    the client side costs."""

    def __init__(self, directory: Path, appendfsync: str) -> None:
        super().__init__(directory)
        self.appendfsync = appendfsync

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--appendfsync") + 1] = self.appendfsync
        return args


def event(i: int) -> dict[str, object]:
    return {"id": i, "user": f"u{i % 1000}", "amount": i % 997 * 0.25, "kind": "buy" if i % 3 else "sell",
            "note": f"order number {i}"}


def as_text(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


async def fill(client: Any, count: int) -> None:
    await client.delete(SOURCE_STREAM)
    for start in range(0, count, BATCH_BUDGET):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(count, start + BATCH_BUDGET)):
            pipe.xadd(SOURCE_STREAM, {k: as_text(v) for k, v in event(i).items()})
        await pipe.execute()


class Bench:
    def __init__(self, url: str, count: int, batch: int) -> None:
        self.url = url
        self.count = count
        self.batch = batch
        self.client = aioredis.Redis.from_url(url, decode_responses=True)
        self.groups = 0
        self.registry = default_registry()

    def new_group(self) -> str:
        self.groups += 1
        return f"bench-{self.groups}"

    async def check_read(self, group: str) -> None:
        info = await self.client.xinfo_groups(SOURCE_STREAM)
        mine = next(g for g in info if g["name"] == group)
        if mine["pending"] or mine["entries-read"] != self.count:
            raise SystemExit(f"group {group}: {mine}")

    async def plain_read(self) -> float:
        group = self.new_group()
        await self.client.xgroup_create(SOURCE_STREAM, group, id="0")
        client = aioredis.Redis.from_url(self.url, decode_responses=True)
        started = time.perf_counter()
        seen = 0
        events: list[dict[str, str]] = []
        while seen < self.count:
            reply = await client.xreadgroup(group, "plain", {SOURCE_STREAM: ">"}, count=self.batch, block=100)
            entries = reply[0][1] if reply else []
            events = [fields for _, fields in entries]
            if entries:
                await client.xack(SOURCE_STREAM, group, *[entry_id for entry_id, _ in entries])
            seen += len(events)
        seconds = time.perf_counter() - started
        await client.aclose()
        await self.check_read(group)
        return seconds

    async def headrace_read(self) -> float:
        group = self.new_group()
        runtime = self.build(READ_GRAPH.format(url=self.url, group=group, batch=self.batch))
        sink = runtime.runners["sink"]
        started = time.perf_counter()
        task = asyncio.ensure_future(runtime.run())
        while sink.events_in < self.count and not task.done():
            await asyncio.sleep(0.001)
        seconds = time.perf_counter() - started
        runtime.request_stop()
        if not await task:
            raise SystemExit(f"the graph failed: {runtime.failure}")
        await self.check_read(group)
        return seconds

    async def plain_write(self) -> float:
        await self.client.delete(SINK_STREAM)
        client = aioredis.Redis.from_url(self.url, decode_responses=True)
        started = time.perf_counter()
        for start in range(0, self.count, BATCH_BUDGET):
            batch = [event(i) for i in range(start, min(self.count, start + BATCH_BUDGET))]
            pipe = client.pipeline(transaction=False)
            for one in batch:
                pipe.xadd(SINK_STREAM, {k: as_text(v) for k, v in one.items()})
            await pipe.execute()
        seconds = time.perf_counter() - started
        await client.aclose()
        await self.check_write()
        return seconds

    async def headrace_write(self) -> float:
        await self.client.delete(SINK_STREAM)
        fields = orjson.dumps(FIELDS).decode()
        runtime = self.build(WRITE_GRAPH.format(url=self.url, count=self.count, fields=fields))
        started = time.perf_counter()
        if not await runtime.run():
            raise SystemExit(f"the graph failed: {runtime.failure}")
        seconds = time.perf_counter() - started
        await self.check_write()
        return seconds

    async def check_write(self) -> None:
        length = await self.client.xlen(SINK_STREAM)
        last = await self.client.xrevrange(SINK_STREAM, count=1)
        if length != self.count or last[0][1] != {k: as_text(v) for k, v in event(self.count - 1).items()}:
            raise SystemExit(f"{SINK_STREAM}: {length} entries, last {last}")

    def build(self, text: str) -> Runtime:
        loaded = load_text("redis_bench.yaml", text, self.registry)
        assert loaded.plan is not None, [p.message for p in loaded.problems]
        return Runtime(loaded.plan, self.registry)


def report(pairs: list[tuple[str, str, list[float], list[float]]], count: int) -> bool:
    rows = []
    ok = True
    for what, label, plain, ours in pairs:
        plain_rate, our_rate = count / statistics.median(plain), count / statistics.median(ours)
        ratio = our_rate / plain_rate
        ok = ok and ratio >= TARGET
        rows.append([f"{what}: plain redis-py loop (reference)", f"{plain_rate:,.0f}", f"{count / min(plain):,.0f}",
                     "1.00x", "-"])
        rows.append([f"{what}: {label}", f"{our_rate:,.0f}", f"{count / min(ours):,.0f}", f"{ratio:.2f}x",
                     "yes" if ratio >= TARGET else "no"])
    header = ["row", "entries/s (median)", "best", "x plain", f">= {TARGET}x"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for index, row in enumerate([header, *rows]):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("-+-".join("-" * w for w in widths))
    return ok


async def measure(bench: Bench, repeat: int) -> list[tuple[str, str, list[float], list[float]]]:
    await fill(bench.client, bench.count)
    pairs: list[tuple[str, str, Run, Run]] = [
        ("read", "redis.read -> null", bench.plain_read, bench.headrace_read),
        ("write", "generate -> redis.write", bench.plain_write, bench.headrace_write),
    ]
    times: dict[str, list[float]] = {}
    for _, _, plain, ours in pairs:  # warm-up, untimed
        await plain()
        await ours()
    for round_ in range(repeat):
        for what, _, plain, ours in pairs:
            order = [("plain", plain), ("ours", ours)]
            for key, run in order if round_ % 2 == 0 else order[::-1]:
                times.setdefault(f"{what}:{key}", []).append(await run())
    await bench.client.aclose()
    return [(what, label, times[f"{what}:plain"], times[f"{what}:ours"]) for what, label, _, _ in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=None, help="entries per row (default 200k; --quick: 5k)")
    parser.add_argument("--batch", type=int, default=500, help="redis.read batch_size and the plain COUNT")
    parser.add_argument("--repeat", type=int, default=None, help="rounds; the median counts (default 5)")
    parser.add_argument("--appendfsync", choices=("always", "everysec", "no"), default="everysec",
                        help="the server's fsync policy (default everysec; the tests use always)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and once")
    args = parser.parse_args()
    count = args.count or (5000 if args.quick else 200_000)
    repeat = args.repeat or (1 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="headrace-redis-bench-") as tmp, \
            BenchRedis(Path(tmp), args.appendfsync) as server:
        bench = Bench(server.url, count, args.batch)
        pairs = asyncio.run(measure(bench, repeat))
        version = server.client().info("server")["redis_version"]
    print(f"Python {sys.version.split()[0]}, engine {buildinfo.mode()}, redis-server {version} "
          f"(appendfsync {args.appendfsync}), {count:,} entries per row, batch {args.batch}, median of {repeat}\n")
    ok = report(pairs, count)
    print(f"\ncounts OK; target {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
