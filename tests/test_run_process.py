"""`engine run` in a real process: signals, standard input, following a growing file."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT
from tests.process_support import wait_for


def start(tmp_path: Path, graph: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    (tmp_path / "g.yaml").write_text(textwrap.dedent(graph))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "adapters.cli.main", "run", "g.yaml", *args],
        cwd=tmp_path, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_sigterm_drains_block_edges_and_exits_0(tmp_path):
    proc = start(tmp_path, """
        version: 1
        defaults: {edge: {capacity: 64, policy: block}}
        nodes:
          gen: {type: generate, with: {fields: {n: i}}}
          double: {type: map, from: gen, with: {set: {twice: n * 2}}}
          out: {type: file.write, from: double, with: {path: out.jsonl}}
        """, "--stats-file", "stats.json")
    wait_for(lambda: len(lines(tmp_path / "out.jsonl")) > 2000)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    written = lines(tmp_path / "out.jsonl")
    assert [e["n"] for e in written] == list(range(len(written)))  # in order, no gap
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["nodes"]["gen"]["out"] == len(written) == stats["nodes"]["out"]["in"]
    assert all(edge["depth"] == 0 and edge["dropped"] == 0 for edge in stats["edges"].values())


def test_stdin_to_stdout(tmp_path):
    proc = start(tmp_path, """
        version: 1
        nodes:
          src: {type: stdin}
          big: {type: filter, from: src, with: {where: amount > 10}}
          out: {type: stdout, from: big, with: {format: csv}}
        """, stdin=subprocess.PIPE)
    out, err = proc.communicate('{"id": 1, "amount": 5}\n{"id": 2, "amount": 50}\n{"id": 3, "amount": 11.5}\n',
                                timeout=30)
    assert (proc.returncode, err) == (0, "")
    assert out == "id,amount\n2,50\n3,11.5\n"


def test_follow_reads_appended_lines_until_stopped(tmp_path):
    source = tmp_path / "in.log"
    source.write_text("first\n")
    proc = start(tmp_path, """
        version: 1
        nodes:
          tail: {type: file.read, with: {path: in.log, format: lines, follow: true}}
          out: {type: file.write, from: tail, with: {path: out.jsonl}}
        """)
    out = tmp_path / "out.jsonl"
    wait_for(lambda: len(lines(out)) == 1)
    with source.open("a") as handle:
        handle.write("second\nthi")  # one write: the reader sees both together
        handle.flush()
        # The reader hands on what it read when it reaches the end of the file, so "second"
        # comes out only after the reader has read "thi" too: a half-written line is not a
        # record yet (were it one, it would come out with "second").
        wait_for(lambda: len(lines(out)) >= 2)
        assert [e["line"] for e in lines(out)] == ["first", "second"]
        handle.write("rd\n")
    wait_for(lambda: len(lines(out)) == 3)
    source.write_text("after truncation\n")  # truncated and rewritten: start over
    wait_for(lambda: len(lines(out)) == 4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert [e["line"] for e in lines(out)] == ["first", "second", "third", "after truncation"]


def test_a_plain_graph_loads_none_of_the_service_libraries(tmp_path):
    """`engine run` of a graph without durable or HTTP nodes stays lean: start-up time and
    memory are what the peer benchmark measures."""
    (tmp_path / "g.yaml").write_text("version: 2\nnodes:\n  g: {type: generate, with: {count: 2, fields: {n: i}}}\n"
                                     "  o: {type: \"null\", from: g}\n")
    script = ("import sys\nfrom adapters.cli.main import run\nassert run(['run', 'g.yaml']) == 0\n"
              "print(sorted(m for m in ('pydantic', 'grpc', 'lmdb', 'aiohttp', 'watchfiles') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
