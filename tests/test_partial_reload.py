"""`engine serve` reloads a changed graph node by node: what is unchanged keeps running with
its state, what changed is drained and replaced, the events between them are handed over."""

import asyncio
import json
from pathlib import Path

import pytest

from adapters.serve.vocabulary import UPDATED
from tests.serve_support import Serving, events

WINDOWED = """version: 2
nodes:
  ticks: {{type: generate, with: {{rate: 800, fields: {{t: "i / 100.0", n: i}}}}}}
  both: {{type: map, from: ticks, with: {{set: {{m: "n"}}}}}}
  spare: {{type: "null", from: ticks}}
  per_second:
    type: aggregate
    from: both
    with:
      fields: {{n: "count()", first: "min(n)", last: "max(n)"}}
      window: {{type: tumbling, size: 1s, time_field: t}}
  out: {{type: file.write, from: per_second, with: {{path: {path}, format: jsonl}}}}
"""


def windowed(path: Path) -> str:
    return WINDOWED.format(path=json.dumps(str(path)))


def last_update(s: Serving, file: str):
    return [r for batch in s.history for r in batch if r.file == file and r.result == UPDATED][-1]


def test_a_sink_change_keeps_the_open_window_upstream(tmp_path):
    """The aggregate is kept with its open window: every window reaches a sink complete,
    none twice, none missing, across the two sink files."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    (graphs / "g.yaml").write_text(windowed(first))

    async def scenario():
        async with Serving(graphs) as s:
            await s.until(lambda: len(events(first)) >= 2, what="two windows in the first file")
            await asyncio.sleep(0.05)  # the current window is part-way through
            (graphs / "g.yaml").write_text(windowed(second))
            await s.until(lambda: s.results("g.yaml")[-1:] == [UPDATED], what="the update")
            await s.until(lambda: len(events(second)) >= 3, what="three windows in the second file")
            return last_update(s, "g.yaml")

    result = asyncio.run(scenario())
    assert result.nodes is not None and not result.nodes.whole_swap
    assert result.nodes.kept == ("both", "per_second", "spare", "ticks")
    assert result.nodes.replaced == ("out",)
    windows = events(first) + events(second)
    starts = [w["window_start"] for w in windows]
    ends = [w["window_end"] for w in windows]
    # Event time t = n / 100: a window of one second holds exactly 100 events (the last one
    # may still be open when the server stops, and is flushed part-way: left out).
    complete = windows[:-1]
    assert [w["n"] for w in complete] == [100] * len(complete), windows
    assert [(w["first"], w["last"]) for w in complete] == [(100 * k, 100 * k + 99) for k in range(len(complete))]
    assert starts == sorted(set(starts)) and ends[:-1] == starts[1:], "a window missing or repeated"


MAPPED = """version: 2
nodes:
  ticks: {{type: generate, with: {{rate: 3000, fields: {{n: i}}}}}}
  scaled: {{type: map, from: {{node: ticks, edge: {{capacity: 16}}}}, with: {{set: {{v: "n * {factor}"}}}}}}
  out: {{type: file.write, from: scaled, with: {{path: {path}, format: jsonl, mode: append}}}}
"""
SECOND_READER = '  copy: {{type: "null", from: ticks}}\n'


@pytest.mark.parametrize("fused", [True, False], ids=["source-fused-with-the-map", "source-apart"])
def test_a_map_change_mid_stream_loses_and_repeats_nothing(tmp_path, fused):
    """`generate` runs fused with the map after it unless a second node reads it: either
    way the source is kept, and goes on from where it was."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    out = tmp_path / "out.jsonl"
    mapped = MAPPED if fused else MAPPED + SECOND_READER
    (graphs / "g.yaml").write_text(mapped.format(factor=1, path=json.dumps(str(out))))

    async def scenario():
        async with Serving(graphs) as s:
            await s.until(lambda: len(events(out)) >= 200, what="events through the first map")
            (graphs / "g.yaml").write_text(mapped.format(factor=2, path=json.dumps(str(out))))
            await s.until(lambda: s.results("g.yaml")[-1:] == [UPDATED], what="the update")
            await s.until(lambda: any(e["v"] == 2 * e["n"] and e["n"] > 0 for e in events(out)),
                          what="events through the new map")
            await asyncio.sleep(0.2)
            return last_update(s, "g.yaml")

    result = asyncio.run(scenario())
    assert result.nodes is not None and not result.nodes.whole_swap
    assert result.nodes.kept == (("ticks",) if fused else ("copy", "ticks"))
    assert result.nodes.replaced == ("out", "scaled")
    seen = events(out)
    assert [e["n"] for e in seen] == list(range(len(seen))), "an event lost, repeated or reordered"
    factors = [e["v"] // e["n"] for e in seen if e["n"]]
    switch = factors.index(2)
    assert factors == [1] * switch + [2] * (len(factors) - switch)


def test_the_control_plane_reports_each_nodes_fate(tmp_path):
    """Apply, ListGraphs/GetGraph (what `engine ctl status` prints), WatchEvents and the audit
    log all speak the one reload vocabulary."""
    from adapters.cli.ctl_format import graph_detail, result_lines
    from adapters.control.v1 import control_pb2 as pb
    from tests.test_control import control

    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "g.yaml").write_text(windowed(first))

    async def scenario(s, stub, channel, plane):
        watcher = stub.WatchEvents(pb.WatchEventsRequest())
        await s.until(lambda: events(first), what="a first window")
        reply = await stub.Apply(pb.ApplyRequest(file="g.yaml", document=windowed(second)))
        assert reply.result.result == "updated"
        assert list(reply.result.nodes.kept) == ["both", "per_second", "spare", "ticks"]
        assert list(reply.result.nodes.replaced) == ["out"] and not reply.result.nodes.whole_swap
        assert result_lines(reply.result)[0].endswith("; kept both, per_second, spare, ticks; replaced out")
        graph = await stub.GetGraph(pb.GetGraphRequest(graph="g"))
        assert "  nodes:       kept both, per_second, spare, ticks; replaced out" in graph_detail(graph)
        async for event in watcher:
            record = json.loads(event.json)
            if record.get("result") == "updated":
                assert record["nodes"] == {"kept": ["both", "per_second", "spare", "ticks"], "replaced": ["out"],
                                           "added": [], "removed": []}
                assert event.detail == "g.yaml: updated (kept both, per_second, spare, ticks; replaced out)"
                break
        await s.until(lambda: events(second), what="a window in the new file")

    control(tmp_path, scenario)
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["method"], a["result"]) for a in audit] == [("Apply", "updated")]


def test_the_shipped_alerts_example_keeps_its_windows_when_an_output_changes(tmp_path):
    from tests.conftest import ROOT

    graphs = tmp_path / "graphs"
    graphs.mkdir()
    text = (ROOT / "graphs" / "alerts.yaml").read_text()
    (graphs / "alerts.yaml").write_text(text)

    async def scenario():
        async with Serving(graphs) as s:
            await asyncio.sleep(0.3)
            running = s.running("alerts.yaml").runtime
            window = running.runners["warnings_per_minute"].impl
            (graphs / "alerts.yaml").write_text(text.replace("key: sensor", "key: sensor\n          capacity: 64"))
            await s.until(lambda: s.results("alerts.yaml")[-1:] == [UPDATED], what="the update")
            assert s.running("alerts.yaml").runtime is running
            assert running.runners["warnings_per_minute"].impl is window  # its open windows with it
            return last_update(s, "alerts.yaml")

    result = asyncio.run(scenario())
    assert result.nodes is not None and not result.nodes.whole_swap
    assert result.nodes.replaced == ("latest_warning",)
    assert result.nodes.kept == ("by_severity", "critical_out", "discard", "readings", "warnings_per_minute")


SECRETS = """version: 2
{secret}
nodes:
  ticks: {{type: generate, with: {{rate: 400, fields: {{n: i, token: "'abc'"}}}}}}
  a: {{type: map, from: ticks, with: {{set: {{m: n}}}}}}
  b: {{type: "null", from: ticks}}
  out: {{type: "null", from: a}}
"""


def test_an_open_tap_masks_a_secret_field_declared_by_a_reload(tmp_path):
    """Declaring a secret keeps every node running, and the tap already open masks it."""
    from adapters.control.taps import MASK, TapStream

    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "g.yaml").write_text(SECRETS.format(secret=""))

    async def scenario():
        async with Serving(graphs) as s:
            running = s.running("g.yaml")
            tap = TapStream(running, "ticks->b", 1000)
            sampled = tap.events(lambda: s.host.graphs.get("g.yaml") is running)
            _, first = await sampled.__anext__()  # (events missed before it, the event's JSON)
            assert json.loads(first)["token"] == "abc"
            (graphs / "g.yaml").write_text(SECRETS.format(secret="secret_fields: [token]"))
            await s.until(lambda: s.results("g.yaml")[-1:] == [UPDATED], what="the update")
            assert s.running("g.yaml") is running and last_update(s, "g.yaml").nodes.replaced == ()
            while not tap.queue.empty():
                tap.queue.get_nowait()
            _, later = await sampled.__anext__()
            assert json.loads(later)["token"] == MASK
            tap.close()

    asyncio.run(scenario())
