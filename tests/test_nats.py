"""`nats.read` and `nats.write` against a real nats-server with JetStream on file storage
(tests/servers.py): round trips, acknowledgements only once events are handed on,
redelivery after a restart, a server restart mid-stream, `kill -9` of `engine run`,
backpressure, and the one-line failures."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.io.nats.params import parse_nats_read
from adapters.io.nats.read import NatsRead
from engine.node import AsyncSink, Batch, Clock, NodeContext
from engine.plan import ErrorPolicy
from engine.runtime import Runtime
from engine.spec import SINK, NodeSpec, SpecRegistry, params_schema
from loader.api import load_text
from tests.conftest import ROOT
from tests.process_support import wait_for
from tests.runtime_support import RECORDED, build
from tests.runtime_support import test_registry as registry_for_tests
from tests.servers import NatsServer, run_async

STREAM = "ORDERS"


def publish(server: NatsServer, count: int, start: int = 0, subject: str = "orders.new") -> None:
    async def go() -> None:
        nc = await server.connect()
        js = nc.jetstream()
        for i in range(start, start + count):
            await js.publish_async(subject, json.dumps({"i": i}).encode())
        await asyncio.wait_for(js.publish_async_completed(), 30)
        await nc.close()
    run_async(go)


def make_stream(server: NatsServer, subjects: tuple[str, ...] = ("orders.>",)) -> None:
    async def go() -> None:
        nc = await server.connect()
        await nc.jetstream().add_stream(name=STREAM, subjects=list(subjects))
        await nc.close()
    run_async(go)


def stream_values(server: NatsServer) -> list[Any]:
    """Every message of the stream, decoded, in order (through a throwaway ordered read)."""
    async def go() -> list[Any]:
        nc = await server.connect()
        js = nc.jetstream()
        total = (await js.stream_info(STREAM)).state.messages
        values = []
        for seq in range(1, total + 1):
            values.append(json.loads((await js.get_msg(STREAM, seq)).data))
        await nc.close()
        return values
    return run_async(go)


def consumer(server: NatsServer, durable: str) -> Any:
    async def go() -> Any:
        nc = await server.connect()
        info = await nc.jetstream().consumer_info(STREAM, durable)
        await nc.close()
        return info
    return run_async(go)


def read_graph(server_url: str, sink: str = "test.record", extra: str = "") -> str:
    return f"""
        version: 2
        nodes:
          orders: {{type: nats.read, with: {{servers: "{server_url}", stream: {STREAM}, durable: hr, {extra}}}}}
          out: {{type: {sink}, from: orders}}
        """


async def run_until(runtime: Runtime, done: Any, timeout: float = 30.0) -> bool:
    """Run `runtime` until `done()` holds, then stop it gracefully; its result."""
    task = asyncio.ensure_future(runtime.run())
    deadline = time.monotonic() + timeout
    while not done() and not task.done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
    runtime.request_stop()
    return await task


def distinct(name: str = "out") -> set[object]:
    return {event["i"] for event in RECORDED.get(name, [])}


def test_round_trip_write_then_read(nats_server):
    make_stream(nats_server)
    written = build(f"""
        version: 2
        nodes:
          numbers: {{type: test.numbers, with: {{count: 3000}}}}
          out: {{type: nats.write, from: numbers, with: {{servers: "{nats_server.url}", subject: orders.new}}}}
        """)
    assert asyncio.run(written.run()), written.failure
    values = stream_values(nats_server)
    assert [v["i"] for v in values] == list(range(3000))  # each once, in order, as JSON objects
    assert values[0] == {"i": 0, "k": 0, "n": 1}

    runtime = build(read_graph(nats_server.url))
    assert asyncio.run(run_until(runtime, lambda: len(distinct()) == 3000)), runtime.failure
    assert [e["i"] for e in RECORDED["out"]] == list(range(3000))
    info = consumer(nats_server, "hr")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # every message acknowledged
    assert runtime.runners["orders"].impl.health()["connection"] == "closed"


def test_text_format_and_a_bad_payload_goes_to_on_error(nats_server):
    make_stream(nats_server)
    publish(nats_server, 2)
    run_async(lambda: _publish_raw(nats_server, [b"not json", b"[1, 2]"]))
    graph = read_graph(nats_server.url) + """
          bad: {type: test.record, from: orders.errors}
        """
    runtime = build(graph.replace("orders: {type", "orders: {on_error: dead_letter, type"))
    assert asyncio.run(run_until(runtime, lambda: len(RECORDED.get("bad", [])) == 2)), runtime.failure
    assert [e["i"] for e in RECORDED["out"]] == [0, 1]
    bad = [json.dumps(event) for event in RECORDED["bad"]]
    assert "invalid JSON" in bad[0] and "expected a JSON object" in bad[1]

    text = build(read_graph(nats_server.url, extra="durable: raw, format: text").replace("durable: hr, ", ""))
    assert asyncio.run(run_until(text, lambda: len(RECORDED.get("out", [])) == 4)), text.failure
    assert RECORDED["out"][2] == {"payload": "not json"}


async def _publish_raw(server: NatsServer, payloads: list[bytes]) -> None:
    nc = await server.connect()
    for payload in payloads:
        await nc.jetstream().publish("orders.new", payload)
    await nc.close()


def context(server: NatsServer, durable: str = "hr", **extra: object) -> NodeContext:
    raw: dict[str, object] = {"servers": server.url, "stream": STREAM, "durable": durable, **extra}
    return NodeContext("orders", "nats.read", parse_nats_read(raw), ("out",), ErrorPolicy(), Clock())


def test_a_batch_read_but_never_handed_on_is_not_acknowledged_and_comes_back(nats_server):
    """The ACK RULE: `read` acknowledges nothing; a run that dies before `handed_on` leaves
    its batch pending, and the next run gets it again once the ack wait is over."""
    make_stream(nats_server)
    publish(nats_server, 30)

    async def crashed_run() -> list[object]:
        source = NatsRead(context(nats_server, ack_wait="1s", batch_size=20))
        await source.open()
        outs: list[Batch] = [[]]
        await source.read(None, outs)  # type: ignore[arg-type]
        assert source.acked == 0
        await source.client.close()  # gone without handed_on: a crash, as the server sees it
        return [e["i"] for e in outs[0]]

    assert asyncio.run(crashed_run()) == list(range(20))
    assert consumer(nats_server, "hr").num_ack_pending == 20
    runtime = build(read_graph(nats_server.url))
    assert asyncio.run(run_until(runtime, lambda: len(distinct()) == 30)), runtime.failure
    assert sorted(distinct()) == list(range(30))
    info = consumer(nats_server, "hr")
    assert info.num_ack_pending == 0 and info.delivered.consumer_seq == 30 + 20  # 20 delivered twice


def test_a_server_restart_mid_stream_loses_nothing_either_way(nats_server):
    make_stream(nats_server)
    publish(nats_server, 4000)
    runtime = build(read_graph(nats_server.url, "test.slow_record", "batch_size: 100"))

    async def go() -> bool:
        task = asyncio.ensure_future(run_until(runtime, lambda: len(distinct()) == 4000, 60))
        while len(distinct()) < 500:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(nats_server.restart)
        return await task

    assert asyncio.run(go()), runtime.failure
    health = runtime.runners["orders"].impl.health()
    assert health["reconnects"] >= 1, health

    # and the writer: a restart while it publishes; dedup ids keep resent messages single
    writer = build(f"""
        version: 2
        nodes:
          numbers: {{type: generate, with: {{count: 20000, rate: 10000, fields: {{i: i}}}}}}
          out: {{type: nats.write, from: numbers, with: {{servers: "{nats_server.url}", subject: orders.more}}}}
        """)

    async def write() -> bool:
        task = asyncio.ensure_future(writer.run())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(nats_server.restart)
        return await asyncio.wait_for(task, 60)

    assert asyncio.run(write()), writer.failure
    more = [v["i"] for v in stream_values(nats_server)[4000:]]
    assert sorted(set(more)) == list(range(20000))
    assert writer.runners["out"].impl.health()["reconnects"] >= 1


class Gate(AsyncSink):
    """A sink that writes nothing until the test opens it: a stuck downstream."""

    opened = asyncio.Event()

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        RECORDED[ctx.name] = []

    async def write(self, batch: Batch) -> None:
        await Gate.opened.wait()
        RECORDED[self.ctx.name].extend(batch)


def test_backpressure_leaves_messages_on_the_server(nats_server):
    make_stream(nats_server)
    publish(nats_server, 5000)
    registry: SpecRegistry = registry_for_tests()
    registry.register(NodeSpec(name="test.gate", kind=SINK, summary="stuck sink", params=params_schema({}),
                               factory=Gate))
    graph = read_graph(nats_server.url, "test.gate", "batch_size: 50").replace(
        "from: orders}", "from: {node: orders, edge: {capacity: 100}}}")
    result = load_text("g.yaml", graph.replace("\n        ", "\n"), registry)
    assert result.plan is not None, result.problems
    runtime = Runtime(result.plan, registry)

    async def go() -> bool:
        Gate.opened = asyncio.Event()
        task = asyncio.ensure_future(run_until(runtime, lambda: len(distinct()) == 5000, 60))
        await asyncio.sleep(1.5)  # plenty of time to fetch everything, were nothing holding it back
        info = await asyncio.to_thread(consumer, nats_server, "hr")
        delivered = info.delivered.consumer_seq
        # in flight: one batch at the stuck sink, the edge's capacity, one batch waiting to go on it
        assert delivered <= 50 + 100 + 50 + 50, delivered
        assert info.num_ack_pending <= 50  # only the batch not yet on the edge is unacknowledged
        assert info.num_pending >= 5000 - delivered
        Gate.opened.set()
        return await task

    assert asyncio.run(go()), runtime.failure
    assert sorted(distinct()) == list(range(5000))


def test_bad_credentials_fail_in_one_line_naming_the_node(tmp_path):
    with NatsServer(tmp_path / "nats", user="ingest", password="right-one") as server:
        url = f"nats://ingest:wrong-one@127.0.0.1:{server.port}"
        runtime = build(read_graph(url))
        started = time.monotonic()
        assert not asyncio.run(runtime.run())
        assert time.monotonic() - started < 10  # no reconnecting forever
        failure = runtime.failure
        assert failure.startswith("node 'orders': ") and "authorization violation" in failure, failure
        assert "\n" not in failure and "wrong-one" not in failure

        writer = build(f"""
            version: 2
            nodes:
              numbers: {{type: test.numbers, with: {{count: 1}}}}
              out: {{type: nats.write, from: numbers, with: {{servers: "nats://127.0.0.1:{server.port}",
                     user: ingest, password: nope, subject: a.b}}}}
            """)
        assert not asyncio.run(writer.run())
        assert writer.failure.startswith("node 'out': ") and "authorization violation" in writer.failure


def test_missing_stream_and_unstored_subject_are_permanent(nats_server):
    runtime = build(read_graph(nats_server.url))
    assert not asyncio.run(runtime.run())
    assert runtime.failure == (f"node 'orders': stream 'ORDERS' not found on 127.0.0.1:{nats_server.port} "
                               "(create it, or set `create_stream: true`)")
    writer = build(f"""
        version: 2
        nodes:
          numbers: {{type: test.numbers, with: {{count: 1}}}}
          out: {{type: nats.write, from: numbers, with: {{servers: "{nats_server.url}", subject: nowhere.x}}}}
        """)
    assert not asyncio.run(writer.run())
    assert "no stream on" in writer.failure and "'nowhere.x'" in writer.failure

    created = build(read_graph(nats_server.url, extra="subject: \"made.>\", create_stream: true"))
    # Until it is connected: a stop during `open` ends the open (engine/io_drivers.py).
    def connected() -> bool:
        return created.stats()["nodes"]["orders"].get("connection") == "connected"
    assert asyncio.run(run_until(created, connected)), created.failure
    assert consumer(nats_server, "hr").config.filter_subject == "made.>"


def test_create_stream_needs_a_subject_and_write_needs_one():
    registry = registry_for_tests()
    for graph in ("orders: {type: nats.read, with: {stream: S, durable: d, create_stream: true}}",
                  "orders: {type: test.numbers}\n  out: {type: nats.write, from: orders}"):
        result = load_text("g.yaml", f"version: 2\nnodes:\n  {graph}\n", registry)
        assert [p.code for p in result.problems] == ["HR020"], result.problems


# -- kill -9 of `engine run` --------------------------------------------------------------

KILL_GRAPH = """version: 2
nodes:
  orders: {{type: nats.read, with: {{servers: "{url}", stream: ORDERS, durable: hr, batch_size: 200, ack_wait: 2s}}}}
  slow: {{type: map, from: {{node: orders, edge: {{durable: true, capacity: 1000}}}}, with: {{set: {{twice: i * 2}}}}}}
  out: {{type: file.write, from: slow, with: {{path: out.jsonl, format: jsonl, mode: append}}}}
"""


def engine_run(cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_STATE_DIR=str(cwd / "state"))
    return subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "run", "g.yaml"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_9_when(cwd: Path, reached: Callable[[], bool]) -> None:
    """Start `engine run`, SIGKILL it once `reached()` (while it still runs)."""
    proc = engine_run(cwd)
    try:
        wait_for(lambda: reached() or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, proc.communicate()[1]
    finally:
        proc.kill()  # also when the wait failed: no engine outlives its test
        proc.communicate(timeout=30)


def run_then_stop(cwd: Path, reached: Callable[[], bool], timeout: float = 90) -> str:
    """Start `engine run`, SIGINT it once `reached()`; its standard error."""
    proc = engine_run(cwd)
    try:
        wait_for(lambda: reached() or proc.poll() is not None, timeout=timeout)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def written(path: Path) -> list[int]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")[:-1]  # a torn last line is not counted
    return [json.loads(line)["i"] for line in lines if line.endswith(b"}")]


def test_kill_9_of_engine_run_mid_stream_then_restart_delivers_every_message(nats_server, tmp_path):
    count = 30000
    make_stream(nats_server)
    publish(nats_server, count)
    (tmp_path / "g.yaml").write_text(KILL_GRAPH.format(url=nats_server.url))
    out = tmp_path / "out.jsonl"
    for share in (3000, 12000):  # killed twice, at different points of the stream
        kill_9_when(tmp_path, lambda share=share: len(written(out)) >= share)
        assert len(set(written(out))) < count
    def settled() -> bool:
        """Every message written, and none out with the engine: a message the killed runs
        had read comes back after `ack_wait`, so all written may come before that."""
        if len(set(written(out))) < count:
            return False
        info = consumer(nats_server, "hr")
        return bool(info.num_ack_pending == 0 and info.num_pending == 0)
    run_then_stop(tmp_path, settled)
    values = written(out)
    assert sorted(set(values)) == list(range(count))  # every message at least once
    print(f"{len(values) - count} duplicates after two kills")
    info = consumer(nats_server, "hr")
    assert info.num_ack_pending == 0 and info.num_pending == 0


@pytest.mark.parametrize("jetstream", [True, False])
def test_write_plain_nats_and_jetstream_reach_a_subscriber(nats_server, jetstream):
    make_stream(nats_server)
    got: list[bytes] = []

    async def go() -> bool:
        nc = await nats_server.connect()

        async def take(msg: Any) -> None:
            got.append(msg.data)
        await nc.subscribe("orders.*", cb=take)
        runtime = build(f"""
            version: 2
            nodes:
              numbers: {{type: test.numbers, with: {{count: 500}}}}
              out: {{type: nats.write, from: numbers, with: {{servers: ["{nats_server.url}"],
                     subject_field: topic, subject: orders.fallback, jetstream: {str(jetstream).lower()}}}}}
            """)
        ok = await runtime.run()
        await nc.flush()
        await asyncio.sleep(0.2)
        await nc.close()
        return ok

    assert asyncio.run(go())
    assert len(got) == 500 and json.loads(got[-1])["i"] == 499
