"""`mqtt.read` and `mqtt.write` against a real Mosquitto (tests/servers.py): round trips,
persistent sessions, a broker restart, `kill -9` of `engine run` behind a durable edge,
backpressure and a wrong password."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from engine.runtime import Runtime
from tests.conftest import ROOT
from tests.process_support import Lines, wait_for
from tests.runtime_support import RECORDED, build
from tests.servers import MosquittoServer


def nodes(runtime: Runtime) -> dict[str, Any]:
    stats = runtime.stats()
    assert isinstance(stats, dict)
    found: dict[str, Any] = stats["nodes"]
    return found


def reader_graph(url: str, **options: object) -> str:
    settings = {"url": url, "topic": "t/#", **options}
    return f"""
    version: 2
    name: r
    nodes:
      src: {{type: mqtt.read, with: {json.dumps(settings)}}}
      rec: {{type: test.record, from: src}}
    """


def writer_graph(url: str, count: int, fields: str = "{n: i}", **options: object) -> str:
    settings = {"url": url, "topic": "t/a", **options}
    return f"""
    version: 2
    name: w
    nodes:
      gen: {{type: generate, with: {{count: {count}, fields: {fields}}}}}
      out: {{type: mqtt.write, from: gen, with: {json.dumps(settings)}}}
    """


async def until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def received() -> list[dict[str, object]]:
    return RECORDED.get("rec", [])


def publish(server: MosquittoServer, payloads: list[bytes], topic: str = "t/a", qos: int = 1) -> None:
    """Publish with a plain paho client and wait for every PUBACK."""
    client = server.client()
    client.connect("127.0.0.1", server.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos) for payload in payloads]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_round_trip_write_then_read(mqtt_server, qos, fmt):
    fields = "{n: i}" if fmt == "json" else '{payload: "\'m\' + str(i)"}'

    async def main() -> None:
        reader = build(reader_graph(mqtt_server.url, qos=qos, format=fmt, topic_field="topic"))
        reading = asyncio.ensure_future(reader.run())
        await until(lambda: nodes(reader)["src"].get("connection") == "connected")
        await asyncio.sleep(0.2)  # subscribed just after connecting
        writer = build(writer_graph(mqtt_server.url, 300, fields, qos=qos, format=fmt))
        assert await writer.run(), writer.failure
        await until(lambda: len(received()) >= 300)
        reader.request_stop()
        assert await reading, reader.failure

    asyncio.run(main())
    events = received()
    assert len(events) == 300
    assert {e["topic"] for e in events} == {"t/a"}
    if fmt == "json":
        assert sorted(e["n"] for e in events) == list(range(300))  # type: ignore[type-var]
    else:
        assert sorted(e["payload"] for e in events) == sorted(f"m{i}" for i in range(300))  # type: ignore[type-var]


def test_a_persistent_session_gets_what_was_published_while_the_graph_was_down(mqtt_server):
    graph = reader_graph(mqtt_server.url, qos=1, client_id="persistent-reader", clean_session=False)

    async def run_until(count: int) -> None:
        reader = build(graph)
        reading = asyncio.ensure_future(reader.run())
        await until(lambda: nodes(reader)["src"].get("connection") == "connected")
        await until(lambda: len(received()) >= count)
        reader.request_stop()
        assert await reading, reader.failure

    asyncio.run(run_until(0))  # subscribes, then the graph stops
    publish(mqtt_server, [json.dumps({"n": i}).encode() for i in range(200)])
    asyncio.run(run_until(200))
    assert sorted(e["n"] for e in received()) == list(range(200))  # type: ignore[type-var]


def test_a_broker_restart_mid_stream_reconnects_both_nodes_and_loses_nothing(mqtt_server):
    async def main() -> None:
        reader = build(reader_graph(mqtt_server.url, qos=1, client_id="restart-reader", clean_session=False))
        reading = asyncio.ensure_future(reader.run())
        await until(lambda: nodes(reader)["src"].get("connection") == "connected")
        await asyncio.sleep(0.2)
        writer = build(writer_graph(mqtt_server.url, 1500, qos=1).replace("count: 1500,", "count: 1500, rate: 500,"))
        writing = asyncio.ensure_future(writer.run())
        await until(lambda: len(received()) >= 300)
        # Off the loop: the graphs keep running (and fail to reach the broker) meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, mqtt_server.restart)
        assert await writing, writer.failure
        await until(lambda: len({e["n"] for e in received()}) >= 1500, timeout=60)
        assert nodes(reader)["src"]["reconnects"] >= 1
        assert nodes(writer)["out"]["reconnects"] >= 1
        reader.request_stop()
        assert await reading, reader.failure

    asyncio.run(main())
    assert {e["n"] for e in received()} == set(range(1500))  # at least once: repeats allowed


def test_a_slow_graph_holds_at_most_max_inflight_messages(mqtt_server):
    count, inflight = 900, 40

    async def main() -> None:
        reader = build(f"""
        version: 2
        name: slow
        nodes:
          src: {{type: mqtt.read, with: {{url: "{mqtt_server.url}", topic: "t/#", qos: 1, batch_size: 1,
                                          max_inflight: {inflight}}}}}
          slow: {{type: test.slow, from: {{node: src, edge: {{capacity: 16}}}}, with: {{per_pass: 1}}}}
          rec: {{type: test.slow_record, from: slow}}
        """)
        reading = asyncio.ensure_future(reader.run())
        await until(lambda: nodes(reader)["src"].get("connection") == "connected")
        await asyncio.sleep(0.2)
        publishing = asyncio.get_running_loop().run_in_executor(
            None, publish, mqtt_server, [json.dumps({"n": i}).encode() for i in range(count)])
        most = 0
        while len(received()) < count:  # the broker holds the rest until some are acknowledged
            most = max(most, int(nodes(reader)["src"]["waiting"]))
            await asyncio.sleep(0.002)
        await publishing
        reader.request_stop()
        assert await reading, reader.failure
        assert 0 < most <= inflight

    asyncio.run(main())
    assert sorted(e["n"] for e in received()) == list(range(count))  # type: ignore[type-var]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_wrong_password_stops_the_graph_with_one_line_naming_the_node(tmp_path, protocol):
    with MosquittoServer(tmp_path / "mosquitto", users={"sensors": "right-password"}) as server:
        url = f"mqtt://sensors:wrong-password@127.0.0.1:{server.port}"
        runtime = build(reader_graph(url, protocol=protocol))
        assert not asyncio.run(runtime.run())
    message = runtime.failure
    assert "\n" not in message
    assert message.startswith("node 'src': cannot connect: ")
    assert "the broker refused the username or password" in message
    assert "wrong-password" not in message


def test_engine_run_killed_mid_stream_delivers_every_message_at_least_once(tmp_path):
    # Unlimited queueing at the broker: a session queue holds the backlog while the engine is down
    # (Mosquitto's default drops QoS 1 messages beyond 1000 queued for one client).
    server = MosquittoServer(tmp_path / "mosquitto")
    server.config.write_text(server.config.read_text() + "max_queued_messages 0\n")
    count = 5000
    out = tmp_path / "out.jsonl"
    graph = tmp_path / "g.yaml"
    graph.write_text(f"""version: 2
name: crash
nodes:
  src:
    type: mqtt.read
    with: {{url: "{server.url}", topic: "t/#", qos: 1, client_id: crash-reader, clean_session: false,
           batch_size: 100}}
  out:
    type: file.write
    from: {{node: src, edge: {{durable: true, capacity: 256}}}}
    with: {{path: "{out}", format: jsonl, mode: append}}
""")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_STATE_DIR=str(tmp_path / "state"))

    def start() -> tuple[subprocess.Popen[str], Lines]:
        proc = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "run", str(graph)], cwd=tmp_path,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return proc, Lines(proc.stderr)

    def lines() -> list[str]:
        return out.read_text().splitlines() if out.exists() else []

    with server:
        engine, err = start()
        # The engine's session exists once its subscription does: wait for a message through it.
        wait_for(lambda: (publish(server, [b'{"n": -1}']), out.exists() and lines())[1], 60, seen=lambda: err.lines)
        feeder = threading.Thread(target=publish, args=(server, [json.dumps({"n": i}).encode() for i in range(count)]))
        feeder.start()
        wait_for(lambda: len(lines()) > count // 5, 60, seen=lambda: err.lines)
        engine.send_signal(signal.SIGKILL)
        assert engine.wait(30) == -signal.SIGKILL
        feeder.join(60)
        engine, err = start()
        try:
            wait_for(lambda: {json.loads(line).get("n") for line in lines()} >= set(range(count)), 60,
                     seen=lambda: (len(lines()), err.lines[-5:]))
        finally:
            engine.send_signal(signal.SIGTERM)
            engine.wait(30)
    numbers = [json.loads(line).get("n") for line in lines()]
    assert set(range(count)) <= set(numbers)
