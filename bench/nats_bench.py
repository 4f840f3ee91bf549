"""What `nats.read` and `nats.write` cost beside a hand-written nats-py loop doing the same
work, against one real nats-server with JetStream on file storage (started here, from
tests/servers.py's NatsServer, on a free loopback port in a temporary directory).

Rows, each `--count` JSON messages of about 60 bytes (`{"i": n, "user": "u17", "amount":
12.5, "note": "..."}`):

- read, plain nats-py: a durable pull consumer, `fetch(500)`, each payload decoded
  (orjson) and acknowledged, until every message is acknowledged;
- read, `nats.read -> null` (batch_size 500) in a runtime in this process, from start to
  the last acknowledgement;
- write, plain nats-py: `publish_async` of each encoded event, in windows of 1,000 waiting
  for every publish ack;
- write, `generate -> nats.write` (JetStream, dedup ids on: the default), start to end.

Every run starts on a fresh stream (made and filled outside the time). The rows of one kind
alternate within each round (and swap places every round), after a warm-up of each; the
median of `--repeat` rounds counts, the best is shown beside it. Each run checks that all
`--count` messages were acknowledged (read) or stored (write). Usage:

    .venv/bin/python bench/nats_bench.py            # 200,000 messages per run, 5 rounds
    .venv/bin/python bench/nats_bench.py --quick    # a smoke run: seconds
"""

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from adapters.cli.registry import default_registry
from engine import buildinfo
from engine.runtime import Runtime
from loader.api import load_text
from tests.servers import NatsServer

STREAM = "BENCH"
SUBJECT = "bench.orders"
FETCH = 500
WINDOW = 1000
PLAIN_READ = "read: plain nats-py pull loop (reference)"
NODE_READ = "read: nats.read -> null"
PLAIN_WRITE = "write: plain nats-py publish_async loop (reference)"
NODE_WRITE = "write: generate -> nats.write (JetStream)"


def event(i: int) -> dict[str, object]:
    return {"i": i, "user": f"u{i % 100}", "amount": 12.5, "note": "bench"}


async def fresh_stream(url: str, count: int) -> None:
    """An empty stream, then `count` messages in it when count > 0 (outside the time)."""
    import nats
    nc = await nats.connect(url)
    js = nc.jetstream()
    with contextlib.suppress(Exception):  # none yet
        await js.delete_stream(STREAM)
    await js.add_stream(name=STREAM, subjects=[SUBJECT])
    for start in range(0, count, WINDOW):
        for i in range(start, min(count, start + WINDOW)):
            await js.publish_async(SUBJECT, orjson.dumps(event(i)))
        await js.publish_async_completed()
    await nc.close()


async def stored(url: str) -> int:
    import nats
    nc = await nats.connect(url)
    count = (await nc.jetstream().stream_info(STREAM)).state.messages
    await nc.close()
    return int(count)


async def plain_read(url: str, count: int) -> float:
    import nats
    nc = await nats.connect(url)
    js = nc.jetstream()
    started = time.perf_counter()
    sub = await js.pull_subscribe(SUBJECT, durable="plain", stream=STREAM)
    done = 0
    while done < count:
        messages = await sub.fetch(FETCH, timeout=1)
        for message in messages:
            orjson.loads(message.data)
            await message.ack()
        done += len(messages)
    await nc.flush()
    seconds = time.perf_counter() - started
    await nc.close()
    return seconds


def graph(text: str) -> Runtime:
    registry = default_registry()
    result = load_text("nats_bench.yaml", text, registry)
    assert result.plan is not None, [p.message for p in result.problems]
    return Runtime(result.plan, registry)


async def node_read(url: str, count: int) -> float:
    runtime = graph(f"""version: 2
nodes:
  orders: {{type: nats.read, with: {{servers: "{url}", stream: {STREAM}, durable: node, batch_size: {FETCH}}}}}
  out: {{type: "null", from: orders}}
""")
    source = runtime.runners["orders"].impl
    started = time.perf_counter()
    task = asyncio.ensure_future(runtime.run())
    while getattr(source, "acked", 0) < count and not task.done():
        await asyncio.sleep(0.001)
    seconds = time.perf_counter() - started
    runtime.request_stop()
    assert await task, runtime.failure
    return seconds


async def plain_write(url: str, count: int) -> float:
    import nats
    nc = await nats.connect(url)
    js = nc.jetstream()
    started = time.perf_counter()
    for start in range(0, count, WINDOW):
        futures = [await js.publish_async(SUBJECT, orjson.dumps(event(i)))
                   for i in range(start, min(count, start + WINDOW))]
        await asyncio.gather(*futures)
    seconds = time.perf_counter() - started
    await nc.close()
    return seconds


async def node_write(url: str, count: int) -> float:
    runtime = graph(f"""version: 2
nodes:
  orders: {{type: generate, with: {{count: {count}, fields: {{i: i, user: "'u' + str(i % 100)", amount: "12.5",
            note: "'bench'"}}}}}}
  out: {{type: nats.write, from: orders, with: {{servers: "{url}", subject: {SUBJECT}}}}}
""")
    started = time.perf_counter()
    assert await runtime.run(), runtime.failure
    return time.perf_counter() - started


async def one(url: str, count: int, reading: bool, run: Callable[[str, int], Awaitable[float]]) -> float:
    await fresh_stream(url, count if reading else 0)
    seconds = await run(url, count)
    if not reading:
        assert await stored(url) == count, "not every message was stored"
    return seconds


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for index, row in enumerate([header] + rows):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("-+-".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000, help="messages per run (default 200,000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the median counts (default 5)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3,000 messages, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.count, args.repeat = 3_000, 1
    pairs: list[tuple[bool, list[tuple[str, Any]]]] = [
        (True, [(PLAIN_READ, plain_read), (NODE_READ, node_read)]),
        (False, [(PLAIN_WRITE, plain_write), (NODE_WRITE, node_write)]),
    ]
    seconds: dict[str, list[float]] = {name: [] for _, runs in pairs for name, _ in runs}
    with tempfile.TemporaryDirectory() as folder, NatsServer(Path(folder) / "nats") as server:
        async def rounds() -> None:
            for reading, runs in pairs:
                for _, run in runs:  # warm-up, untimed
                    await one(server.url, min(args.count, 2_000), reading, run)
            for round_number in range(args.repeat):
                for reading, runs in pairs:
                    for name, run in (runs if round_number % 2 == 0 else list(reversed(runs))):
                        seconds[name].append(await one(server.url, args.count, reading, run))
        asyncio.run(rounds())
    median = {name: statistics.median(values) for name, values in seconds.items()}
    best = {name: min(values) for name, values in seconds.items()}
    print(f"Python {sys.version.split()[0]}, engine {buildinfo.mode()}; nats-server JetStream (file storage) "
          f"on loopback; {args.count:,} messages per run; median of {args.repeat} alternating rounds; "
          "every run acknowledged or stored all messages: totals OK\n")
    rows = []
    for _, runs in pairs:
        reference = runs[0][0]
        for name, _ in runs:
            rows.append([name, f"{args.count / median[name]:,.0f}", f"{args.count / best[name]:,.0f}",
                         f"{median[reference] / median[name]:.2f}"])
    table(["run", "messages/s (median)", "messages/s (best)", "throughput vs plain loop"], rows)


if __name__ == "__main__":
    main()
