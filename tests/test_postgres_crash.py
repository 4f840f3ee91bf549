"""PostgreSQL connectors across `kill -9` of `engine run`, with durable edges (real server).

- generate -> [durable] -> postgres.write (upsert): killed mid-stream, run again to the end;
  the table then holds exactly the generated rows.
- postgres.read -> [durable] -> file.write (append), while a feeder inserts rows: killed
  mid-stream twice, run again; every row arrives at least once, and the repeats stay within
  a batch per crash: the reader resumed from its saved cursor, not from the start.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.crash_support import Output
from tests.process_support import Lines, wait_for

COUNT = 20_000
READ_BATCH = 100
STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_leftover_engine() -> Iterator[None]:
    """A failed wait must not leave an `engine run` behind (it would poll the server forever)."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def start(cwd: Path) -> tuple[subprocess.Popen[str], Lines]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_STATE_DIR=str(cwd / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "run", "g.yaml"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    STARTED.append(proc)
    return proc, Lines(proc.stderr)


def kill(proc: subprocess.Popen[str], err: Lines) -> None:
    assert proc.poll() is None, err.text()  # still running: the kill lands mid-stream
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def count_rows(server, table: str) -> int:
    with server.connect() as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_kill_9_of_a_durable_upsert_graph_leaves_exactly_the_input_rows(postgres_server, tmp_path):
    with postgres_server.connect() as conn:
        conn.execute("CREATE TABLE events (id int PRIMARY KEY, twice int NOT NULL)")
    (tmp_path / "g.yaml").write_text(f"""version: 2
defaults:
  edge: {{durable: true, capacity: 1024}}
nodes:
  src: {{type: generate, with: {{count: {COUNT}, rate: 5000, fields: {{id: i, twice: i * 2}}}}}}
  db: {{type: postgres.write, from: src, with: {{dsn: "{postgres_server.dsn}", table: events, mode: upsert,
        key: id, batch_size: 250}}}}
""")
    proc, err = start(tmp_path)
    wait_for(lambda: count_rows(postgres_server, "events") >= 3000 or proc.poll() is not None, timeout=60)
    kill(proc, err)
    killed_at = count_rows(postgres_server, "events")
    assert 0 < killed_at < COUNT
    proc, err = start(tmp_path)
    assert proc.wait(timeout=120) == 0, err.text()
    with postgres_server.connect() as conn:
        assert conn.execute("SELECT count(*), min(id), max(id), bool_and(twice = id * 2) FROM events").fetchone() == (
            COUNT, 0, COUNT - 1, True)


class Feeder:
    """Inserts rows 1, 2, 3, ... into `source`, 200 every 20 ms, until stopped."""

    def __init__(self, server) -> None:
        self.server = server
        self.count = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        with self.server.connect() as conn:
            while not self.stopped.wait(0.02):
                conn.execute("INSERT INTO source SELECT i, 'row ' || i FROM generate_series(%s::int, %s::int) i",
                             (self.count + 1, self.count + 200))
                self.count += 200

    def stop(self) -> int:
        self.stopped.set()
        self.thread.join()
        return self.count


def test_kill_9_of_a_durable_reader_resumes_from_its_cursor(postgres_server, tmp_path):
    with postgres_server.connect() as conn:
        conn.execute("CREATE TABLE source (id int PRIMARY KEY, note text)")
    (tmp_path / "g.yaml").write_text(f"""version: 2
defaults:
  edge: {{durable: true, capacity: 512}}
nodes:
  src:
    type: postgres.read
    with: {{dsn: "{postgres_server.dsn}", query: "SELECT * FROM source WHERE id > %(cursor)s ORDER BY id",
           cursor: {{field: id, start: 0}}, batch_size: {READ_BATCH}, poll_interval: 10ms}}
  out: {{type: file.write, from: src, with: {{path: out.jsonl, mode: append}}}}
""")
    output = Output(tmp_path / "out.jsonl", "id")
    feeder = Feeder(postgres_server)
    kills = 2
    try:
        for _ in range(kills):
            before = output.done()
            proc, err = start(tmp_path)
            wait_for(lambda b=before, p=proc: output.done() >= b + 1500 or p.poll() is not None, timeout=60,
                     seen=lambda e=err: e.lines)
            kill(proc, err)
        time.sleep(0.2)
    finally:
        fed = feeder.stop()
    proc, err = start(tmp_path)
    try:
        wait_for(lambda: output.done() >= fed or proc.poll() is not None, timeout=60,
                 seen=lambda: (fed, output.done(), err.lines))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err.text()
    assert output.seen == set(range(1, fed + 1))  # every row at least once
    assert all(e["note"] == f"row {e['id']}" for e in output.events)
    repeats = len(output.values) - len(output.seen)
    # Only what was read but not yet committed (or committed but not yet written) comes
    # again: the edge and a batch per crash, not everything before each kill.
    assert repeats <= kills * (512 + READ_BATCH), repeats
