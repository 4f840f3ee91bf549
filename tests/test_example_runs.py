"""Every graph in graphs/ runs, and its output is what the graph says it computes."""

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from tests.conftest import ROOT
from tests.process_support import Lines
from tests.runtime_support import counted


def quickstart_expected(count: int) -> list[dict[str, object]]:
    """The quickstart, written by hand in plain Python."""
    totals: dict[int, dict[str, object]] = {}
    for i in range(count):
        user, amount, kind = i % 10, float(i % 97), "buy" if i % 3 else "sell"
        if kind != "buy":
            continue
        row = totals.setdefault(user, {"user": user, "total_cents": 0, "orders": 0})
        row["total_cents"] = int(str(row["total_cents"])) + int(amount * 100)
        row["orders"] = int(str(row["orders"])) + 1
    return list(totals.values())


def test_quickstart_yaml_and_toml_print_the_totals(cli):
    for path in ("graphs/quickstart.yaml", "graphs/toml/quickstart.toml"):
        code, out, err = cli("run", path)
        assert (code, err) == (0, "")
        assert [json.loads(line) for line in out.splitlines()] == quickstart_expected(10000)


def test_quickstart_runs_are_identical(cli, monkeypatch):
    monkeypatch.setenv("ORDERS", "30000")
    first = cli("run", "graphs/quickstart.yaml")
    second = cli("run", "graphs/quickstart.yaml")
    assert first == second and first[0] == 0


def test_orders_etl_cleans_rejects_and_reports(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_OUT", str(tmp_path / "clean.jsonl"))
    monkeypatch.setenv("ETL_REJECTS", str(tmp_path / "rejected.jsonl"))
    code, out, err = cli("run", "graphs/orders_etl.yaml", "--stats-file", str(tmp_path / "stats.json"))
    assert code == 0 and out == ""
    assert err == ("engine: warning: node 'raw' (file.read): line 8: expected 5 fields as in the header, "
                   "got 2; event dropped\n")
    clean = [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert clean == [
        {"id": "1", "user": "alice", "amount": 12.5, "country": "DE"},
        {"id": "3", "user": "carol", "amount": 7.25, "country": "UNKNOWN"},
        {"id": "5", "user": "dave", "amount": 19.99, "country": "US"},
        {"id": "8", "user": "grace", "amount": 42.0, "country": "FR"},
    ]
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [(r["node"], r["event"]["order_id"]) for r in rejected] == [("cleaned", "6")]
    assert "set.amount 'float(amount)'" in rejected[0]["error"]
    nodes = json.loads((tmp_path / "stats.json").read_text())["nodes"]
    assert counted(nodes["raw"], "in", "out", "errors") == {"in": 0, "out": 7, "errors": 1}
    # 6 cleaned + 1 dead letter
    assert counted(nodes["cleaned"], "in", "out", "errors", "ports") == {
        "in": 7, "out": 7, "errors": 1, "ports": {"out": 6, "errors": 1}}
    assert counted(nodes["valid"], "in", "out", "errors") == {"in": 6, "out": 4, "errors": 0}


def test_alerts_streams_until_stopped(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), READINGS_PER_SECOND="20000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli.main", "run", "graphs/alerts.yaml",
         "--stats-file", str(tmp_path / "stats.json")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out_lines, err_lines = Lines(proc.stdout), Lines(proc.stderr)
    try:
        # About one reading in six is critical: 200 of them means well over 1000 readings.
        out_lines.wait(lambda lines: sum('"celsius"' in line for line in lines) >= 200)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err_lines.text()
    finally:
        proc.kill()
    out = out_lines.text()
    events = [json.loads(line) for line in out.splitlines()]
    critical = [e for e in events if "celsius" in e]
    summaries = [e for e in events if "warnings" in e]
    assert critical and all(int(e["celsius"]) >= 100 for e in critical)
    assert summaries and all(80 <= int(e["hottest"]) < 100 for e in summaries)
    stats = json.loads((tmp_path / "stats.json").read_text())
    readings = stats["nodes"]["readings"]["out"]
    assert readings > 1000
    # Every warning reading is counted in exactly one summary once the stop flushed the windows.
    warnings_in = stats["nodes"]["warnings_per_minute"]["in"]
    assert sum(int(e["warnings"]) for e in summaries) == warnings_in


def test_tail_errors_follows_the_log(tmp_path):
    log = tmp_path / "app.log"
    log.write_text((ROOT / "graphs/data/app.log").read_text())
    env = dict(os.environ, PYTHONPATH=str(ROOT), APP_LOG=str(log))
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli.main", "run", "graphs/tail_errors.yaml"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out_lines, err_lines = Lines(proc.stdout), Lines(proc.stderr)
    try:
        out_lines.wait(lambda lines: len(lines) == 2)  # the errors already in the log
        with log.open("a") as handle:
            handle.write("2026-11-21T10:01:00Z ERROR disk almost full\n2026-11-21T10:01:01Z INFO ok\n")
        out_lines.wait(lambda lines: len(lines) == 3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, err_lines.text()
    finally:
        proc.kill()
    out = out_lines.text()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"time": "2026-11-21T10:00:05Z", "message": "cannot reach the payments API"},
        {"time": "2026-11-21T10:00:09Z", "message": "payments API timed out after 3 attempts"},
        {"time": "2026-11-21T10:01:00Z", "message": "disk almost full"},
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_http_bridge_forwards_errors_until_stopped(tmp_path):
    received: list[dict[str, object]] = []

    class Ingest(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.extend(json.loads(line) for line in body.decode().splitlines())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    listen = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), LISTEN_ADDRESS=f"127.0.0.1:{listen}",
               FORWARD_URL=f"http://127.0.0.1:{receiver.server_address[1]}/ingest")
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli.main", "run", "graphs/http_bridge.yaml",
         "--stats-file", str(tmp_path / "stats.json")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        body = (b'{"level": "error", "service": "API", "message": "boom"}\n'
                b'{"level": "info", "message": "fine"}\n{"level": "error", "message": "bust"}\n')
        request = urllib.request.Request(f"http://127.0.0.1:{listen}/events", data=body)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert (response.status, json.loads(response.read())) == (202, {"accepted": 3})
                break
            except urllib.error.URLError:  # not listening yet
                assert time.monotonic() < deadline and proc.poll() is None, "the graph never listened"
                time.sleep(0.05)
        while len(received) < 2:
            assert time.monotonic() < deadline, "nothing forwarded"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        receiver.shutdown()
    assert (proc.returncode, out, err) == (0, "", "")
    assert [(e["service"], e["message"]) for e in received] == [("api", "boom"), ("unknown", "bust")]
    assert all("level" not in e and str(e["forwarded_at"]).endswith("Z") for e in received)
    nodes = json.loads((tmp_path / "stats.json").read_text())["nodes"]
    assert nodes["ingest"]["out"] == 3 and nodes["forward"]["in"] == 2


def test_durable_orders_reads_once_and_resumes_instead_of_reading_again(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), ORDERS_CSV=str(ROOT / "graphs/data/orders.csv"),
               DURABLE_OUT=str(tmp_path / "out.jsonl"), HEADRACE_STATE_DIR=str(tmp_path / "state"))
    command = [sys.executable, "-m", "adapters.cli.main", "run", str(ROOT / "graphs/durable_orders.yaml")]
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["order_id"] for r in rows] == ["1", "2", "3", "4", "5", "8"]  # row 6: bad amount; row 7: malformed
    assert rows[0]["amount"] == 12.5
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""  # nothing read again, so no bad rows reported again
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == len(rows)  # resumed at the end
    assert (tmp_path / "state" / "edges").is_dir()
