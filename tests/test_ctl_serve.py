"""An operator's session: `engine ctl` against a real `engine serve` process, with a token."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from adapters.cli.ctl import ENGINE_SAVE_QUEUE
from adapters.control.audit import verify
from adapters.control.taps import SAVE_QUEUE, TapStream
from tests.conftest import ROOT
from tests.ctl_serve_support import Engine
from tests.process_support import Lines, wait_for

TOKEN = "s3cret-token"
GRAPH = """version: 1
name: orders
secret_fields: [card]
nodes:
  events: {type: generate, with: {rate: 300, fields: {n: i, card: "'4111'"}}}
  priced: {type: map, from: events, with: {set: {cents: n * 100}}}
  out: {type: file.write, from: priced, with: {path: out.jsonl, format: jsonl, mode: append}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_operator_steers_a_running_engine_with_ctl(tmp_path):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "orders.yaml").write_text(GRAPH)
    address = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_CONTROL_ADDRESS=address, HEADRACE_CONTROL_TOKEN=TOKEN,
               HEADRACE_AUDIT_LOG=str(tmp_path / "audit.jsonl"), HEADRACE_WATCH_DEBOUNCE_MS="50")
    engine = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "serve", "graphs"], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def ctl(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in env.items() if k != "HEADRACE_CONTROL_TOKEN"}
        if token is not None:
            environment["HEADRACE_CONTROL_TOKEN"] = token
        return subprocess.run([sys.executable, "-m", "adapters.cli.main", "ctl", *args], cwd=tmp_path,
                              env=environment, capture_output=True, text=True, timeout=30)

    try:
        deadline = time.monotonic() + 30
        while ctl("health").stdout.strip() != "SERVING":
            assert time.monotonic() < deadline and engine.poll() is None, engine.stderr.read() if engine.stderr else ""
            time.sleep(0.1)
        status = json.loads(ctl("status", "--json").stdout)
        assert [(g["name"], g["state"]) for g in status["graphs"]] == [("orders", "running")]

        refused = ctl("status", token="wrong")
        assert refused.returncode == 1
        assert refused.stderr.startswith("engine: error: unauthenticated: send the control token")
        assert "orders" not in refused.stderr  # nothing about what exists

        assert ctl("pause", "orders").returncode == 0
        time.sleep(0.3)
        before = len((tmp_path / "out.jsonl").read_text().splitlines())
        time.sleep(0.4)
        assert len((tmp_path / "out.jsonl").read_text().splitlines()) == before
        assert ctl("resume", "orders").returncode == 0

        tapped = ctl("tap", "orders", "events->priced", "--limit", "2")
        assert tapped.returncode == 0
        assert [json.loads(line)["card"] for line in tapped.stdout.splitlines()] == ["****", "****"]

        (tmp_path / "bad.yaml").write_text("version: 1\nnodes:\n  x: {type: nope}\n")
        invalid = ctl("apply", "bad.yaml")
        assert invalid.returncode == 1 and "bad.yaml:3:13: HR031 unknown node type 'nope'" in invalid.stderr
        detail = json.loads(ctl("status", "orders", "--json").stdout)
        hash_now = detail["summary"]["plan_hash"]
        for node in detail["nodes"]:  # the stats file's counters: out per port, busy time
            assert sum(node["events_out_by_port"].values()) == node["events_out"] and node["busy_seconds"] >= 0
        assert all(edge["blocked_seconds"] >= 0 for edge in detail["edges"])
        stale = ctl("apply", "graphs/orders.yaml", "--expect", "sha256:0000")
        assert stale.returncode == 1 and hash_now in stale.stderr

        drained = ctl("drain", "orders")
        assert drained.returncode == 0, drained.stderr
        lines = [json.loads(line)["n"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert lines == list(range(len(lines)))  # paused and drained, nothing lost
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
    verified = subprocess.run([sys.executable, "-m", "adapters.cli.main", "audit", "verify", "audit.jsonl"],
                              cwd=tmp_path, env=env, capture_output=True, text=True)
    assert verified.returncode == 0 and "chain intact" in verified.stdout
    audit_text = Path(tmp_path / "audit.jsonl").read_text()
    records = [json.loads(line) for line in audit_text.splitlines()]
    methods = [record["method"] for record in records]
    assert methods == ["ListGraphs", "Pause", "Resume", "Apply", "Apply", "Drain"]  # refused calls and applies too
    assert (records[0]["result"], records[0]["detail"]) == ("unauthenticated", "wrong token")  # `status` as "wrong"
    assert TOKEN not in audit_text and '"wrong"' not in audit_text


COPY = """version: 2
name: copy
nodes:
  ticks: {type: generate, with: {rate: 200, fields: {n: i}}}
  out: {type: file.write, from: ticks, with: {path: copy.jsonl, format: jsonl, mode: append}}
"""


def test_reload_apply_as_remove_and_events_against_a_real_engine(tmp_path):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "orders.yaml").write_text(GRAPH)
    engine = Engine(tmp_path, {"CONTROL_TOKEN": TOKEN, "AUDIT_LOG": str(tmp_path / "audit.jsonl")})
    token = {"HEADRACE_CONTROL_TOKEN": TOKEN}
    try:
        engine.wait_serving()
        watcher = engine.ctl_process("events", "--json", env=token)
        seen = Lines(watcher.stdout)

        def reloads() -> list[tuple[str, str]]:
            records = [json.loads(line) for line in seen.lines]
            return [(e["file"], e["json"]["result"]) for e in records if e["kind"] == "reload"]

        # `reload`: every file, one line each. Repeated until the event stream shows one: then
        # the stream is surely subscribed, and sees every later change.
        def reload_is_seen() -> bool:
            done = engine.ctl("reload", env=token)
            assert done.returncode == 0, done.stderr
            assert re.fullmatch(r"orders\.yaml: unchanged \(graph 'orders', plan sha256:[0-9a-f]{12}\)\n",
                                done.stdout), done.stdout
            return bool(reloads())

        wait_for(reload_is_seen, seen=lambda: seen.lines)
        assert set(reloads()) == {("orders.yaml", "unchanged")}

        # `apply --as`: the document goes into the served directory under the name given.
        (tmp_path / "draft.yaml").write_text(COPY)
        applied = engine.ctl("apply", "draft.yaml", "--as", "copy.yaml", "--expect", "none", env=token)
        assert applied.returncode == 0, applied.stderr
        assert re.fullmatch(r"copy\.yaml: added \(graph 'copy', plan sha256:[0-9a-f]{12}\)\n", applied.stdout)
        assert (tmp_path / "graphs" / "copy.yaml").read_text() == COPY
        assert not (tmp_path / "graphs" / "draft.yaml").exists()
        wait_for(lambda: (tmp_path / "copy.jsonl").exists() and (tmp_path / "copy.jsonl").read_text())
        listed = json.loads(engine.ctl("status", "--json", env=token).stdout)["graphs"]
        assert [(g["name"], g["file"], g["state"]) for g in listed] == [
            ("copy", "copy.yaml", "running"), ("orders", "orders.yaml", "running")]

        # `remove`: the file is deleted and the graph stops.
        removed = engine.ctl("remove", "copy", env=token)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.startswith("copy.yaml: removed (graph 'copy'")
        assert not (tmp_path / "graphs" / "copy.yaml").exists()
        listed = json.loads(engine.ctl("status", "--json", env=token).stdout)["graphs"]
        assert [g["name"] for g in listed] == ["orders"]
        assert engine.ctl("remove", "copy", env=token).returncode == 1  # no such graph any more

        # `reload` exits 1 when a file is rejected, its problems indented below it.
        (tmp_path / "graphs" / "broken.yaml").write_text("version: 2\nnodes:\n  x: {type: nope}\n")
        rejected = engine.ctl("reload", env=token)
        assert rejected.returncode == 1
        assert rejected.stdout.splitlines()[:2] == [
            "broken.yaml: rejected (graph 'broken')", "  graphs/broken.yaml:3:13: HR031 unknown node type 'nope'"]

        # `events`: each of those changes, in order, as the engine made them.
        wait_for(lambda: ("broken.yaml", "rejected") in reloads(), seen=lambda: seen.lines)
        changes = [r for r in reloads() if r[0] != "orders.yaml"]
        assert changes[:2] == [("copy.yaml", "added"), ("copy.yaml", "removed")]
        assert set(changes[2:]) == {("broken.yaml", "rejected")}  # the watch may have seen it first
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=30) == 0  # Ctrl-C ends a stream normally
    finally:
        assert engine.stop() == 0, engine.log.read_text()
    assert verify(tmp_path / "audit.jsonl") == []
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    changes = [(r["principal"], r["method"], r["target"], r["result"]) for r in records if r["method"] != "Reload"]
    assert changes[:2] == [("token", "Apply", "copy.yaml", "added"), ("token", "Remove", "copy", "removed")]
    assert records[-1]["method"] == "Reload" and records[-1]["result"].startswith("broken.yaml: rejected")


def test_tap_save_keeps_every_event_crossing_an_edge_as_a_test_input(tmp_path):
    """`tap --save` against a real engine: every event of a fused link and of a plain edge, in
    order, secrets masked, and the file feeds a graph test as it is."""
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "orders.yaml").write_text(GRAPH)
    engine = Engine(tmp_path, {})
    try:
        engine.wait_serving()
        for edge, name in (("events->priced", "fused.jsonl"), ("priced->out", "edge.jsonl")):
            saved = engine.ctl("tap", "orders", edge, "--save", name, "--limit", "200")
            assert (saved.returncode, saved.stdout, saved.stderr) == (0, "", f"saved 200 events to {name}\n")
            events = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
            first = events[0]["n"]
            assert [e["n"] for e in events] == list(range(first, first + 200))  # every one, in order
            assert {e["card"] for e in events} == {"****"}
        # What crossed `priced->out` is what the sink wrote, but for the secret.
        saved_events = [json.loads(line) for line in (tmp_path / "edge.jsonl").read_text().splitlines()]

        def written() -> dict[int, dict[str, object]]:
            return {e["n"]: e for e in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}

        wait_for(lambda: saved_events[-1]["n"] in written())
        sink = written()
        assert [{**sink[e["n"]], "card": "****"} for e in saved_events] == saved_events
        assert sink[saved_events[0]["n"]]["card"] == "4111"
    finally:
        assert engine.stop() == 0, engine.log.read_text()
    (tmp_path / "orders.test.yaml").write_text("""version: 1
graph: graphs/orders.yaml
tests:
  - name: what production saw
    inputs:
      events: {file: fused.jsonl}
    expect:
      out:
        count: 200
        all: "cents == n * 100 and card == '****'"
""")
    tested = subprocess.run([sys.executable, "-m", "adapters.cli.main", "test", "orders.test.yaml"], cwd=tmp_path,
                            env=engine.env, capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _stream(every: bool, limit: int = 0) -> tuple[TapStream, list[object]]:
    """A TapStream on a stand-in for a running graph (`card` secret); the observers it set."""
    observers: list[object] = []
    controls = SimpleNamespace(tap=lambda edge, observe: observers.append(observe),
                               untap=lambda edge, observe: observers.remove(observe))
    running = SimpleNamespace(plan=SimpleNamespace(secret_fields=("card",)), runtime=SimpleNamespace(
        controls=controls), state="running")
    return TapStream(running, "a->b", 0.0, every, limit), observers  # type: ignore[arg-type]


def test_a_tap_of_every_event_counts_what_its_full_queue_skips():
    """The engine's half of `tap --save`: no event is skipped while the queue has room (up to
    the limit, every one fits); past that each skipped event is counted on the next kept one."""
    assert SAVE_QUEUE == ENGINE_SAVE_QUEUE  # what `engine ctl` tells the operator
    stream, observers = _stream(every=True)
    assert observers == [stream.keep_every]
    batch = [{"n": n, "card": "4111"} for n in range(SAVE_QUEUE + 5)]
    assert stream.keep_every(batch) is True  # it wants every next one
    assert stream.queue.qsize() == SAVE_QUEUE
    assert [stream.queue.get_nowait() for _ in range(2)] == [(0, '{"n":0,"card":"****"}'), (0, '{"n":1,"card":"****"}')]
    stream.keep_every([{"n": SAVE_QUEUE + 5, "card": "4111"}])
    kept = [stream.queue.get_nowait() for _ in range(stream.queue.qsize())]
    assert kept[-1] == (5, f'{{"n":{SAVE_QUEUE + 5},"card":"****"}}')  # after the 5 that found it full
    assert [missed for missed, _ in kept[:-1]] == [0] * (SAVE_QUEUE - 2)
    stream.close()
    assert observers == []

    limited, _ = _stream(every=True, limit=3)
    assert limited.keep_every(batch[:10]) is False  # the limit is reached: nothing more wanted
    assert limited.keep_every(batch[10:]) is False
    assert [json.loads(text)["n"] for _, text in [limited.queue.get_nowait() for _ in range(3)]] == [0, 1, 2]
    assert limited.queue.empty()


def test_a_tap_sends_what_it_kept_before_its_graph_stopped():
    stream, _ = _stream(every=True)
    stream.keep_every([{"n": n} for n in range(3)])
    stream.running.state = "finished"

    async def all_sent() -> list[tuple[int, str]]:
        return [item async for item in stream.events(lambda: True)]

    assert asyncio.run(all_sent()) == [(0, '{"n":0}'), (0, '{"n":1}'), (0, '{"n":2}')]
