"""`redis.read` and `redis.write` against a real redis-server (tests/servers.py): round trips,
acknowledgements, pending entries after a restart, a server restart mid-stream, `kill -9` of
`engine run` behind a durable edge, backpressure, and the one-line permanent errors."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.io.redis.params import shown_address
from adapters.io.redis.write import as_fields
from engine.node import AsyncSink, Batch, NodeContext
from engine.runtime import Runtime
from engine.spec import SINK, NodeSpec, params_schema
from tests.conftest import ROOT
from tests.crash_support import Output
from tests.process_support import Lines, wait_for
from tests.runtime_support import RECORDED, as_mapping, build
from tests.runtime_support import test_registry as registry_with_test_nodes
from tests.servers import RedisServer


def add(server: RedisServer, stream: str, count: int, start: int = 0) -> None:
    """`count` entries {"data": '{"n": i}'} appended to `stream`, pipelined."""
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + count):
        pipe.xadd(stream, {"data": json.dumps({"n": i})})
    pipe.execute()


def pending(server: RedisServer, stream: str, group: str = "headrace") -> int:
    """Entries delivered to the group and not acknowledged; 0 before the group exists."""
    import redis
    try:
        return int(server.client().xpending(stream, group)["pending"])
    except redis.ResponseError:  # NOGROUP: the node has not made it yet
        return 0


async def run_until(runtime: Runtime, done: Callable[[], bool], timeout: float = 30.0,
                    during: Callable[[], None] | None = None) -> bool:
    """Run the graph until `done()` (then stop it gracefully); `during()` runs on a thread
    meanwhile (a server restart)."""
    task = asyncio.ensure_future(runtime.run())
    side = asyncio.ensure_future(asyncio.to_thread(during)) if during else None
    deadline = time.monotonic() + timeout
    while not done() and not task.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    runtime.request_stop()
    ok = await task
    if side is not None:
        await side
    assert done(), f"not done in time: {runtime.failure or runtime.stats()['nodes']}"
    return ok


def reader(server: RedisServer, sink: str = "test.record", options: str = "", edge: str = "") -> str:
    return f"""
    version: 2
    name: g
    nodes:
      src: {{type: redis.read, with: {{url: "{server.url}", stream: orders, decode: json{options}}}}}
      rec: {{type: {sink}, from: {{node: src{edge}}}}}
    """


# -- round trips -------------------------------------------------------------------------------

def test_write_then_read_round_trip_fields_and_json(redis_server):
    writer = build(f"""
    version: 2
    name: w
    nodes:
      gen: {{type: generate, with: {{count: 3000, fields: {{n: i, name: "'o' + str(i)", big: "i > 2990"}}}}}}
      as_fields: {{type: redis.write, from: gen, with: {{url: "{redis_server.url}", stream: flat, maxlen: 100000}}}}
      as_json: {{type: redis.write, from: gen, with: {{url: "{redis_server.url}", stream: orders, encode: json}}}}
    """)
    assert asyncio.run(writer.run()), writer.failure
    client = redis_server.client(decode_responses=True)
    assert client.xlen("flat") == client.xlen("orders") == 3000
    first_id, first = client.xrange("flat", count=1)[0]
    assert first == {"n": "0", "name": "o0", "big": "false"}  # non-text values as JSON text
    assert json.loads(client.xrange("orders", count=1)[0][1]["data"]) == {"n": 0, "name": "o0", "big": False}

    flat = build(f"""
    version: 2
    name: r
    nodes:
      src: {{type: redis.read, with: {{url: "{redis_server.url}", stream: flat, id_field: _id, batch_size: 256}}}}
      rec: {{type: test.record, from: src}}
    """)
    asyncio.run(run_until(flat, lambda: len(RECORDED["rec"]) >= 3000))
    assert RECORDED["rec"][0] == {"n": "0", "name": "o0", "big": "false", "_id": first_id}
    assert [e["n"] for e in RECORDED["rec"]] == [str(i) for i in range(3000)]
    assert pending(redis_server, "flat") == 0  # all acknowledged
    health = flat.stats()["nodes"]["src"]  # type: ignore[index]
    assert health["connection"] == "closed" and health["reconnects"] == 0

    decoded = build(reader(redis_server))
    asyncio.run(run_until(decoded, lambda: len(RECORDED["rec"]) >= 3000))
    assert RECORDED["rec"][-1] == {"n": 2999, "name": "o2999", "big": True}


def test_bad_json_is_dead_lettered_and_still_acknowledged(redis_server):
    client = redis_server.client()
    client.xadd("orders", {"data": '{"n": 1}'})
    client.xadd("orders", {"data": "{not json"})
    client.xadd("orders", {"other": "x"})
    client.xadd("orders", {"data": "[1, 2]"})
    client.xadd("orders", {"data": '{"n": 2}'})
    runtime = build(f"""
    version: 2
    name: g
    nodes:
      src:
        type: redis.read
        on_error: dead_letter
        with: {{url: "{redis_server.url}", stream: orders, decode: json}}
      rec: {{type: test.record, from: src}}
      bad: {{type: test.record, from: src.errors}}
    """)
    asyncio.run(run_until(runtime, lambda: len(RECORDED["rec"]) >= 2 and len(RECORDED["bad"]) >= 3))
    assert RECORDED["rec"] == [{"n": 1}, {"n": 2}]
    errors = [e["error"] for e in RECORDED["bad"]]
    assert "is not valid JSON" in errors[0] and "has no field 'data'" in errors[1] and "not an object" in errors[2]
    assert RECORDED["bad"][0]["event"]["fields"] == {"data": "{not json"}
    assert pending(redis_server, "orders") == 0  # the failed entries are acknowledged too


# -- pending entries, server restarts ----------------------------------------------------------

def test_pending_entries_of_the_consumer_are_read_again_after_a_restart(redis_server):
    add(redis_server, "orders", 50)
    client = redis_server.client()
    client.xgroup_create("orders", "headrace", id="0")
    # A previous run of the same node read 30 entries and died before acknowledging them.
    client.xreadgroup("headrace", "g.src", {"orders": ">"}, count=30)
    assert pending(redis_server, "orders") == 30
    runtime = build(reader(redis_server))
    asyncio.run(run_until(runtime, lambda: len(RECORDED["rec"]) >= 50))
    assert [e["n"] for e in RECORDED["rec"]] == list(range(50))  # the pending ones first, once each
    assert pending(redis_server, "orders") == 0


def test_pending_entries_the_durable_edge_already_has_are_acknowledged_not_emitted(redis_server):
    add(redis_server, "orders", 50)
    client = redis_server.client(decode_responses=True)
    client.xgroup_create("orders", "headrace", id="0")
    # Killed after committing entries 0..19 to the durable edge (with the position) and
    # before the XACK: all 30 it had read are still pending.
    read = client.xreadgroup("headrace", "g.src", {"orders": ">"}, count=30)[0][1]
    runtime = build(reader(redis_server))
    runtime.runners["src"].impl.resume(json.dumps(["orders", "headrace", "g.src", read[19][0]]))
    asyncio.run(run_until(runtime, lambda: len(RECORDED["rec"]) >= 30))
    assert [e["n"] for e in RECORDED["rec"]] == list(range(20, 50))
    assert runtime.runners["src"].impl.skipped == 20
    assert pending(redis_server, "orders") == 0


def test_server_restart_mid_stream_reconnects_and_loses_nothing(redis_server):
    add(redis_server, "orders", 20_000)
    runtime = build(reader(redis_server, "test.slow_record", ", batch_size: 200"))
    restarted = []

    def restart() -> None:
        wait_for(lambda: len(RECORDED.get("rec", [])) >= 2000)
        redis_server.restart()  # appendonly + appendfsync always: nothing acknowledged is lost
        restarted.append(True)

    asyncio.run(run_until(runtime, lambda: bool(restarted) and len({e["n"] for e in RECORDED["rec"]}) >= 20_000,
                          timeout=60, during=restart))
    assert {e["n"] for e in RECORDED["rec"]} == set(range(20_000))
    assert runtime.stats()["nodes"]["src"]["reconnects"] >= 1  # type: ignore[index]
    assert pending(redis_server, "orders") == 0


def test_writer_survives_a_server_restart(redis_server):
    runtime = build(f"""
    version: 2
    name: w
    nodes:
      gen: {{type: generate, with: {{count: 20000, rate: 10000, fields: {{n: i}}}}}}
      out: {{type: redis.write, from: gen, with: {{url: "{redis_server.url}", stream: out}}}}
    """)
    client = redis_server.client()

    def restart() -> None:
        wait_for(lambda: client.xlen("out") >= 3000)
        redis_server.restart()

    async def run() -> bool:  # generate is finite: the graph ends by itself
        ok, _ = await asyncio.gather(runtime.run(), asyncio.to_thread(restart))
        return ok

    assert asyncio.run(run()), runtime.failure
    written = {int(fields[b"n"]) for _, fields in redis_server.client().xrange("out")}
    assert written == set(range(20_000))  # at least once: a batch cut by the restart may be there twice
    assert runtime.stats()["nodes"]["out"]["reconnects"] >= 1  # type: ignore[index]


def test_a_lost_group_is_created_again(redis_server):
    add(redis_server, "orders", 10)
    runtime = build(reader(redis_server))

    def destroy_and_add() -> None:
        wait_for(lambda: len(RECORDED.get("rec", [])) >= 10)
        redis_server.client().xgroup_destroy("orders", "headrace")
        add(redis_server, "orders", 10, start=10)

    # The group comes back from `start` (0: the whole stream): the first ten come again.
    asyncio.run(run_until(runtime, lambda: {e["n"] for e in RECORDED["rec"]} >= set(range(20)),
                          during=destroy_and_add))


# -- backpressure ------------------------------------------------------------------------------

class VerySlow(AsyncSink):
    """Takes 20 ms a batch: the edge before it fills and stays full."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        RECORDED[ctx.name] = []

    async def write(self, batch: Batch) -> None:
        await asyncio.sleep(0.02)
        RECORDED[self.ctx.name].extend(batch)


def test_a_slow_sink_bounds_what_is_read_but_not_acknowledged(redis_server):
    add(redis_server, "orders", 5000)
    registry = registry_with_test_nodes()
    registry.register(NodeSpec(name="test.very_slow", kind=SINK, summary="slow", params=params_schema({}),
                               factory=VerySlow, parse=as_mapping))
    capacity, batch, budget = 256, 100, 64
    runtime = build(reader(redis_server, "test.very_slow", f", batch_size: {batch}",
                           f", edge: {{capacity: {capacity}, policy: block}}"), registry, budget=budget)
    seen: list[int] = []

    def sample() -> None:
        while len(RECORDED.get("rec", [])) < 1500:
            seen.append(pending(redis_server, "orders"))
            time.sleep(0.01)

    asyncio.run(run_until(runtime, lambda: len(RECORDED["rec"]) >= 1500, during=sample))
    # What the edge holds, one read batch waiting for room, and the batch the sink writes.
    assert 0 < max(seen) <= capacity + batch + budget, max(seen)
    assert redis_server.client().xlen("orders") - len(RECORDED["rec"]) > 2000  # most of it was never fetched


# -- permanent errors --------------------------------------------------------------------------

def test_a_wrong_password_is_one_line_naming_the_node_without_retrying(tmp_path):
    with RedisServer(tmp_path / "redis", password="right-pw") as server:
        url = f"redis://:not-the-pw@127.0.0.1:{server.port}/0"
        started = time.monotonic()
        runtime = build(f"""
        version: 2
        name: g
        nodes:
          src: {{type: redis.read, with: {{url: "{url}", stream: orders}}}}
          rec: {{type: test.record, from: src}}
        """)
        assert not asyncio.run(runtime.run())
        assert time.monotonic() - started < 5
        assert runtime.failure.startswith("node 'src': redis at 127.0.0.1:")
        assert "refused the credentials" in runtime.failure and "\n" not in runtime.failure
        assert "not-the-pw" not in runtime.failure
        # the password as its own parameter works
        good = build(f"""
        version: 2
        name: g
        nodes:
          gen: {{type: generate, with: {{count: 1, fields: {{n: i}}}}}}
          out: {{type: redis.write, from: gen, with: {{url: "{server.url}", password: right-pw, stream: s}}}}
        """)
        assert asyncio.run(good.run()), good.failure
        assert server.client().xlen("s") == 1


@pytest.mark.parametrize("node", ["redis.read", "redis.write"])
def test_a_key_that_is_not_a_stream_is_one_clear_line(redis_server, node):
    redis_server.client().set("orders", "a string")
    source = (f'src: {{type: redis.read, with: {{url: "{redis_server.url}", stream: orders}}}}'
              if node == "redis.read" else 'src: {type: generate, with: {count: 5, fields: {n: i}}}')
    sink = ("rec: {type: test.record, from: src}" if node == "redis.read" else
            f'rec: {{type: redis.write, from: src, with: {{url: "{redis_server.url}", stream: orders}}}}')
    runtime = build(f"""
    version: 2
    name: g
    nodes:
      {source}
      {sink}
    """)
    assert not asyncio.run(runtime.run())
    failing = "src" if node == "redis.read" else "rec"
    assert runtime.failure.startswith(f"node '{failing}'"), runtime.failure
    assert "'orders'" in runtime.failure and "not a stream" in runtime.failure and "\n" not in runtime.failure


def test_unreachable_server_is_reported_as_reconnecting(tmp_path):
    server = RedisServer(tmp_path / "redis")  # not started: its port refuses
    runtime = build(reader(server))

    async def check() -> None:
        task = asyncio.ensure_future(runtime.run())
        await asyncio.sleep(0.5)
        assert not task.done()  # still trying: a refused connection may pass
        health = runtime.runners["src"].impl.health()
        assert health["connection"] == "reconnecting" and health["reconnects"] >= 2
        assert f"connecting to 127.0.0.1:{server.port}" in health["last_error"]
        runtime.request_stop()  # ends the open that waits for the server
        assert await asyncio.wait_for(task, 10)

    asyncio.run(check())


def test_shown_address_never_shows_credentials():
    assert shown_address("redis://user:pw@cache.internal:6380/2") == "cache.internal:6380/2"
    assert shown_address("rediss://:pw@cache") == "cache:6379/0"
    assert shown_address("unix:///run/redis.sock") == "/run/redis.sock"


def test_fields_encoding():
    assert as_fields({"a": "x", "b": 1, "c": None, "d": {"e": [1.5]}}) == {"a": "x", "b": "1", "c": "null",
                                                                         "d": '{"e":[1.5]}'}
    with pytest.raises(ValueError, match="at least one field"):
        as_fields({})


# -- kill -9 of engine run behind a durable edge -----------------------------------------------

COUNT = 20_000


def engine_run(cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_STATE_DIR=str(cwd / "state"))
    return subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "run", "g.yaml"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after(cwd: Path, output: Output, distinct: int) -> None:
    """Run until the output holds `distinct` entries, then SIGKILL the run mid-stream."""
    proc = engine_run(cwd)
    wait_for(lambda: output.done() >= distinct or proc.poll() is not None, timeout=60)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert output.done() < COUNT


def test_kill_9_of_engine_run_with_a_durable_edge_loses_no_entry(redis_server, tmp_path):
    add(redis_server, "orders", COUNT)
    (tmp_path / "g.yaml").write_text(f"""version: 2
name: g
nodes:
  src: {{type: redis.read, with: {{url: "{redis_server.url}", stream: orders, decode: json, batch_size: 500}}}}
  out:
    type: file.write
    from: {{node: src, edge: {{durable: true, capacity: 2000}}}}
    with: {{path: out.jsonl, mode: append}}
""")
    output = Output(tmp_path / "out.jsonl", "n")
    for share in (3000, 6000):
        kill_after(tmp_path, output, output.done() + share)
    proc = engine_run(tmp_path)
    err = Lines(proc.stderr)
    wait_for(lambda: output.done() >= COUNT or proc.poll() is not None, timeout=60, seen=lambda: err.lines)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, err.text()
    assert output.seen == set(range(COUNT))  # every entry at least once
    assert pending(redis_server, "orders") == 0
    # Repeats come only from file.write (written, killed before its input was acknowledged):
    # the source acknowledges pending entries the durable edge had already committed.
    print(f"{len(output.values)} lines for {COUNT} entries: {output.duplicates()} repeats")
    assert output.duplicates() <= 2 * 2000, output.duplicates()
