"""The control plane against a real `engine serve` host, over a loopback socket."""

import asyncio
import json
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.control.audit import verify
from adapters.control.server import ControlPlane
from adapters.control.v1 import control_pb2 as pb
from adapters.control.v1 import control_pb2_grpc
from adapters.serve import server as server_module
from tests.serve_support import Serving, events, ticking_graph

SECRET_GRAPH = """version: 1
secret_fields: [card]
nodes:
  orders: {type: generate, with: {rate: 200, fields: {n: i, card: "'4111-1111'"}}}
  priced: {type: map, from: orders, with: {set: {cents: n * 100}}}
  out: {type: "null", from: priced}
"""


def control(tmp_path, scenario, audit=True):  # type: ignore[no-untyped-def]
    """Serve tmp_path/graphs with a control plane on a free port; run `scenario(s, stub)`."""
    graphs = tmp_path / "graphs"
    graphs.mkdir(exist_ok=True)

    async def main():  # type: ignore[no-untyped-def]
        async with Serving(graphs) as s:
            plane = ControlPlane("127.0.0.1:0", None, None, None, None,
                                 tmp_path / "audit.jsonl" if audit else None, s.server, s.host, 5.0)
            await plane.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.port}") as channel:
                    await scenario(s, control_pb2_grpc.ControlStub(channel), channel, plane)
            finally:
                await plane.stop(0)

    asyncio.run(main())


def test_pause_and_resume_a_graph_and_a_node_are_seen_in_its_events(tmp_path):
    out = tmp_path / "out.jsonl"
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "g.yaml").write_text(ticking_graph(out, "A", name="ticks"))

    async def scenario(s, stub, channel, plane):  # type: ignore[no-untyped-def]
        await s.until(lambda: len(events(out)) > 10)
        reply = await stub.Pause(pb.PauseRequest(graph="ticks"))
        assert reply.paused and reply.changed
        assert not (await stub.Pause(pb.PauseRequest(graph="ticks"))).changed  # idempotent
        await asyncio.sleep(0.15)
        paused_at = len(events(out))
        await asyncio.sleep(0.3)
        assert len(events(out)) == paused_at  # nothing moves while paused
        listed = await stub.ListGraphs(pb.ListGraphsRequest())
        assert [(g.name, g.file, g.state) for g in listed.graphs] == [("ticks", "g.yaml", "paused")]
        assert (await stub.Resume(pb.PauseRequest(graph="ticks"))).changed
        await s.until(lambda: len(events(out)) > paused_at + 10, what="events after resume")
        # One node: the sink pauses, its input edge fills up, the source is held back.
        await stub.Pause(pb.PauseRequest(graph="ticks", node="out"))
        graph = await stub.GetGraph(pb.GetGraphRequest(graph="ticks"))
        assert {n.name: n.state for n in graph.nodes} == {"ticks": "running", "out": "paused"}
        await asyncio.sleep(0.15)
        held = len(events(out))
        await asyncio.sleep(0.3)
        assert len(events(out)) == held
        await stub.Resume(pb.PauseRequest(graph="ticks", node="out"))
        await s.until(lambda: len(events(out)) > held, what="events after resuming the node")
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Pause(pb.PauseRequest(graph="ticks", node="nope"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND

    control(tmp_path, scenario)
    got = [e["n"] for e in events(out)]
    assert got == list(range(len(got)))  # paused, not lost
    assert verify(tmp_path / "audit.jsonl") == []
    methods = [json.loads(line)["method"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert methods == ["Pause", "Pause", "Resume", "Pause", "Resume", "Pause"]


def test_drain_leaves_nothing_behind_and_reload_restarts_it(tmp_path):
    out = tmp_path / "out.jsonl"
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "g.yaml").write_text(ticking_graph(out, "A", rate=2000, name="ticks"))

    async def scenario(s, stub, channel, plane):  # type: ignore[no-untyped-def]
        await s.until(lambda: len(events(out)) > 50)
        reply = await stub.Drain(pb.DrainRequest(graph="ticks", timeout_s=5))
        assert reply.drained and reply.remaining == 0
        graph = await stub.GetGraph(pb.GetGraphRequest(graph="ticks"))
        assert graph.summary.state == "drained"
        assert all(e.depth == 0 for e in graph.edges)
        generated = {n.name: n.events_out for n in graph.nodes}["ticks"]
        assert len(events(out)) == generated  # every generated event reached the file
        results = (await stub.Reload(pb.ReloadRequest())).results
        assert [(r.file, r.result) for r in results] == [("g.yaml", "updated")]  # a drained graph restarts

    control(tmp_path, scenario)


def test_apply_valid_invalid_and_stale_and_remove(tmp_path):
    out = tmp_path / "new.jsonl"

    async def scenario(s, stub, channel, plane):  # type: ignore[no-untyped-def]
        watcher = stub.WatchEvents(pb.WatchEventsRequest())
        first = await stub.Apply(pb.ApplyRequest(file="new.yaml", document=ticking_graph(out, "A"),
                                                 expected_plan_hash="none"))
        assert first.result.result == "added" and first.result.graph == "new"
        assert (tmp_path / "graphs" / "new.yaml").read_text() == ticking_graph(out, "A")
        await s.until(lambda: events(out))
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Apply(pb.ApplyRequest(file="new.yaml", document="version: 1\nnodes:\n  x: {type: nope}\n"))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "new.yaml:3:13: HR031 unknown node type 'nope'" in error.value.details()
        assert (tmp_path / "graphs" / "new.yaml").read_text() == ticking_graph(out, "A")  # nothing changed
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Apply(pb.ApplyRequest(file="new.yaml", document=ticking_graph(out, "B"),
                                             expected_plan_hash="sha256:stale"))
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"runs plan {first.result.plan_hash}, not the expected sha256:stale" in error.value.details()
        second = await stub.Apply(pb.ApplyRequest(file="new.yaml", document=ticking_graph(out, "B"),
                                                  expected_plan_hash=first.result.plan_hash))
        assert second.result.result == "updated"
        with pytest.raises(grpc.aio.AioRpcError) as error:  # a second file may not take a running name
            await stub.Apply(pb.ApplyRequest(file="copy.yaml", document=ticking_graph(out, "C", name="new")))
        assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "the graph name 'new' is already used by new.yaml" in error.value.details()
        assert not (tmp_path / "graphs" / "copy.yaml").exists()
        removed = await stub.Remove(pb.RemoveRequest(graph="new"))
        assert removed.result.result == "removed" and not (tmp_path / "graphs" / "new.yaml").exists()
        seen = []
        async for event in watcher:
            seen.append((event.kind, event.file, json.loads(event.json).get("result")))
            if seen[-1][2] == "removed":
                break
        assert seen == [("reload", "new.yaml", "added"), ("reload", "new.yaml", "updated"),
                        ("reload", "new.yaml", "removed")]

    control(tmp_path, scenario)


@pytest.mark.parametrize("scanned_first", [True, False], ids=["scanned", "about-to-scan"])
def test_apply_during_a_watch_reload_reports_its_own_change(tmp_path, monkeypatch, scanned_first):
    """A watch reload caught mid-scan must not take Apply's reload or answer for it."""
    out = tmp_path / "out.jsonl"
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "g.yaml").write_text(ticking_graph(out, "A", name="ticks"))
    scanning, release = threading.Event(), threading.Event()
    real_scan = server_module.scan

    def held_scan(directory):  # type: ignore[no-untyped-def]
        snapshot = real_scan(directory) if scanned_first else None
        if not release.is_set():
            scanning.set()
            release.wait(10)
        return snapshot if scanned_first else real_scan(directory)

    async def scenario(s, stub, channel, plane):  # type: ignore[no-untyped-def]
        running = s.running("g.yaml").plan_hash
        reloads_before = len(s.history)
        monkeypatch.setattr(server_module, "scan", held_scan)
        real_reload_now, asked = s.server.reload_now, asyncio.Event()

        async def reload_now(*args, **kwargs):  # type: ignore[no-untyped-def]
            asked.set()  # nothing awaits before the lock: seen set, Apply is waiting for it
            return await real_reload_now(*args, **kwargs)

        monkeypatch.setattr(s.server, "reload_now", reload_now)
        s.server.dirty.set()  # what a watch event does
        await s.until(scanning.is_set, what="the watch reload to scan")
        apply = asyncio.ensure_future(stub.Apply(pb.ApplyRequest(
            file="g.yaml", document=ticking_graph(out, "B", name="ticks"), expected_plan_hash=running)))
        await s.until(asked.is_set, what="Apply to ask for its reload")
        assert s.server.lock.locked() and not apply.done()  # the watch reload holds the lock: Apply waits
        release.set()
        reply = await apply
        assert reply.result.result == "updated" and reply.result.plan_hash != running
        await s.until(lambda: any(e.get("v") == "B" for e in events(out)), what="the updated graph")
        assert [[r.result for r in batch] for batch in s.history[reloads_before:]] == [["updated"]]

    control(tmp_path, scenario)


def test_tap_masks_secret_fields_and_is_rate_limited(tmp_path):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "orders.yaml").write_text(SECRET_GRAPH)

    async def scenario(s, stub, channel, plane):  # type: ignore[no-untyped-def]
        # `orders -> priced` is inside a fused chain: tapping it regenerates that loop.
        taps = [json.loads(t.json) async for t in stub.Tap(pb.TapRequest(
            graph="orders", edge="orders->priced", limit=3, per_second=20))]
        assert [sorted(t) for t in taps] == [["card", "n"]] * 3
        assert {t["card"] for t in taps} == {"****"}
        numbers = [t["n"] for t in taps]
        assert numbers == sorted(numbers) and numbers[1] - numbers[0] >= 5  # about 20 a second of 200
        after = [json.loads(t.json) async for t in stub.Tap(pb.TapRequest(graph="orders", edge="priced->out",
                                                                          limit=1))]
        assert after[0]["card"] == "****" and after[0]["cents"] == after[0]["n"] * 100
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for _ in stub.Tap(pb.TapRequest(graph="orders", edge="nope->out")):
                pass
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert not s.running("orders.yaml").runtime.segments[0].segment.taps  # untapped again

    control(tmp_path, scenario)


def test_health_is_serving_then_not_serving_on_shutdown(tmp_path):
    async def scenario(s, stub, channel, plane):  # type: ignore[no-untyped-def]
        checker = health_pb2_grpc.HealthStub(channel)
        assert (await checker.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
        await plane.not_serving()
        reply = await checker.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

    control(tmp_path, scenario, audit=False)


def test_a_tap_ends_when_its_graph_is_replaced_drained_or_removed(tmp_path):
    """An open tap (no limit) ends by itself, and leaves no observer behind, when the graph it
    taps is swapped for a new version, drained, or removed."""
    out = tmp_path / "out.jsonl"
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "g.yaml").write_text(ticking_graph(out, "A", name="ticks"))

    async def open_tap(stub, opened: asyncio.Event) -> list[str]:  # type: ignore[no-untyped-def]
        tags = []
        async for event in stub.Tap(pb.TapRequest(graph="ticks", edge="ticks->out", per_second=50)):
            tags.append(json.loads(event.json)["v"])
            opened.set()
        return tags  # the engine ended the stream

    async def tap_until(stub, s, change) -> list[str]:  # type: ignore[no-untyped-def]
        opened = asyncio.Event()
        tap = asyncio.ensure_future(open_tap(stub, opened))
        await asyncio.wait_for(opened.wait(), 10)
        tapped = s.running("g.yaml")
        assert tapped.runtime.edges["ticks->out"].taps  # the observer is on
        await change()
        tags = await asyncio.wait_for(tap, 10)
        assert not tapped.runtime.edges["ticks->out"].taps  # and off again
        return tags

    async def scenario(s, stub, channel, plane):  # type: ignore[no-untyped-def]
        version_a = s.running("g.yaml").plan_hash

        async def replace() -> None:
            reply = await stub.Apply(pb.ApplyRequest(file="g.yaml", document=ticking_graph(out, "B", name="ticks"),
                                                     expected_plan_hash=version_a))
            assert reply.result.result == "updated" and reply.result.nodes.whole_swap == "every node changed"

        assert set(await tap_until(stub, s, replace)) == {"A"}

        async def drain() -> None:
            assert (await stub.Drain(pb.DrainRequest(graph="ticks", timeout_s=5))).drained

        assert set(await tap_until(stub, s, drain)) == {"B"}
        assert [r.result for r in (await stub.Reload(pb.ReloadRequest())).results] == ["updated"]  # restarted

        async def remove() -> None:
            assert (await stub.Remove(pb.RemoveRequest(graph="ticks"))).result.result == "removed"

        assert set(await tap_until(stub, s, remove)) == {"B"}

    control(tmp_path, scenario)
