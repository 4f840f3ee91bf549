"""Durable edges across `kill -9`: real `engine run` processes killed mid-stream.

generate -> [lmdb] -> map -> [lmdb] -> file.write (append). Each run is killed only once it
has written some output of its own, at a seeded, varied amount of progress, and while it
still runs; then the same command runs again. At the end every generated event is in the
output at least once, in order per edge, and the duplicates a crash can cause stay within
one batch per edge. CRASH_TEST_RUNS sets the number of kills (16 by default),
CRASH_TEST_SEED the seed (printed, so a failure can be replayed).
"""

import itertools
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.crash_support import Output
from tests.process_support import wait_for

COUNT = 40_000
RATE = 20_000  # events a second: at least 2 s of generating in all, whatever the machine
BATCH = 1024
EDGES = 2
GRAPH = f"""version: 1
defaults:
  edge: {{storage: lmdb, capacity: 2048}}
nodes:
  events: {{type: generate, with: {{count: {COUNT}, rate: {RATE}, fields: {{n: i}}}}}}
  doubled: {{type: map, from: events, with: {{set: {{twice: n * 2}}}}}}
  out: {{type: file.write, from: doubled, with: {{path: out.jsonl, format: jsonl, mode: append}}}}
"""


def start(cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HEADRACE_STATE_DIR=str(cwd / "state"))
    return subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "run", "g.yaml"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after_progress(cwd: Path, output: Output, events: int) -> int:
    """Run until this run has written `events` new events, then SIGKILL it. The kill must
    land mid-stream: the run still going, with output of its own, not done. Returns the
    distinct events written when it died."""
    before = output.done()
    proc = start(cwd)
    wait_for(lambda: output.done() >= before + events or proc.poll() is not None, timeout=60)
    assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()[1]}"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = output.done()
    assert before < done < COUNT, (before, done)  # new output in this run, and more to come
    return done


def test_kill_9_mid_stream_loses_nothing_and_duplicates_at_most_a_batch(tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH)
    runs = int(os.environ.get("CRASH_TEST_RUNS", "16"))
    seed = int(os.environ.get("CRASH_TEST_SEED", "7"))
    print(f"CRASH_TEST_SEED={seed} CRASH_TEST_RUNS={runs}")
    chance = random.Random(seed)
    output = Output(tmp_path / "out.jsonl", "n")
    killed_at: list[int] = []  # distinct events written when each kill came
    for left in range(runs, 0, -1):
        # Anywhere from one new event to a share of what is left: the kills fall at varied
        # points of the stream, and some of it stays for the runs after.
        share = max(1, (COUNT - output.done()) // (left + 1))
        killed_at.append(kill_after_progress(tmp_path, output, chance.randint(1, share)))
    proc = start(tmp_path)  # then to the end
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert output.done() == COUNT and output.seen == set(range(COUNT))  # nothing lost
    assert output.rest == b""
    values = output.values
    assert all(event["twice"] == event["n"] * 2 for event in output.events)
    print(f"killed after {killed_at} of {COUNT} events; {len(values) - COUNT} duplicates")
    assert len(values) - COUNT <= runs * EDGES * BATCH  # duplicates: at most a batch per edge per crash
    assert output.torn <= runs
    for before, after in itertools.pairwise(values):  # in order, apart from a replay after a crash
        assert after == before + 1 or 0 <= before - after < EDGES * BATCH, (before, after)
