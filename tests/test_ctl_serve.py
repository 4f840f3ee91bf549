"""An operator's session: `engine ctl` against a real `engine serve` process, with a token."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

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
        hash_now = json.loads(ctl("status", "orders", "--json").stdout)["summary"]["plan_hash"]
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
    methods = [json.loads(line)["method"] for line in Path(tmp_path / "audit.jsonl").read_text().splitlines()]
    assert methods == ["Pause", "Resume", "Apply", "Apply", "Drain"]  # refused applies too
