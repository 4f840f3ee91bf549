"""`http.listen` in front of a durable edge: a 202 means "committed", so it survives `kill -9`.

A real `engine serve` runs ingest (http.listen) -> [durable, capacity 8] -> forward
(http.post to a test server that holds its requests unanswered). The first request fills
the edge (its events are in flight at the stuck sink). The second is read by the source
but cannot be committed while the edge is full, so it gets no answer; once the sink's
request is answered there is room, the events are committed and only then answered 202.
The engine is killed at once, and after a restart the sink delivers them.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc

from adapters.control.v1 import control_pb2, control_pb2_grpc
from tests.conftest import ROOT
from tests.http_support import HoldServer, free_port, post
from tests.process_support import Lines, wait_for

GRAPH = """version: 2
name: ingest
nodes:
  ingest: {{type: http.listen, with: {{address: "127.0.0.1:{listen}", accept_timeout: 1s}}}}
  forward:
    type: http.post
    from: {{node: ingest, edge: {{durable: true, capacity: 8}}}}
    with: {{url: "http://127.0.0.1:{hold}/", timeout: 120s, retries: 0}}
"""


class Engine:
    def __init__(self, cwd: Path, control: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_CONTROL_ADDRESS=control,
                   HEADRACE_STATE_DIR=str(cwd / "state"))
        self.proc = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "serve", "graphs"], cwd=cwd,
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.err = Lines(self.proc.stderr)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL


class Request:
    """A POST sent on a raw socket, so the test can see whether it has been answered yet
    without waiting for the answer."""

    def __init__(self, port: int, events: list[dict[str, object]]) -> None:
        body = json.dumps(events).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))

    def answered(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def status(self) -> int:
        answer = b""
        while b"\r\n" not in answer and (chunk := self.sock.recv(65536)):
            answer += chunk
        self.sock.close()
        return int(answer.split(b" ", 2)[1])


def events_out(control: str, node: str) -> int:
    with grpc.insecure_channel(control) as channel:
        graph = control_pb2_grpc.ControlStub(channel).GetGraph(control_pb2.GetGraphRequest(graph="ingest"),
                                                               timeout=10)
    return next(n.events_out for n in graph.nodes if n.name == node)


def test_a_202_in_front_of_a_durable_edge_means_committed_and_survives_kill_9(tmp_path):
    listen = free_port()
    control = f"127.0.0.1:{free_port()}"
    url = f"http://127.0.0.1:{listen}/"
    first = [{"n": n} for n in range(8)]
    second = [{"n": n} for n in range(8, 13)]
    with HoldServer() as hold:
        (tmp_path / "graphs").mkdir()
        (tmp_path / "graphs" / "ingest.yaml").write_text(GRAPH.format(listen=listen, hold=hold.port))
        engine = Engine(tmp_path, control)
        try:
            wait_for(lambda: post(url, first)[0] == 202 or engine.proc.poll() is not None,
                     seen=lambda: engine.err.lines)
            wait_for(lambda: hold.requests == 1)  # the sink holds all 8: the edge is full
            assert hold.events() == first
            pending = Request(listen, second)
            # The source has read the second request: the full edge refused its events.
            wait_for(lambda: events_out(control, "ingest") == 13)
            assert post(url, [])[:2] == (202, {"accepted": 0})  # the listener answers others meanwhile
            assert events_out(control, "ingest") == 13
            # Read, longer than accept_timeout ago, but not committed: not answered yet.
            wait_for(lambda: post(url, [{"n": 99}])[0] == 503)  # the queue waits behind it
            assert not pending.answered()
            hold.release_one()  # the sink's request succeeds: room on the edge
            assert pending.status() == 202
            engine.kill()  # right after the 202
        finally:
            if engine.proc.poll() is None:
                engine.proc.kill()
        hold.answer_all()
        before = hold.requests
        engine = Engine(tmp_path, control)
        try:
            wait_for(lambda: {e["n"] for e in hold.events(before)} >= {e["n"] for e in second} or
                     engine.proc.poll() is not None, seen=lambda: engine.err.lines)
            assert engine.proc.poll() is None
        finally:
            engine.proc.send_signal(signal.SIGTERM)
            assert engine.proc.wait(timeout=30) == 0
    delivered = [e["n"] for e in hold.events()]
    assert 99 not in delivered  # refused with 503: never kept
    assert set(delivered) == set(range(13))
