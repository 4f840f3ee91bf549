"""What the MQTT connector costs beside a hand-written aiomqtt loop doing the same work, in the
same process, against the same Mosquitto (started here from tests/servers.py, on a loopback
port, with `max_queued_messages 0` so a session queue holds a whole preloaded run).

Rows, each `--count` messages of a small JSON object (`{"id", "user", "amount"}`), QoS 1:

- read, plain aiomqtt: a persistent session preloaded with the messages (untimed), then
  `async for message in client.messages` with `json.loads` of each payload until all are in
  (aiomqtt's automatic acknowledgement: PUBACK as each message arrives);
- read, `mqtt.read -> null`: the same preloaded session, the node's defaults (manual PUBACKs
  after each batch is handed on, `max_inflight` 1000), until `null` has counted every message;
- write, plain aiomqtt: the same events built in Python, JSON-encoded, `publish` of each batch
  of 1024 (the runtime's batch) gathered, awaiting every PUBACK, `max_inflight_messages` 100;
- write, `generate -> mqtt.write`: the same, with the node's defaults.

Rows alternate within each round (and swap places every round) after one untimed warm-up of
each; the median of `--repeat` rounds counts, the best is shown beside it. Every read run
checks its count. Usage:

    .venv/bin/python bench/mqtt_bench.py                 # 20k messages per row, 5 rounds
    .venv/bin/python bench/mqtt_bench.py --quick         # a smoke run: seconds
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.cli.registry import default_registry
from engine import buildinfo
from engine.runtime import Runtime
from loader.api import load_text
from tests.servers import MosquittoServer

TOPIC = "bench/readings"
BATCH = 1024
FIELDS = "{id: i, user: \"'u' + str(i % 1000)\", amount: i % 997 * 0.25}"
READ_GRAPH = """version: 2
name: mqtt_bench_read
nodes:
  src: {{type: mqtt.read, with: {{url: "{url}", topic: "{topic}", client_id: {client}, clean_session: false}}}}
  sink: {{type: "null", from: src}}
"""
WRITE_GRAPH = """version: 2
name: mqtt_bench_write
nodes:
  gen: {{type: generate, with: {{count: {count}, fields: {fields}}}}}
  out: {{type: mqtt.write, from: gen, with: {{url: "{url}", topic: "{topic}"}}}}
"""


def session_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    return properties


def events(count: int) -> list[bytes]:
    return [json.dumps({"id": i, "user": f"u{i % 1000}", "amount": i % 997 * 0.25}).encode() for i in range(count)]


async def preload(port: int, client_id: str, count: int) -> None:
    """A persistent session of `client_id`, subscribed, with `count` messages waiting."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=False, properties=session_properties()) as client:
        await client.subscribe(TOPIC, 1)
    await plain_write(port, count)


async def plain_read(port: int, client_id: str, count: int) -> int:
    got = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=False, properties=session_properties()) as client:
        async for message in client.messages:
            json.loads(message.payload)  # type: ignore[arg-type]
            got += 1
            if got >= count:
                break
    return got


async def node_read(url: str, client_id: str, count: int) -> int:
    registry = default_registry()
    plan = load_text("read.yaml", READ_GRAPH.format(url=url, topic=TOPIC, client=client_id), registry).plan
    assert plan is not None
    runtime = Runtime(plan, registry)
    running = asyncio.ensure_future(runtime.run())
    while True:
        nodes = runtime.stats()["nodes"]  # type: ignore[index]
        if nodes["sink"]["in"] >= count or running.done():
            break
        await asyncio.sleep(0.005)
    runtime.request_stop()
    assert await running, runtime.failure
    return int(runtime.stats()["nodes"]["sink"]["in"])  # type: ignore[index]


async def plain_write(port: int, count: int) -> None:
    payloads = events(count)
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5,
                              max_inflight_messages=100) as client:
        client.pending_calls_threshold = 1 << 30
        for at in range(0, count, BATCH):
            await asyncio.gather(*(client.publish(TOPIC, p, 1) for p in payloads[at:at + BATCH]))


async def node_write(url: str, count: int) -> None:
    registry = default_registry()
    plan = load_text("write.yaml", WRITE_GRAPH.format(count=count, fields=FIELDS, url=url, topic=TOPIC),
                     registry).plan
    assert plan is not None
    runtime = Runtime(plan, registry)
    assert await runtime.run(), runtime.failure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2000 messages, one round")
    args = parser.parse_args()
    if args.quick:
        args.count, args.repeat = 2000, 1
    count = args.count
    with tempfile.TemporaryDirectory() as directory:
        server = MosquittoServer(Path(directory) / "mosquitto")
        server.config.write_text(server.config.read_text() + "max_queued_messages 0\n")
        with server:
            rates = asyncio.run(measure(server, count, args.repeat))
    print(f"MQTT connector, {count} messages per row, QoS 1, Mosquitto on loopback; engine {buildinfo.mode()}")
    print("| row | messages/s (median) | messages/s (best) | vs plain |")
    print("|---|---:|---:|---:|")
    for direction in ("read", "write"):
        plain, node = (f"{direction}: plain aiomqtt loop (reference)",
                       "read: mqtt.read -> null" if direction == "read" else "write: generate -> mqtt.write")
        reference = statistics.median(rates[plain])
        for label in (plain, node):
            median = statistics.median(rates[label])
            ratio = "—" if label == plain else f"{median / reference:.2f}x"
            print(f"| {label} | {median:,.0f} | {max(rates[label]):,.0f} | {ratio} |")
    print("counts OK")


async def measure(server: MosquittoServer, count: int, repeat: int) -> dict[str, list[float]]:
    url, port = server.url, server.port
    runs = 0

    def client_id() -> str:
        nonlocal runs
        runs += 1
        return f"bench-{runs}"

    async def read_plain() -> float:
        cid = client_id()
        await preload(port, cid, count)
        began = time.perf_counter()
        assert await plain_read(port, cid, count) == count
        return count / (time.perf_counter() - began)

    async def read_node() -> float:
        cid = client_id()
        await preload(port, cid, count)
        began = time.perf_counter()
        got = await node_read(url, cid, count)
        elapsed = time.perf_counter() - began
        assert got == count, (got, count)
        return count / elapsed

    async def write_plain() -> float:
        began = time.perf_counter()
        await plain_write(port, count)
        return count / (time.perf_counter() - began)

    async def write_node() -> float:
        began = time.perf_counter()
        await node_write(url, count)
        return count / (time.perf_counter() - began)

    rows: dict[str, Callable[[], Awaitable[float]]] = {
        "read: plain aiomqtt loop (reference)": read_plain, "read: mqtt.read -> null": read_node,
        "write: plain aiomqtt loop (reference)": write_plain, "write: generate -> mqtt.write": write_node}
    rates: dict[str, list[float]] = {label: [] for label in rows}
    for row in rows.values():  # warm-up
        await row()
    order = list(rows)
    for round_number in range(repeat):
        for label in order if round_number % 2 == 0 else order[::-1]:
            rates[label].append(await rows[label]())
    return rates


if __name__ == "__main__":
    main()
