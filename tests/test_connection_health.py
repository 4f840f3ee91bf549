"""A connector's connection in the stats, `engine ctl status` (JSON and text), `engine top` and
/metrics; and `engine validate`'s warning for a source that acknowledges before its events
are safe (HR071). The connector is tests/health_support.py's `test.linked`."""

import asyncio

from google.protobuf.json_format import MessageToDict
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.cli.ctl_format import graph_detail
from adapters.cli.top_view import graph_dict, text_frame
from adapters.control.v1 import control_pb2 as pb
from adapters.observe.metrics import metrics_registry
from adapters.observe.snapshot import graph_view, stamped
from engine.runtime import Runtime
from loader.api import load_text
from tests.runtime_support import build
from tests.runtime_support import test_registry as registry_with_test_types
from tests.test_control import control

PASSWORD = "pa55-w0rd-x"
LOSING = f"""
    version: 2
    nodes:
      src:
        type: test.linked
        with: {{url: "redis://:{PASSWORD}@localhost:6379/0", lose_after: 3}}
      out: {{type: test.record, from: {{node: src, edge: {{durable: false}}}}}}
      tally: {{type: map, from: src, with: {{set: {{k: i}}}}}}
      tally_out: {{type: "null", from: tally}}
    """


async def _until_reconnecting(runtime: Runtime) -> dict[str, object]:
    task = asyncio.ensure_future(runtime.run())
    for _ in range(400):
        await asyncio.sleep(0.01)
        nodes = runtime.stats()["nodes"]
        assert isinstance(nodes, dict)
        if nodes["src"].get("reconnects", 0) >= 2:
            break
    stats = runtime.stats()
    runtime.request_stop()
    assert await task, runtime.failure
    return stats


def test_stats_carry_the_connection_with_its_error_masked():
    runtime = build(LOSING)
    stats = asyncio.run(_until_reconnecting(runtime))
    nodes = stats["nodes"]
    assert isinstance(nodes, dict)
    src = nodes["src"]
    assert src["connection"] == "reconnecting" and src["reconnects"] >= 2
    assert src["last_error"] == "ConnectionError: redis://:****@localhost:6379/0 closed the connection"
    assert "connection" not in nodes["tally"]  # only connectors report one


def test_metrics_say_connected_and_count_reconnects():
    runtime = build(LOSING)
    asyncio.run(_until_reconnecting(runtime))
    view = graph_view("g", "g.yaml", "running", runtime)
    text = generate_latest(metrics_registry(lambda: stamped([view]))).decode()
    samples = {(s.name, s.labels.get("node")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("headrace_node_connected", "src")] == 0
    assert samples[("headrace_node_reconnects_total", "src")] >= 2
    assert ("headrace_node_connected", "tally") not in samples
    assert PASSWORD not in text


def test_ctl_status_shows_the_connection_of_connectors_only(tmp_path):
    graph = (f"version: 2\nnodes:\n"
             f"  src: {{type: test.linked, with: {{url: \"redis://:{PASSWORD}@localhost:6379/0\", lose_after: 2, "
             f"interval_ms: 2}}}}\n"
             f"  out: {{type: \"null\", from: {{node: src, edge: {{durable: false}}}}}}\n")
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "linked.yaml").write_text(graph)
    seen: dict[str, object] = {}

    async def scenario(s, stub, channel, plane):  # type: ignore[no-untyped-def]
        for _ in range(500):
            answer = await stub.GetGraph(pb.GetGraphRequest(graph="linked"))
            if {n.name: n for n in answer.nodes}["src"].reconnects >= 2:
                break
            await asyncio.sleep(0.01)
        seen["graph"] = answer

    control(tmp_path, scenario)
    answer = seen["graph"]
    as_json = MessageToDict(answer, preserving_proto_field_name=True)
    nodes = {n["name"]: n for n in as_json["nodes"]}
    assert nodes["src"]["connection"] == "reconnecting" and int(nodes["src"]["reconnects"]) >= 2
    assert nodes["src"]["last_error"] == "ConnectionError: redis://:****@localhost:6379/0 closed the connection"
    assert "connection" not in nodes["out"]
    text = "\n".join(graph_detail(answer))
    assert "CONNECTION" in text and "reconnecting" in text and PASSWORD not in text
    connection_rows = text.split("CONNECTION", 1)[1].split("\n\n", 1)[0]
    assert "src" in connection_rows and "out " not in connection_rows
    frame = graph_dict(answer, None, None)
    assert "connections: src reconnecting" in "\n".join(text_frame([frame], "name"))
    assert "connection" not in {n["name"]: n for n in frame["nodes"]}["out"]


def test_ctl_status_of_a_graph_without_connectors_has_no_connection_table():
    answer = pb.Graph(summary=pb.GraphSummary(name="g", file="g.yaml", state="running"),
                      nodes=[pb.NodeState(name="n", type="map", state="running")])
    assert "CONNECTION" not in "\n".join(graph_detail(answer))


# -- HR071: a source that acknowledges feeds a memory edge ----------------------------------

def _problems(text: str) -> list[tuple[str, str, int, int, str]]:
    result = load_text("g.yaml", text, registry_with_test_types())
    return [(p.code, p.severity, p.line, p.column, p.message) for p in result.problems]


def test_validate_warns_when_an_acknowledging_source_feeds_a_memory_edge():
    text = ("version: 2\nnodes:\n"
            "  orders:\n    type: test.linked\n    with: {url: \"redis://localhost\"}\n"
            "  out:\n    type: test.record\n    from: orders\n")
    assert _problems(text) == [(
        "HR071", "warning", 8, 11,
        "node 'orders' (test.linked) acknowledges messages before they are safe: a crash loses what is in "
        "memory (at-most-once); set `edge: {durable: true}` on its output for at-least-once")]


def test_a_durable_output_edge_or_durable_defaults_silence_the_warning():
    own = ("version: 2\nnodes:\n  orders: {type: test.linked, with: {url: \"redis://localhost\"}}\n"
           "  out: {type: test.record, from: {node: orders, edge: {durable: true}}}\n")
    defaults = ("version: 2\ndefaults: {edge: {durable: true}}\n"
                "nodes:\n  orders: {type: test.linked, with: {url: \"redis://localhost\"}}\n"
                "  out: {type: test.record, from: orders}\n")
    assert _problems(own) == [] and _problems(defaults) == []


def test_each_memory_edge_of_the_source_is_named_and_other_sources_never_warn():
    text = ("version: 2\nnodes:\n  orders: {type: test.linked, with: {url: \"redis://localhost\"}}\n"
            "  kept: {type: test.record, from: {node: orders, edge: {durable: true}}}\n"
            "  fast: {type: test.record, from: orders}\n"
            "  made: {type: generate, with: {count: 3, fields: {n: i}}}\n"
            "  made_out: {type: test.record, from: made}\n")
    found = _problems(text)
    assert [(code, line) for code, _, line, _, _ in found] == [("HR071", 5)]

