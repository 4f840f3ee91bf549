"""`engine serve graphs/` in a real process, on the shipped examples: the README's main job."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from loader.api import is_graph_file
from tests.conftest import ROOT
from tests.process_support import Lines


def serve(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    # http_bridge listens on a free port, so runs side by side never compete for 8080.
    environment = dict(os.environ, PYTHONPATH=str(ROOT), READINGS_PER_SECOND="200", LISTEN_ADDRESS="127.0.0.1:0",
                       **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "serve", *args], cwd=cwd,
                            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


# The graph files `engine serve graphs/` runs: those at the top of the directory.
SHIPPED = sorted(p.name for p in (ROOT / "graphs").iterdir() if is_graph_file(p.name))


def shipped_graphs(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "graphs", tmp_path / "graphs")
    return tmp_path


def test_serve_runs_the_shipped_graphs_and_drains_on_sigterm(tmp_path):
    cwd = shipped_graphs(tmp_path)
    proc = serve(cwd, "graphs/")
    out = Lines(proc.stderr)
    out.wait(lambda lines: sum(": added (graph" in line for line in lines) == len(SHIPPED))
    assert not any("rejected" in line for line in out.lines)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    clean = [json.loads(line) for line in (cwd / "out" / "orders_clean.jsonl").read_text().splitlines()]
    assert [e["id"] for e in clean] == ["1", "3", "5", "8"]


def test_serve_logs_json_and_reloads_a_changed_file(tmp_path):
    cwd = shipped_graphs(tmp_path)
    proc = serve(cwd, "graphs/", env={"HEADRACE_LOG_FORMAT": "json", "HEADRACE_WATCH_DEBOUNCE_MS": "50"})
    out = Lines(proc.stderr)

    def reloads(lines: list[str]) -> list[dict[str, object]]:
        return [r for r in (json.loads(line) for line in lines if line.startswith("{")) if "result" in r]

    out.wait(lambda lines: len(reloads(lines)) == len(SHIPPED))
    assert {r["file"] for r in reloads(out.lines)} == set(SHIPPED)
    assert {"quickstart.yaml", "orders_etl.yaml", "alerts.yaml", "redis_orders_forward.yaml"} <= set(SHIPPED)
    alerts = cwd / "graphs" / "alerts.yaml"
    alerts.write_text(alerts.read_text().replace("nodes:", "nodes:\n  bogus: {type: nope}", 1))
    out.wait(lambda lines: any(r["result"] == "rejected" for r in reloads(lines)))
    rejected = next(r for r in reloads(out.lines) if r["result"] == "rejected")
    assert rejected["file"] == "alerts.yaml" and "unknown node type 'nope'" in str(rejected["problems"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_serve_refuses_a_missing_directory_and_bad_settings(tmp_path):
    proc = serve(tmp_path, "nowhere/")
    assert proc.wait(timeout=20) == 2
    assert proc.stderr is not None and "nowhere/ is not a directory" in proc.stderr.read()
    proc = serve(tmp_path, str(tmp_path), env={"HEADRACE_DRAIN_TIMEOUT_S": "-1"})
    assert proc.wait(timeout=20) == 2
    assert proc.stderr is not None
    assert "engine: error: HEADRACE_DRAIN_TIMEOUT_S: must be a number above 0" in proc.stderr.read()
