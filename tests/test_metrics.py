"""`/metrics`: the engine's own counters in Prometheus form, read at scrape time, behind the
control plane's token; a bad address stops start-up with one line."""

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.observe.endpoint import MetricsEndpoint
from adapters.observe.metrics import metrics_registry
from adapters.observe.snapshot import graph_view, serve_snapshot, stamped
from tests.process_support import engine, free_port, wait_for
from tests.runtime_support import run_graph
from tests.serve_support import Serving, ticking_graph

GRAPH = """
    version: 2
    name: shop
    nodes:
      src: {type: generate, with: {count: 500, fields: {n: i, amount: "'x' if i % 50 == 0 else i"}}}
      priced: {type: map, from: src, on_error: dead_letter, with: {set: {cents: "int(amount) * 100"}}}
      big: {type: filter, from: priced, with: {where: "cents > 1000"}}
      out: {type: test.record, from: big}
      dead: {type: test.record, from: priced.errors}
    """


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_a_scrape_after_the_run_equals_the_stats():
    runtime, ok = run_graph(GRAPH)
    assert ok
    stats = runtime.stats()
    take = lambda: stamped([graph_view("shop", "shop.yaml", "finished", runtime)])  # noqa: E731
    found = samples(generate_latest(metrics_registry(take)).decode())
    for name, node in stats["nodes"].items():
        assert value(found, "headrace_node_events_in_total", graph="shop", node=name) == node["in"]
        assert value(found, "headrace_node_errors_total", graph="shop", node=name) == node["errors"]
        assert value(found, "headrace_node_busy_seconds_total", graph="shop", node=name) == node["busy_s"]
        for port, count in node["ports"].items():
            assert value(found, "headrace_node_events_out_total", graph="shop", node=name, port=port) == count
    assert value(found, "headrace_node_events_out_total", graph="shop", node="priced", port="errors") == 10
    for edge_id, edge in stats["edges"].items():
        policy = runtime.edges[edge_id].policy
        for counter, metric in (("enqueued", "headrace_edge_enqueued_total"),
                                ("dropped", "headrace_edge_dropped_total"), ("depth", "headrace_edge_depth"),
                                ("capacity", "headrace_edge_capacity"), ("high_water", "headrace_edge_high_water"),
                                ("blocked_s", "headrace_edge_blocked_seconds_total")):
            assert value(found, metric, graph="shop", edge=edge_id, policy=policy) == edge[counter]
    assert value(found, "headrace_edge_info", graph="shop", edge="priced.errors->dead", from_node="priced",
                 from_port="errors", to_node="dead", policy="block", durable="false") == 1
    assert value(found, "headrace_graph_state", graph="shop", state="finished") == 1
    assert value(found, "headrace_graph_up", graph="shop") == 0
    assert any(name.startswith("process_") for name, _ in found)  # the client library's own


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serving_graphs_are_scraped_live_and_removed_graphs_disappear(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "a.yaml").write_text(ticking_graph(tmp_path / "a.jsonl", "a", name="alpha"))
    (graphs / "b.yaml").write_text(ticking_graph(tmp_path / "b.jsonl", "b", name="beta"))

    async def scenario() -> None:
        async with Serving(graphs) as s:
            endpoint = MetricsEndpoint("127.0.0.1:0", metrics_registry(lambda: serve_snapshot(s.host)))
            await endpoint.start()
            url = f"http://127.0.0.1:{endpoint.port}/metrics"
            try:
                first = samples((await asyncio.to_thread(get, url))[1])
                assert value(first, "headrace_graph_up", graph="alpha") == 1
                beta = s.host.graphs["b.yaml"]
                assert value(first, "headrace_graph_info", graph="beta", file="b.yaml", plan_hash=beta.plan_hash,
                             format_version=str(beta.plan.format_version)) == 1
                ticks = value(first, "headrace_node_events_out_total", graph="alpha", node="ticks", port="out")
                await asyncio.sleep(0.3)
                later = samples((await asyncio.to_thread(get, url))[1])
                assert value(later, "headrace_node_events_out_total", graph="alpha", node="ticks", port="out") > ticks
                assert 0 <= value(later, "headrace_node_utilization", graph="alpha", node="ticks") <= 1
                (graphs / "b.yaml").unlink()
                # The removal is counted once the graph has stopped, after it left host.graphs.
                await s.until(lambda: ("beta", "removed") in s.host.reload_counts, what="b removed")
                gone = samples((await asyncio.to_thread(get, url))[1])
                assert not any(dict(labels).get("graph") == "beta" for name, labels in gone
                               if name.startswith("headrace_node") or name.startswith("headrace_edge"))
                assert value(gone, "headrace_reloads_total", graph="beta", result="removed") == 1
            finally:
                await endpoint.stop()

    asyncio.run(scenario())


@pytest.fixture
def served(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "a.yaml").write_text(ticking_graph(tmp_path / "a.jsonl", "a", name="alpha"))
    port = free_port()
    env = {"HEADRACE_METRICS_ADDRESS": f"127.0.0.1:{port}", "HEADRACE_CONTROL_ADDRESS": "127.0.0.1:0",
           "HEADRACE_CONTROL_TOKEN": "s3cret", "HEADRACE_STATE_DIR": str(tmp_path / "state"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return tmp_path, port, env


def test_engine_serve_needs_the_control_token_unless_metrics_are_public(served):
    tmp_path, port, env = served
    url = f"http://127.0.0.1:{port}/metrics"
    for public, expect_without in (("false", 401), ("true", 200)):
        proc = engine("serve", "graphs", env={**env, "HEADRACE_METRICS_PUBLIC": public}, cwd=tmp_path)
        try:
            wait_for(lambda: 'graph="alpha"' in _body(url, "s3cret"), timeout=30)  # the graph is loaded
            status, body = get(url)
            assert status == expect_without, body
            status, body = get(url, "s3cret")
            assert status == 200 and 'headrace_graph_up{graph="alpha"} 1.0' in body
            assert get(url, "wrong")[0] == (200 if public == "true" else 401)
            assert get(f"http://127.0.0.1:{port}/other")[0] == 404
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _body(url: str, token: str) -> str:
    try:
        return get(url, token)[1]
    except OSError:  # not listening yet
        return ""


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("address", "extra", "message"), [
    ("0.0.0.0:{port}", {"HEADRACE_CONTROL_TOKEN": ""}, "refusing to serve metrics on 0.0.0.0"),
    ("127.0.0.1:{busy}", {}, "cannot serve metrics on 127.0.0.1"),
    ("nonsense", {}, "HEADRACE_METRICS_ADDRESS: must be HOST:PORT"),
])
def test_a_bad_metrics_address_stops_start_up_with_one_line(served, address, extra, message):
    tmp_path, port, env = served
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {**env, **extra, "HEADRACE_METRICS_ADDRESS": address.format(port=port, busy=busy.getsockname()[1])}
        env = {k: v for k, v in env.items() if v != ""}
        if "HEADRACE_CONTROL_TOKEN" in extra:
            env.pop("HEADRACE_CONTROL_TOKEN", None)
        proc = engine("serve", "graphs", env=env, cwd=tmp_path)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("engine: error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not (tmp_path / "a.jsonl").exists()  # nothing else started


def test_engine_run_serves_metrics_while_the_graph_runs_and_its_last_scrape_equals_the_stats_file(served):
    tmp_path, port, env = served
    graph = tmp_path / "slow.yaml"
    graph.write_text("version: 2\nname: slow\nnodes:\n"
                     "  ticks: {type: generate, with: {count: 60, rate: 20, fields: {n: i}}}\n"
                     "  odd: {type: filter, from: ticks, with: {where: n % 2 == 1}}\n"
                     "  out: {type: \"null\", from: odd}\n")
    url = f"http://127.0.0.1:{port}/metrics"
    proc = engine("run", str(graph), "--metrics-address", f"127.0.0.1:{port}", "--stats-file", "stats.json",
                  env={**env, "HEADRACE_METRICS_PUBLIC": "true"}, cwd=tmp_path)
    scrapes: list[str] = []
    try:
        wait_for(lambda: _answers(url), timeout=30)
        while True:  # as a scraper would: until the endpoint goes away with the process
            try:
                status, body = get(url)
            except OSError:
                break
            assert status == 200
            scrapes.append(body)
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert 'headrace_graph_up{graph="slow"} 1.0' in scrapes[0]
    last = samples(scrapes[-1])
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert value(last, "headrace_graph_state", graph="slow", state="finished") == 1
    for node, counts in stats["nodes"].items():
        assert value(last, "headrace_node_events_in_total", graph="slow", node=node) == counts["in"]
        assert value(last, "headrace_node_errors_total", graph="slow", node=node) == counts["errors"]
    assert stats["nodes"]["out"]["in"] == 30
    for edge, counts in stats["edges"].items():
        labels = {"graph": "slow", "edge": edge, "policy": "block"}
        assert value(last, "headrace_edge_enqueued_total", **labels) == counts["enqueued"]
        assert value(last, "headrace_edge_high_water", **labels) == counts["high_water"]
    bad = engine("run", str(graph), "--metrics-address", "nowhere", env=env, cwd=tmp_path)
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "engine: error: metrics address 'nowhere' is not HOST:PORT" in err


def test_durable_edges_report_their_bytes_and_commits(tmp_path):
    from adapters.storage.durable import durable_factory
    from tests.runtime_support import build
    runtime = build("""
        version: 2
        name: kept
        nodes:
          src: {type: generate, with: {count: 300, fields: {n: i, text: "'x' * 100"}}}
          out: {type: test.record, from: {node: src, edge: {durable: true}}}
        """, durable=durable_factory(tmp_path / "state", 64))
    assert asyncio.run(runtime.run())
    edge = runtime.stats()["edges"]["src->out"]
    assert edge["durable_commits"] >= 2 and edge["durable_bytes"] == 0  # every event handed on and erased
    found = samples(generate_latest(metrics_registry(
        lambda: stamped([graph_view("kept", "kept.yaml", "finished", runtime)]))).decode())
    assert value(found, "headrace_durable_commits_total", graph="kept", edge="src->out") == edge["durable_commits"]
    assert value(found, "headrace_durable_bytes", graph="kept", edge="src->out") == 0
    held = runtime.durable(runtime.plan, runtime.edges["src->out"].plan)  # the same table, opened again
    held.offer([{"n": i, "text": "x" * 100} for i in range(50)])
    assert held.storage_counters()["durable_bytes"] > 0 and held.storage_counters()["durable_commits"] == 1


def test_across_a_partial_reload_kept_nodes_keep_their_counters_and_replaced_ones_start_again(tmp_path):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "a.yaml").write_text(ticking_graph(tmp_path / "a.jsonl", "a", name="alpha"))

    async def scenario() -> None:
        async with Serving(graphs) as s:
            registry = metrics_registry(lambda: serve_snapshot(s.host))  # scraped on this loop, as served

            def scrape() -> dict:
                return samples(generate_latest(registry).decode())
            await s.until(lambda: s.running("a.yaml").runtime.stats()["nodes"]["out"]["in"] > 50, what="ticks")
            before = scrape()
            ticks = value(before, "headrace_node_events_out_total", graph="alpha", node="ticks", port="out")
            written = value(before, "headrace_node_events_in_total", graph="alpha", node="out")
            # Only the sink changes (another file): the generator keeps running, with its counters.
            (graphs / "a.yaml").write_text(ticking_graph(tmp_path / "b.jsonl", "a", name="alpha"))
            await s.until(lambda: str(tmp_path / "b.jsonl") in s.running("a.yaml").plan.node("out").params_json,
                          what="the update")
            after = scrape()
            assert value(after, "headrace_node_events_out_total", graph="alpha", node="ticks", port="out") >= ticks
            assert value(after, "headrace_node_events_in_total", graph="alpha", node="out") < written

    asyncio.run(scenario())


@pytest.mark.parametrize("linger", ["-1", "soon", "inf", "nan"])
def test_metrics_linger_is_a_number_of_seconds(cli, linger):
    code, out, err = cli("run", "graphs/quickstart.yaml", "--metrics-address", "127.0.0.1:0",
                         "--metrics-linger", linger)
    assert (code, out) == (2, "")
    assert f"argument --metrics-linger: must be a number of seconds, 0 or more (got '{linger}')" in err
