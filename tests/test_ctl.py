"""`engine ctl` against a fake control plane: a gRPC server in the test answering canned data.

The fake records what each call carried (requests, metadata), so the tests check both what
`engine ctl` prints and exits with, and what it sent.
"""

import calendar
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from adapters.control.v1 import control_pb2 as pb
from adapters.control.v1 import control_pb2_grpc
from tests.conftest import ROOT
from tests.tls_support import tls_files  # noqa: F401 (a fixture)

LOADED_AT = calendar.timegm((2026, 5, 1, 12, 0, 3))
HASH = "sha256:9d1c0e1b4a2f" + "0" * 52
OTHER_HASH = "sha256:0c77e1b2f3aa" + "1" * 52
PROBLEM = "orders_etl.yaml:21:11: HR032 unknown node 'cleand' in from"


def _result(file: str, graph: str, result: str, plan_hash: str = HASH,
            problems: tuple[str, ...] = ()) -> pb.ReloadResult:
    return pb.ReloadResult(file=file, graph=graph, result=result, plan_hash=plan_hash, problems=list(problems))


class FakeControl(control_pb2_grpc.ControlServicer):
    """Canned answers: graphs `alerts` (running) and `orders_etl` (its last version rejected)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: list[tuple[str, object, dict[str, str]]] = []
        self.token: str | None = None  # when set, calls without `Bearer <token>` are refused

    def _enter(self, method: str, request: object, context: grpc.ServicerContext) -> None:
        metadata = {item.key: item.value for item in context.invocation_metadata()}
        self.calls.append((method, request, metadata))
        if self.token is not None and metadata.get("authorization") != f"Bearer {self.token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated: send the control token")

    def _graph(self, name: str, context: grpc.ServicerContext) -> pb.GraphSummary:
        graphs = {g.name: g for g in SUMMARIES}
        if name not in graphs:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no graph '{name}' is running")
        return graphs[name]

    def ListGraphs(self, request, context):
        self._enter("ListGraphs", request, context)
        return pb.ListGraphsResponse(graphs=SUMMARIES)

    def GetGraph(self, request, context):
        self._enter("GetGraph", request, context)
        if request.graph == "slow":
            time.sleep(0.5)
        summary = self._graph(request.graph, context)
        if summary.name == "orders_etl":
            return pb.Graph(summary=summary, failure="node 'load' failed: no such file: data/orders.csv")
        nodes = [pb.NodeState(name="incidents", type="http.listen", state="running", events_in=0, events_out=1200),
                 pb.NodeState(name="by_severity", type="route", state="paused", inputs=["incidents->by_severity"],
                              events_in=1200, events_out=1190, errors=10, busy_seconds=0.25)]
        edges = [pb.EdgeState(id="incidents->by_severity", from_node="incidents", from_port="out",
                              to_node="by_severity", policy="block", capacity=1024, depth=12, enqueued=1212,
                              dropped=0, high_water=300, blocked_seconds=1.5)]
        return pb.Graph(summary=summary, nodes=nodes, edges=edges)

    def Pause(self, request, context):
        self._enter("Pause", request, context)
        self._graph(request.graph, context)
        return pb.PauseResponse(graph=request.graph, node=request.node, paused=True,
                                changed=request.node != "by_severity")

    def Resume(self, request, context):
        self._enter("Resume", request, context)
        self._graph(request.graph, context)
        return pb.PauseResponse(graph=request.graph, node=request.node, paused=False, changed=True)

    def Drain(self, request, context):
        self._enter("Drain", request, context)
        self._graph(request.graph, context)
        if request.graph == "orders_etl":
            return pb.DrainResponse(graph=request.graph, drained=False, remaining=120)
        return pb.DrainResponse(graph=request.graph, drained=True)

    def Reload(self, request, context):
        self._enter("Reload", request, context)
        return pb.ReloadResponse(results=[
            _result("alerts.yaml", "alerts", "unchanged"),
            _result("orders_etl.yaml", "orders_etl", "rejected", "", (PROBLEM,))])

    def Apply(self, request, context):
        self._enter("Apply", request, context)
        if "cleand" in request.document:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"{request.file} has 1 problem(s), nothing was changed:\n{PROBLEM}")
        if request.expected_plan_hash not in ("", HASH):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{request.file} runs plan {HASH}, not the expected {request.expected_plan_hash}")
        return pb.ApplyResponse(result=_result(request.file, "alerts", "updated"))

    def Remove(self, request, context):
        self._enter("Remove", request, context)
        self._graph(request.graph, context)
        return pb.RemoveResponse(result=_result("alerts.yaml", "alerts", "removed"))

    def Tap(self, request, context):
        """Events forever, whatever the limit: the client must stop by itself. With `every`,
        the edge `slow->reader` skips 7 events before its third, and `old->engine` answers as
        an engine from before `every` would (a sample, `every` unset)."""
        self._enter("Tap", request, context)
        self._graph(request.graph, context)
        every = request.every and request.edge != "old->engine"
        n = 0
        while context.is_active() and not (request.graph == "orders_etl" and n == 1):  # it failed
            missed = 7 if every and request.edge == "slow->reader" and n == 2 else 0
            n += missed
            yield pb.TapEvent(edge=request.edge, time=LOADED_AT + n, json=json.dumps({"n": n, "severity": "high"}),
                              missed=missed, every=every)
            n += 1
            if n > 100:
                time.sleep(0.01)

    def WatchEvents(self, request, context):
        self._enter("WatchEvents", request, context)
        yield pb.EngineEvent(time=LOADED_AT + 0.25, kind="reload", graph="alerts", file="alerts.yaml",
                             detail="alerts.yaml: updated", json='{"result":"updated"}')
        yield pb.EngineEvent(time=LOADED_AT + 1, kind="state", graph="alerts", file="alerts.yaml",
                             detail="alerts/by_severity: paused", json='{"paused":true}')
        while self.follow.is_set() and context.is_active():  # the Ctrl-C test: an endless stream
            time.sleep(0.02)

    follow = threading.Event()  # shared by every instance: the subprocess test sets it


SUMMARIES = [
    pb.GraphSummary(name="alerts", file="alerts.yaml", state="running", plan_hash=HASH, last_result="updated",
                    last_reload_at=LOADED_AT, loaded_at=LOADED_AT),
    pb.GraphSummary(name="orders_etl", file="orders_etl.yaml", state="failed", plan_hash=OTHER_HASH,
                    last_result="rejected", last_reload_at=LOADED_AT + 60, loaded_at=LOADED_AT - 3600,
                    problems=[PROBLEM]),
]


def _serve(port_spec: str, credentials: grpc.ServerCredentials | None = None):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    fake = FakeControl()
    control_pb2_grpc.add_ControlServicer_to_server(fake, server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_secure_port(port_spec, credentials) if credentials else server.add_insecure_port(port_spec)
    server.start()
    return server, fake, health_servicer, port


@pytest.fixture(scope="module")
def fake_server():
    server, fake, health_servicer, port = _serve("127.0.0.1:0")
    yield fake, health_servicer, f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture
def ctl(cli, fake_server, monkeypatch):
    """`engine ctl ARGS` against the fake; returns (exit, stdout, stderr); `ctl.fake` is the servicer."""
    fake, health_servicer, address = fake_server
    fake.reset()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    monkeypatch.delenv("HEADRACE_CONTROL_TOKEN", raising=False)
    monkeypatch.setenv("HEADRACE_CONTROL_ADDRESS", address)

    def invoke(*args: str) -> tuple[int, str, str]:
        return cli("ctl", *args)

    invoke.fake = fake
    invoke.health = health_servicer
    invoke.address = address
    return invoke


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_is_a_table_of_graphs(ctl):
    code, out, err = ctl("status")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "GRAPH       FILE             STATE    LAST RESULT  PLAN                 LOADED AT",
        "alerts      alerts.yaml      running  updated      sha256:9d1c0e1b4a2f  2026-05-01T12:00:03Z",
        "orders_etl  orders_etl.yaml  failed   rejected     sha256:0c77e1b2f3aa  2026-05-01T11:00:03Z",
    ]


def test_status_json_is_the_message_with_every_field(ctl):
    code, out, _ = ctl("status", "--json")
    assert code == 0
    graphs = json.loads(out)["graphs"]
    assert [g["name"] for g in graphs] == ["alerts", "orders_etl"]
    assert graphs[0] == {"name": "alerts", "file": "alerts.yaml", "state": "running", "plan_hash": HASH,
                         "last_result": "updated", "last_reload_at": LOADED_AT, "loaded_at": LOADED_AT,
                         "problems": [], "last_nodes": {"kept": [], "replaced": [], "added": [], "removed": [],
                                                        "whole_swap": ""}}


def test_status_of_one_graph_in_full(ctl):
    code, out, err = ctl("status", "alerts")
    assert (code, err) == (0, "")
    assert ctl.fake.calls[0][1].graph == "alerts"
    lines = out.splitlines()
    assert lines[:6] == [
        "graph 'alerts'",
        "  file:        alerts.yaml",
        "  state:       running",
        f"  plan:        {HASH}",
        "  loaded at:   2026-05-01T12:00:03Z",
        "  last result: updated at 2026-05-01T12:00:03Z",
    ]
    assert lines[7:] == [
        "NODE         TYPE         STATE      IN   OUT  ERRORS  BUSY S",
        "incidents    http.listen  running     0  1200       0   0.000",
        "by_severity  route        paused   1200  1190      10   0.250",
        "",
        "EDGE                    POLICY  DEPTH/CAP  ENQUEUED  DROPPED  COALESCED  HIGH WATER  BLOCKED S",
        "incidents->by_severity  block     12/1024      1212        0          0         300      1.500",
    ]


def test_status_of_a_failed_graph_shows_the_failure_and_the_rejected_problems(ctl):
    code, out, _ = ctl("status", "orders_etl")
    assert code == 0
    assert "failure:\n  node 'load' failed: no such file: data/orders.csv\n" in out
    assert f"problems of the rejected version:\n  {PROBLEM}\n" in out


def test_status_json_of_one_graph_has_numbers_for_counters(ctl):
    code, out, _ = ctl("--json", "status", "alerts")
    graph = json.loads(out)
    assert code == 0 and graph["edges"][0]["enqueued"] == 1212 and graph["nodes"][1]["errors"] == 10
    assert graph["failure"] == "" and graph["summary"]["name"] == "alerts"


def test_not_found_exits_1_with_the_servers_message(ctl):
    assert ctl("status", "nope") == (1, "", "engine: error: no graph 'nope' is running\n")


def test_unreachable_exits_2_and_says_where_it_looked(ctl):
    address = f"127.0.0.1:{_closed_port()}"
    code, out, err = ctl("status", "--address", address)
    assert (code, out) == (2, "")
    assert err.startswith(f"engine: error: cannot reach the control plane at {address}: ")
    assert err.endswith("(is engine serve running? see HEADRACE_CONTROL_ADDRESS)\n")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_server_that_never_answers_the_handshake_is_unreachable(ctl):
    with socket.socket() as silent:  # connections wait in the backlog, never spoken to
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code, out, err = ctl("status", "--address", address, "--timeout", "0.2")
    assert (code, out) == (2, "")
    assert err == (f"engine: error: cannot reach the control plane at {address}: no connection within 0.2 s "
                   "(is engine serve running? see HEADRACE_CONTROL_ADDRESS)\n")


def test_address_comes_from_the_environment_and_options_go_before_or_after_the_verb(ctl, monkeypatch):
    assert ctl("status")[0] == 0  # HEADRACE_CONTROL_ADDRESS, set by the fixture
    monkeypatch.setenv("HEADRACE_CONTROL_ADDRESS", f"127.0.0.1:{_closed_port()}")
    assert ctl("status")[0] == 2
    assert ctl("--address", ctl.address, "status")[0] == 0
    assert ctl("status", "--address", ctl.address)[0] == 0


def test_a_slow_answer_is_a_timeout_not_unreachable(ctl):
    code, _, err = ctl("--timeout", "0.1", "status", "slow")
    assert code == 1
    assert err == (f"engine: error: no answer from the control plane at {ctl.address} within 0.1 s; "
                   "try a longer --timeout\n")


def test_the_token_is_sent_as_bearer_metadata(ctl, monkeypatch):
    ctl("status", "--token", "s3cret")
    ctl("status")
    monkeypatch.setenv("HEADRACE_CONTROL_TOKEN", "from-env")
    ctl("status")
    sent = [metadata.get("authorization") for _, _, metadata in ctl.fake.calls]
    assert sent == ["Bearer s3cret", None, "Bearer from-env"]


def test_a_refused_token_exits_1_and_points_at_the_token(ctl):
    ctl.fake.token = "right"
    code, out, err = ctl("pause", "alerts", "--token", "wrong")
    assert (code, out) == (1, "")
    assert err == ("engine: error: unauthenticated: send the control token; "
                   "check --token / HEADRACE_CONTROL_TOKEN\n")
    assert ctl("pause", "alerts", "--token", "right")[0] == 0


def test_pause_and_resume_say_what_happened(ctl):
    assert ctl("pause", "alerts") == (0, "graph 'alerts': paused\n", "")
    assert ctl("pause", "alerts", "by_severity") == (0, "node 'alerts/by_severity': paused (already was)\n", "")
    assert ctl("resume", "alerts", "by_severity") == (0, "node 'alerts/by_severity': resumed\n", "")
    assert [(m, r.graph, r.node) for m, r, _ in ctl.fake.calls] == [
        ("Pause", "alerts", ""), ("Pause", "alerts", "by_severity"), ("Resume", "alerts", "by_severity")]
    code, out, _ = ctl("resume", "alerts", "--json")
    assert code == 0 and json.loads(out) == {"graph": "alerts", "node": "", "paused": False, "changed": True}


def test_drain_exits_1_when_events_remain(ctl):
    assert ctl("drain", "alerts") == (0, "graph 'alerts': drained\n", "")
    timed_out = "graph 'orders_etl': timed out, 120 events remain\n"
    assert ctl("drain", "orders_etl", "--timeout", "2.5") == (1, timed_out, "")
    assert [r.timeout_s for _, r, _ in ctl.fake.calls] == [0.0, 2.5]


def test_reload_prints_each_file_and_exits_1_on_a_rejected_one(ctl):
    code, out, _ = ctl("reload")
    assert code == 1
    assert out.splitlines() == [
        "alerts.yaml: unchanged (graph 'alerts', plan sha256:9d1c0e1b4a2f)",
        "orders_etl.yaml: rejected (graph 'orders_etl')",
        f"  {PROBLEM}",
    ]


def test_apply_sends_the_file_under_its_base_name(ctl, tmp_path):
    graph = tmp_path / "alerts.yaml"
    graph.write_text("version: 1\nnodes: {}\n")
    assert ctl("apply", str(graph)) == (0, "alerts.yaml: updated (graph 'alerts', plan sha256:9d1c0e1b4a2f)\n", "")
    assert ctl("apply", str(graph), "--as", "paging.yaml", "--expect", HASH)[0] == 0
    requests = [r for _, r, _ in ctl.fake.calls]
    assert [(r.file, r.document, r.expected_plan_hash) for r in requests] == [
        ("alerts.yaml", "version: 1\nnodes: {}\n", ""), ("paging.yaml", "version: 1\nnodes: {}\n", HASH)]


def test_apply_of_an_invalid_graph_prints_the_servers_problems(ctl, tmp_path):
    graph = tmp_path / "orders_etl.yaml"
    graph.write_text("version: 1\nnodes: {load: {from: cleand}}\n")
    assert ctl("apply", str(graph)) == (1, "", (
        "engine: error: orders_etl.yaml has 1 problem(s), nothing was changed:\n"
        f"{PROBLEM}\n"))


def test_apply_with_a_stale_hash_prints_the_servers_message(ctl, tmp_path):
    graph = tmp_path / "alerts.yaml"
    graph.write_text("version: 1\n")
    code, out, err = ctl("apply", str(graph), "--expect", OTHER_HASH)
    assert (code, out) == (1, "")
    assert err == f"engine: error: alerts.yaml runs plan {HASH}, not the expected {OTHER_HASH}\n"


def test_apply_of_a_missing_file_is_a_usage_error_and_sends_nothing(ctl, tmp_path):
    code, _, err = ctl("apply", str(tmp_path / "gone.yaml"))
    assert code == 2 and err == f"engine: error: cannot read {tmp_path / 'gone.yaml'}: No such file or directory\n"
    assert ctl.fake.calls == []


def test_remove(ctl):
    assert ctl("remove", "alerts") == (0, "alerts.yaml: removed (graph 'alerts', plan sha256:9d1c0e1b4a2f)\n", "")
    assert ctl("remove", "nope")[0] == 1


def test_tap_prints_each_event_and_stops_at_the_limit(ctl):
    code, out, err = ctl("tap", "alerts", "incidents->by_severity", "--limit", "3", "--rate", "50")
    assert (code, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [{"n": n, "severity": "high"} for n in range(3)]
    request = ctl.fake.calls[0][1]
    assert (request.graph, request.edge, request.limit, request.per_second) == (
        "alerts", "incidents->by_severity", 3, 50.0)


def test_tap_json_carries_the_edge_and_time(ctl):
    code, out, _ = ctl("tap", "alerts", "incidents->by_severity", "--limit", "1", "--json")
    assert code == 0
    event = {"n": 0, "severity": "high"}
    assert json.loads(out) == {"edge": "incidents->by_severity", "time": LOADED_AT, "json": event, "missed": 0,
                               "every": False}


def test_a_tap_the_server_ends_says_so(ctl):
    assert ctl("tap", "orders_etl", "raw->cleaned") == (0, '{"n": 0, "severity": "high"}\n', (
        "engine: info: the tap ended: graph 'orders_etl' stopped, or was replaced or removed\n"))


def test_tap_of_an_unknown_graph_exits_1(ctl):
    assert ctl("tap", "nope", "a->b") == (1, "", "engine: error: no graph 'nope' is running\n")


def test_tap_save_writes_every_event_as_json_lines(ctl, tmp_path):
    saved = tmp_path / "saved.jsonl"
    assert ctl("tap", "alerts", "incidents->by_severity", "--save", str(saved), "--limit", "3") == (
        0, "", f"saved 3 events to {saved}\n")
    assert [json.loads(line) for line in saved.read_text().splitlines()] == [
        {"n": n, "severity": "high"} for n in range(3)]
    request = ctl.fake.calls[0][1]
    assert (request.edge, request.limit, request.every, request.per_second) == (
        "incidents->by_severity", 3, True, 0.0)  # every event: no rate
    saved.write_text("an older file\n" * 10)
    assert ctl("--json", "tap", "alerts", "a->b", "--save", str(saved), "--limit", "1")[:2] == (0, "")
    assert saved.read_text() == '{"n": 0, "severity": "high"}\n'  # replaced; --json changes nothing in it


def test_tap_save_with_rate_is_a_usage_error(ctl, tmp_path):
    code, out, err = ctl("tap", "alerts", "a->b", "--save", str(tmp_path / "saved.jsonl"), "--rate", "5")
    assert (code, out) == (2, "")
    assert err.endswith("engine ctl tap: error: argument --rate: not allowed with argument --save\n")
    assert ctl.fake.calls == [] and not (tmp_path / "saved.jsonl").exists()


def test_tap_save_to_an_unwritable_file_is_one_error_line(ctl, tmp_path):
    missing = tmp_path / "no" / "such" / "saved.jsonl"
    assert ctl("tap", "alerts", "a->b", "--save", str(missing)) == (
        2, "", f"engine: error: cannot write {missing}: No such file or directory\n")
    assert ctl("tap", "alerts", "a->b", "--save", str(tmp_path)) == (
        2, "", f"engine: error: cannot write {tmp_path}: Is a directory\n")
    assert ctl.fake.calls == []  # checked before asking the engine


def test_a_refused_save_leaves_the_file_as_it_was(ctl, tmp_path):
    saved = tmp_path / "saved.jsonl"
    assert ctl("tap", "nope", "a->b", "--save", str(saved)) == (1, "", "engine: error: no graph 'nope' is running\n")
    assert not saved.exists()
    saved.write_text('{"kept": true}\n')
    assert ctl("tap", "nope", "a->b", "--save", str(saved))[0] == 1
    assert saved.read_text() == '{"kept": true}\n'


def test_a_save_that_missed_events_says_how_many_and_exits_1(ctl, tmp_path):
    saved = tmp_path / "saved.jsonl"
    assert ctl("tap", "alerts", "slow->reader", "--save", str(saved), "--limit", "4") == (1, "", (
        f"saved 4 events to {saved}\n"
        f"engine: warning: missed 7 events: this client fell behind and the engine's tap queue was full, so {saved} "
        "has gaps (with --limit 65536 or less none are missed)\n"))
    assert [json.loads(line)["n"] for line in saved.read_text().splitlines()] == [0, 1, 9, 10]


def test_a_save_from_an_engine_that_only_samples_is_refused(ctl, tmp_path):
    saved = tmp_path / "saved.jsonl"
    code, out, err = ctl("tap", "alerts", "old->engine", "--save", str(saved))
    assert (code, out) == (1, "")
    assert err == (f"engine: error: the engine at {ctl.address} sent a sample, not every event: it is older than "
                   "this engine ctl and cannot --save; upgrade it, or tap without --save\n")
    assert not saved.exists()


def test_events_one_line_each_or_json_lines(ctl):
    assert ctl("events") == (0, (
        "2026-05-01T12:00:03.250Z reload alerts alerts.yaml: updated\n"
        "2026-05-01T12:00:04.000Z state alerts alerts/by_severity: paused\n"),
        "engine: info: the engine ended the event stream\n")
    code, out, _ = ctl("events", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["json"] for r in records] == [{"result": "updated"}, {"paused": True}]
    assert records[0]["kind"] == "reload" and records[0]["file"] == "alerts.yaml"


def test_health_exits_0_only_when_serving_and_sends_no_token(ctl):
    assert ctl("health", "--token", "s3cret") == (0, "SERVING\n", "")
    ctl.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert ctl("health") == (1, "NOT_SERVING\n", "")
    assert ctl("health", "--json") == (1, '{"status": "NOT_SERVING"}\n', "")
    assert ctl("health", "--address", f"127.0.0.1:{_closed_port()}")[0] == 2
    assert ctl.fake.calls == []  # the health service is not the Control service


def test_usage_errors_exit_2(ctl):
    assert ctl("status", "--timeout", "0")[0] == 2
    assert ctl("tap", "alerts", "a->b", "--limit", "-1")[0] == 2
    code, _, err = ctl("status", "--cert", "client.pem")
    assert code == 2
    assert err == "engine: error: --cert and --key go together (the client certificate and its private key)\n"


def test_mutual_tls(cli, monkeypatch, tls_files):  # noqa: F811 (the fixture)
    monkeypatch.delenv("HEADRACE_CONTROL_TOKEN", raising=False)
    credentials = grpc.ssl_server_credentials(
        [(tls_files.server_key.read_bytes(), tls_files.server_cert.read_bytes())],
        root_certificates=tls_files.ca.read_bytes(), require_client_auth=True)
    server, _, _, port = _serve("127.0.0.1:0", credentials)
    try:
        address = f"127.0.0.1:{port}"
        tls = ["--address", address, "--ca", str(tls_files.ca)]
        mine = ["--cert", str(tls_files.client_cert), "--key", str(tls_files.client_key)]
        assert cli("ctl", *tls, *mine, "status")[0] == 0
        assert cli("ctl", "health", *tls, *mine) == (0, "SERVING\n", "")
        code, _, err = cli("ctl", *tls, "status")  # no client certificate: the handshake fails
        assert code == 2 and err.startswith(f"engine: error: cannot reach the control plane at {address}: ")
        assert err.endswith("(does the server use TLS with this CA and accept this certificate? "
                            "see --ca, --cert, --key)\n")
        code, _, err = cli("ctl", "--address", address, "status")  # plaintext to a TLS server
        assert code == 2 and err.endswith("(the server closed the connection: if it uses TLS, give --ca)\n")
        stranger = ["--cert", str(tls_files.stranger_cert), "--key", str(tls_files.stranger_key)]
        assert cli("ctl", *tls, *stranger, "status")[0] == 2  # a certificate the server's CA did not sign
    finally:
        server.stop(0)


def test_tls_files_are_checked_before_connecting(cli, tls_files):  # noqa: F811 (the fixture)
    address = f"127.0.0.1:{_closed_port()}"
    code, _, err = cli("ctl", "--address", address, "--ca", str(tls_files.client_key), "status")
    assert code == 2 and err == (f"engine: error: --ca {tls_files.client_key} is not a PEM CA certificate "
                                 "(no '-----BEGIN ...CERTIFICATE-----' block)\n")
    code, _, err = cli("ctl", "--address", address, "--ca", str(tls_files.ca), "--cert", str(tls_files.client_cert),
                       "--key", str(tls_files.stranger_key), "status")
    assert code == 2 and err == (f"engine: error: --key {tls_files.stranger_key} is not the key of "
                                 f"--cert {tls_files.client_cert}\n")


def test_ctrl_c_ends_a_stream_with_exit_0(fake_server):
    fake, _, address = fake_server
    fake.follow.set()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_CONTROL_")}
    process = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "ctl", "--address", address, "events"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().startswith("2026-05-01T12:00:03.250Z reload alerts")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        fake.follow.clear()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert err == ""


def test_ctrl_c_ends_a_save_with_whole_lines_and_a_summary(fake_server, tmp_path):
    _, _, address = fake_server
    saved = tmp_path / "saved.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_CONTROL_")}
    process = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "ctl", "--address", address, "tap",
                                "alerts", "a->b", "--save", str(saved)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (saved.exists() and saved.stat().st_size > 2000):  # past the fake's first 100, at once
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert (process.returncode, out) == (0, ""), err
    lines = saved.read_text().splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)
    assert [json.loads(line)["n"] for line in lines] == list(range(len(lines)))
    assert err == f"saved {len(lines)} events to {saved}\n"
