"""A second SIGINT/SIGTERM during a drain stops at once with exit 1: `engine run` and
`engine serve` in real processes.

The graph forwards what `http.listen` receives to an `http.post` whose server never
answers (a 120 s timeout, no retries), so the first signal starts a drain that cannot
finish: the listener answers 503 "stopping" and the process keeps waiting for the sink.
Only a second signal ends it, well before any timeout could.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.http_support import HoldServer, error_of, free_port, post
from tests.process_support import Lines, wait_for

GRAPH = """version: 2
name: forward
nodes:
  ingest: {{type: http.listen, with: {{address: "127.0.0.1:{listen}"}}}}
  forward:
    type: http.post
    from: ingest
    with: {{url: "http://127.0.0.1:{hold}/", timeout: 120s, retries: 0}}
"""


def start(tmp_path: Path, command: str, graph: str) -> subprocess.Popen[str]:
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "forward.yaml").write_text(graph)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_CONTROL_ADDRESS=f"127.0.0.1:{free_port()}",
               HEADRACE_DRAIN_TIMEOUT_S="300", HEADRACE_STATE_DIR=str(tmp_path / "state"))
    target = "graphs/forward.yaml" if command == "run" else "graphs"
    return subprocess.Popen([sys.executable, "-m", "adapters.cli.main", command, target], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("command", "first", "second"), [
    ("run", signal.SIGINT, signal.SIGINT),
    ("run", signal.SIGTERM, signal.SIGINT),
    ("serve", signal.SIGTERM, signal.SIGTERM),
    ("serve", signal.SIGINT, signal.SIGTERM),
])
def test_a_second_signal_during_a_drain_stops_at_once_with_exit_1(tmp_path, command, first, second):
    listen = free_port()
    with HoldServer() as hold:
        proc = start(tmp_path, command, GRAPH.format(listen=listen, hold=hold.port))
        err = Lines(proc.stderr)
        url = f"http://127.0.0.1:{listen}/"
        try:
            wait_for(lambda: post(url, [{"n": 1}])[0] == 202 or proc.poll() is not None, seen=lambda: err.lines)
            assert proc.poll() is None
            wait_for(lambda: hold.requests >= 1)  # the sink is stuck in its POST
            proc.send_signal(first)
            # The drain has begun: the listener refuses new events, and the process waits
            # for the sink, which cannot finish for 120 s.
            wait_for(lambda: error_of(post(url, [{"n": 2}])) == (503, "the graph is stopping"),
                     seen=lambda: err.lines)
            assert proc.poll() is None
            proc.send_signal(second)
            assert proc.wait(timeout=20) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = err.text()
    assert "engine: error: interrupted twice: stopped without draining" in text, text
