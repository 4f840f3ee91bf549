"""`engine serve` killed with SIGKILL while durable graphs run, then started again.

A feeder appends `{"id": i}` lines to in.jsonl all along (also while the engine is down),
and two graphs tail it:

- `tail`: file.read (follow) -> [durable] -> map -> [durable] -> file.write. Its source
  saves its byte offset with each commit, so after each kill it resumes there: nothing is
  lost, and the repeats stay within a batch per durable edge per crash. Reading from the
  start again would repeat everything read before each kill, far beyond that.
- `once`: file.read (follow) -> map -> [durable] -> dedupe -> [durable] -> file.write. Its
  source feeds a memory edge, so it cannot resume: after each kill it reads the whole file
  again, and every event it had passed on comes again (duplicates produced upstream across
  a crash). `dedupe` remembers the keys it passed on, saved with each acknowledgement of
  its durable input, and drops them all: what is left is at most a batch of its own and a
  batch of the sink's, per crash.

Before each start, lines pile up; each kill comes once both outputs have grown by a seeded
number of new events in that run, within what they had to catch up on
(CRASH_TEST_SEED, printed).
"""

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import ROOT
from tests.crash_support import Output
from tests.http_support import free_port
from tests.process_support import Lines, wait_for

BATCH = 1024
KILLS = 3
RATE = 1500  # lines a second appended to the input
TAIL = """version: 2
name: tail
defaults:
  edge: {durable: true}
nodes:
  lines: {type: file.read, with: {path: in.jsonl, follow: true}}
  marked: {type: map, from: lines, with: {set: {graph: "'tail'"}}}
  out: {type: file.write, from: marked, with: {path: tail.jsonl, mode: append}}
"""
ONCE = """version: 2
name: once
nodes:
  lines: {type: file.read, with: {path: in.jsonl, follow: true}}
  marked: {type: map, from: lines, with: {set: {graph: "'once'"}}}
  unique:
    type: dedupe
    from: {node: marked, edge: {durable: true}}
    with: {key: id, window: 200000}
  out:
    type: file.write
    from: {node: unique, edge: {durable: true}}
    with: {path: once.jsonl, mode: append}
"""


class Feeder:
    """Appends RATE lines a second to in.jsonl, in small chunks, until stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        chunk = RATE // 20
        while not self.stopped.wait(0.05):
            lines = "".join(f'{{"id": {i}}}\n' for i in range(self.count, self.count + chunk))
            with self.path.open("a") as handle:
                handle.write(lines)
            self.count += chunk

    def stop(self) -> int:
        self.stopped.set()
        self.thread.join()
        return self.count


def serve(cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_STATE_DIR=str(cwd / "state"),
               HEADRACE_CONTROL_ADDRESS=f"127.0.0.1:{free_port()}")
    return subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "serve", "graphs"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_mid_stream(cwd: Path, outputs: list[Output], feeder: Feeder, chance: random.Random) -> list[int]:
    """Start `engine serve` once lines have piled up; SIGKILL it once each output has a
    seeded number of new events, a point within its catch-up. Returns each output's
    distinct events then."""
    before = [o.done() for o in outputs]
    wait_for(lambda: feeder.count >= max(before) + 4 * BATCH)
    wanted = chance.randint(2 * BATCH, feeder.count - max(before))
    proc = serve(cwd)
    err = Lines(proc.stderr)
    wait_for(lambda: all(o.done() >= b + wanted for o, b in zip(outputs, before)) or proc.poll() is not None,
             timeout=60, seen=lambda: (feeder.count, [o.done() for o in outputs], err.lines))
    assert proc.poll() is None, err.text()
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    killed_at = [o.done() for o in outputs]
    assert all(b < k for b, k in zip(before, killed_at))  # output of its own in this run
    return killed_at


def test_serve_killed_mid_stream_resumes_file_read_and_dedupe_drops_the_replays(tmp_path):
    seed = int(os.environ.get("CRASH_TEST_SEED", "11"))
    print(f"CRASH_TEST_SEED={seed}")
    chance = random.Random(seed)
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "tail.yaml").write_text(TAIL)
    (tmp_path / "graphs" / "once.yaml").write_text(ONCE)
    outputs = [Output(tmp_path / "tail.jsonl", "id"), Output(tmp_path / "once.jsonl", "id")]
    feeder = Feeder(tmp_path / "in.jsonl")
    killed_at: list[list[int]] = []
    try:
        for _ in range(KILLS):
            killed_at.append(kill_mid_stream(tmp_path, outputs, feeder, chance))
        wait_for(lambda: feeder.count > max(killed_at[-1]))
    finally:
        fed = feeder.stop()
    assert all(k < fed for kill in killed_at for k in kill)  # and more after it
    proc = serve(tmp_path)
    err = Lines(proc.stderr)
    try:
        wait_for(lambda: all(o.done() == fed for o in outputs) or proc.poll() is not None, timeout=90,
                 seen=lambda: (fed, [o.done() for o in outputs], err.lines))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err.text()
    tail, once = outputs
    print(f"{fed} events, killed at {killed_at}; duplicates: tail {tail.duplicates()}, once {once.duplicates()}")
    for output in outputs:
        output.done()
        assert output.seen == set(range(fed))  # nothing lost
        assert output.torn <= KILLS
    assert tail.duplicates() <= KILLS * 2 * BATCH  # two durable edges: a batch each per crash
    assert once.duplicates() <= KILLS * 2 * BATCH  # dedupe's own batch and the sink's, per crash
    assert {e["graph"] for e in tail.events} == {"tail"} and {e["graph"] for e in once.events} == {"once"}
