"""Durable state encrypted at rest (`state_encryption_key_file`, docs/edges.md#encryption-at-rest):
what a user can check from outside: the bytes of the LMDB file, the output of a graph across
kill -9, and the one-line errors for a wrong, missing or unneeded key and for a tampered record."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from adapters.storage.crypt import codec_for
from adapters.storage.lmdb_edge import LmdbEdge
from adapters.storage.lmdb_store import DurableStorageError, LmdbStore
from adapters.storage.lmdb_table import database_name
from engine.plan import EdgePlan
from tests import test_durable_crash as crash
from tests.conftest import ROOT
from tests.crash_support import Output

PLANTED = "PLANTED-4f1c-credit-card-4111"
GRAPH = f"""version: 1
defaults:
  edge: {{storage: lmdb, capacity: 256}}
nodes:
  events: {{type: generate, with: {{count: 2000, fields: {{n: i, card: "'{PLANTED}'"}}}}}}
  tagged: {{type: map, from: events, with: {{set: {{twice: n * 2}}}}}}
  out: {{type: file.write, from: tagged, with: {{path: out.jsonl, format: jsonl, mode: append}}}}
"""


def make_key(path: Path) -> Path:
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return path


def engine(cwd: Path, *args: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(PYTHONPATH=str(ROOT), HEADRACE_STATE_DIR=str(cwd / "state"))
    if key is not None:
        env["HEADRACE_STATE_ENCRYPTION_KEY_FILE"] = str(key)
    return subprocess.run([sys.executable, "-m", "adapters.cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def edge_plan(edge_id: str = "a->b") -> EdgePlan:
    source, target = edge_id.split("->")
    return EdgePlan(edge_id, source, "out", target, 10_000, "block", durable=True)


def store_with(directory: Path, key: Path | None, edge_id: str = "a->b", count: int = 100) -> None:
    """Leave `count` undelivered events with the planted value, and a checkpoint, on disk."""
    store = LmdbStore(directory, codec=codec_for(key))
    edge = LmdbEdge(edge_plan(edge_id), store, "g")
    edge.stage_checkpoint("a", f"position-{PLANTED}")
    assert edge.offer([{"n": i, "card": PLANTED} for i in range(count)]) == []
    store.close()


def take_all(directory: Path, key: Path | None, edge_id: str = "a->b") -> tuple[list[dict[str, object]], str]:
    store = LmdbStore(directory, codec=codec_for(key))
    try:
        edge = LmdbEdge(edge_plan(edge_id), store, "g")
        return edge.take(10_000), edge.checkpoint("a")
    finally:
        store.close()


def test_a_graph_round_trips_and_the_file_holds_no_plaintext(tmp_path):
    key = make_key(tmp_path / "state.key")
    (tmp_path / "g.yaml").write_text(GRAPH)
    done = engine(tmp_path, "run", "g.yaml", key=key)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [e["n"] for e in lines] == list(range(2000))
    assert all(e["card"] == PLANTED and e["twice"] == e["n"] * 2 for e in lines)
    data = (tmp_path / "state" / "edges" / "data.mdb").read_bytes()
    assert PLANTED.encode() not in data and b"card" not in data  # not even in freed pages
    again = engine(tmp_path, "run", "g.yaml", key=key)  # the same key opens it again
    assert again.returncode == 0, again.stderr


def test_stored_events_and_checkpoints_are_sealed(tmp_path):
    key = make_key(tmp_path / "k")
    store_with(tmp_path / "edges", key)
    data = (tmp_path / "edges" / "data.mdb").read_bytes()
    assert PLANTED.encode() not in data and b"position-" not in data
    events, position = take_all(tmp_path / "edges", key)
    assert events == [{"n": i, "card": PLANTED} for i in range(100)]
    assert position == f"position-{PLANTED}"
    plain = tmp_path / "plain"
    store_with(plain, None)  # the control: without a key the value is there to find
    assert PLANTED.encode() in (plain / "data.mdb").read_bytes()


def flip_a_byte(directory: Path, name: bytes) -> None:
    env = lmdb.open(str(directory), max_dbs=16)
    db = env.open_db(name)
    with env.begin(write=True, db=db) as txn:
        key, value = next(iter(txn.cursor()))
        changed = bytearray(value)
        changed[20] ^= 0x01
        txn.put(key, bytes(changed))
    env.close()


def test_a_tampered_record_is_detected(tmp_path):
    key = make_key(tmp_path / "k")
    store_with(tmp_path / "edges", key)
    flip_a_byte(tmp_path / "edges", database_name("g", "a->b"))
    with pytest.raises(DurableStorageError) as caught:
        take_all(tmp_path / "edges", key)
    message = str(caught.value)
    assert message == (f"durable edge storage {tmp_path / 'edges'}: a value stored in 'g/a->b' fails its integrity "
                       "check (changed on disk, or not sealed with this key for this place): restore the state "
                       "directory from a backup, or move it aside")


def test_a_tampered_checkpoint_is_detected(tmp_path):
    key = make_key(tmp_path / "k")
    store_with(tmp_path / "edges", key)
    flip_a_byte(tmp_path / "edges", b"#checkpoints")
    with pytest.raises(DurableStorageError, match="a value stored in '#checkpoints' fails its integrity check"):
        take_all(tmp_path / "edges", key)


def test_records_cannot_be_moved_between_edges(tmp_path):
    key = make_key(tmp_path / "k")
    store_with(tmp_path / "edges", key, "a->b", 1)
    store_with(tmp_path / "edges", key, "a->c", 1)
    env = lmdb.open(str(tmp_path / "edges"), max_dbs=16)
    ab, ac = env.open_db(database_name("g", "a->b")), env.open_db(database_name("g", "a->c"))
    with env.begin(write=True) as txn:
        k, v = next(iter(txn.cursor(ab)))
        txn.put(bytes(k), bytes(v), db=ac)  # a->b's event where a->c's was
    env.close()
    with pytest.raises(DurableStorageError, match="a value stored in 'g/a->c' fails its integrity check"):
        take_all(tmp_path / "edges", key, "a->c")


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_wrong_missing_and_unneeded_keys_stop_start_up(tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH)
    key, other = make_key(tmp_path / "state.key"), make_key(tmp_path / "other.key")
    store_with(tmp_path / "state" / "edges", key)
    where = f"durable edge storage {tmp_path / 'state' / 'edges'}"
    assert one_error_line(engine(tmp_path, "run", "g.yaml", key=other)) == (
        f"engine: error: {where} is encrypted with another key than state_encryption_key_file {other}: set the key "
        "it was encrypted with (`engine state rotate-key` changes it)")
    assert one_error_line(engine(tmp_path, "run", "g.yaml")) == (
        f"engine: error: {where} is encrypted and no key is set: set state_encryption_key_file "
        "(HEADRACE_STATE_ENCRYPTION_KEY_FILE) to the file of its key")
    (tmp_path / "graphs").mkdir()
    assert one_error_line(engine(tmp_path, "serve", "graphs", key=other)).startswith(
        f"engine: error: {where} is encrypted with another key")
    assert not (tmp_path / "out.jsonl").exists()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "g.yaml").write_text(GRAPH)
    store_with(plain / "state" / "edges", None)
    assert one_error_line(engine(plain, "run", "g.yaml", key=key)) == (
        f"engine: error: durable edge storage {plain / 'state' / 'edges'} holds unencrypted events or checkpoints "
        f"and state_encryption_key_file {key} is set: encrypt them with `engine state rotate-key --old none --new "
        f"{key}` while nothing runs, or unset state_encryption_key_file")


@pytest.mark.parametrize(("content", "problem"), [
    ("not base64!", "not base64; the file must hold a 256-bit key in base64 (44 characters)"),
    (base64.b64encode(b"k" * 16).decode(), "holds a 128-bit key; the file must hold a 256-bit key in base64"),
])
def test_a_bad_key_file_is_one_line_naming_it(tmp_path, content, problem):
    (tmp_path / "g.yaml").write_text(GRAPH)
    (tmp_path / "bad.key").write_text(content)
    line = one_error_line(engine(tmp_path, "run", "g.yaml", key=tmp_path / "bad.key"))
    assert line.startswith(f"engine: error: state_encryption_key_file {tmp_path / 'bad.key'}: {problem}")
    missing = one_error_line(engine(tmp_path, "run", "g.yaml", key=tmp_path / "nope.key"))
    assert missing == (f"engine: error: state_encryption_key_file {tmp_path / 'nope.key'}: no such file; fix the "
                       "path, or make a key: `openssl rand -base64 32 > FILE`")


def test_rotate_key_then_only_the_new_key_opens_it(tmp_path):
    old, new = make_key(tmp_path / "old.key"), make_key(tmp_path / "new.key")
    edges = tmp_path / "state" / "edges"
    store_with(edges, old)
    done = engine(tmp_path, "state", "rotate-key", "--old", str(old), "--new", str(new))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{tmp_path / 'state'}: 101 stored values encrypted with {new}\n"  # 100 events, 1 checkpoint
    events, position = take_all(edges, new)
    assert len(events) == 100 and position == f"position-{PLANTED}"
    with pytest.raises(DurableStorageError, match="is encrypted with another key than"):
        take_all(edges, old)
    wrong = engine(tmp_path, "state", "rotate-key", "--old", str(old), "--new", str(new))
    assert one_error_line(wrong) == (f"engine: error: durable edge storage {edges} is not encrypted with {old} (its "
                                     "key check fails): give the key file it was encrypted with as --old")


def test_rotate_key_encrypts_a_plain_state_and_leaves_no_plaintext(tmp_path):
    key = make_key(tmp_path / "k")
    edges = tmp_path / "state" / "edges"
    store_with(edges, None, count=2000)
    done = engine(tmp_path, "state", "rotate-key", "--old", "none", "--new", str(key), "--state-dir",
                  str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    assert PLANTED.encode() not in (edges / "data.mdb").read_bytes()  # compacted: no freed plaintext pages
    assert len(take_all(edges, key)[0]) == 2000
    back = engine(tmp_path, "state", "rotate-key", "--old", str(key), "--new", "none")
    assert back.returncode == 0, back.stderr
    assert len(take_all(edges, None)[0]) == 2000


def test_rotate_key_refuses_while_the_state_is_in_use(tmp_path):
    key = make_key(tmp_path / "k")
    edges = tmp_path / "state" / "edges"
    store_with(edges, None)
    holder = LmdbStore(edges)  # as a running engine holds it
    try:
        refused = engine(tmp_path, "state", "rotate-key", "--old", "none", "--new", str(key))
    finally:
        holder.close()
    assert one_error_line(refused) == (f"engine: error: durable edge storage {edges} is in use by another process: "
                                       "stop the `engine run` or `engine serve` that uses it first")
    assert PLANTED.encode() in (edges / "data.mdb").read_bytes()  # untouched


def test_kill_9_and_restart_with_encryption_loses_nothing(tmp_path, monkeypatch):
    """tests/test_durable_crash.py's graph and kills, with a key: every event arrives."""
    monkeypatch.setenv("HEADRACE_STATE_ENCRYPTION_KEY_FILE", str(make_key(tmp_path / "state.key")))
    (tmp_path / "g.yaml").write_text(crash.GRAPH)
    output = Output(tmp_path / "out.jsonl", "n")
    for share in (500, 3000, 8000):
        crash.kill_after_progress(tmp_path, output, share)
    proc = crash.start(tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert output.done() == crash.COUNT and output.seen == set(range(crash.COUNT))
    assert all(event["twice"] == event["n"] * 2 for event in output.events)
    assert b'"n"' not in (tmp_path / "state" / "edges" / "data.mdb").read_bytes()
