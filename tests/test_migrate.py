"""`engine migrate`: files rewritten in the newest format with their comments, order and
layout; nothing half-done; atomic writes; the same answer as the steps in `migrations/`.

Update the snapshots after an intended change of output:
    .venv/bin/python -m pytest -p no:xdist tests/test_migrate.py --snapshot-update
"""

import contextlib
import copy
import io
import os
import re
import shutil
import stat
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.cli.main import run
from adapters.cli.migrate_yaml import UNWRITABLE, _choose_layout, _dump, _yaml
from adapters.cli.registry import default_registry
from loader.api import load_file
from loader.read_toml import read_toml
from loader.read_yaml import read_yaml
from migrations import upgrade
from tests.conftest import ROOT
from tests.migrate_support import documents, write_toml, write_yaml

V1_CORPUS = ROOT / "tests/graphs/v1"

COMMENTED_YAML = """\
# yaml-language-server: $schema=../schema/graph.v1.json
# A graph with comments everywhere a migration could lose one.
version: 1  # the format
name: commented
defaults:
  # every edge of the graph
  edge:
    storage: lmdb     # on disk
    capacity: 64      # sixty-four
nodes:
  # --- untouched region: written in a style of its own, kept byte for byte ---
  orders:
    type: generate    # aligned comment
    with:
      count: 10
      fields:
        id: i
        note: 'single quoted'
        label: "double quoted ünïcode"
        long: "a very long expression that goes well past eighty columns, which must never be folded"
  # --- end of the untouched region ---
  priced:
    type: map
    from:
      # where the orders come from
      node: orders   # the upstream
      capacity: 8    # eight
      # the policy comes next
      policy: "drop_oldest"  # quoted, stays quoted
    with: {set: {cents: int(id * 100)}}

  # the sink reads two inputs
  out:
    type: stdout
    from:
      - priced  # by name
      # a mapping in a list of inputs
      - node: orders
        storage: memory  # the default, said explicitly
      - {node: priced, capacity: 16, policy: coalesce, key: id}  # a flow mapping
  latest:
    type: stdout
    from: {node: priced, policy: 'latest'}  # keep_latest, quotes kept
"""

COMMENTED_TOML = """\
# A graph in TOML: inline tables, [nodes.x] tables and [[nodes.x.from]] arrays of tables.
version = 1  # the format
name = "commented"

[defaults.edge]
storage = "lmdb"  # on disk
capacity = 64

# --- untouched region ---
[nodes.orders]
type = "generate"  # a source
with = { count = 10, fields = { id = "i", note = 'literal', long = "a very long expression that goes well past eighty columns" } }
# --- end of the untouched region ---

[nodes.priced]
type = "map"
from = { node = "orders", capacity = 8, policy = 'drop_oldest' }  # inline
with = { set = { cents = "int(id * 100)" } }

[nodes.out]
type = "stdout"
# two inputs, as an array of tables
[[nodes.out.from]]
node = "priced"
capacity = 16  # sixteen
storage = "lmdb"

[[nodes.out.from]]
node = "orders"
policy = "coalesce"  # merged by id
key = "id"

[nodes.out.from.merge]
n = "sum"  # added up

[nodes.tail]
type = "stdout"

[nodes.tail.from]
node = "priced"
policy = "latest"  # keep only the newest

[nodes.mixed]
type = "stdout"
from = ["orders", {node="priced", storage='memory'}]
"""


def invoke(*args: str) -> tuple[int, str, str]:
    """`engine ARGS` in-process (also inside hypothesis examples, where capsys is not usable)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory to migrate in, as the current directory (file names in output are relative)."""
    (tmp_path / "graphs").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def put(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_yaml_keeps_comments_order_quotes_and_untouched_text(workdir, snapshot):
    path = put(workdir, "graphs/commented.yaml", COMMENTED_YAML)
    code, out, err = invoke("migrate", "-v", "graphs/commented.yaml")
    assert (code, err) == (0, "")
    migrated = path.read_text()
    assert migrated == snapshot(name="file")
    assert out == snapshot(name="report")
    untouched = re.search(r"  # --- untouched.*# --- end of the untouched region ---\n", COMMENTED_YAML, re.S)
    assert untouched is not None and untouched.group(0) in migrated
    assert migrated.splitlines()[:2] == [
        "# yaml-language-server: $schema=../schema/graph.v2.json",
        "# A graph with comments everywhere a migration could lose one."]
    for comment in re.findall(r"# .*", COMMENTED_YAML)[2:]:
        assert comment in migrated
    assert '        policy: "drop_oldest"  # quoted, stays quoted' in migrated.splitlines()  # one level down
    assert "from: {node: priced, edge: {policy: 'keep_latest'}}" in migrated
    assert read_yaml("x", migrated)[0].data == _upgraded(read_yaml("x", COMMENTED_YAML)[0].data)


def _upgraded(data):  # type: ignore[no-untyped-def]
    data = copy.deepcopy(data)
    upgrade(data)
    return data


def test_toml_keeps_comments_and_layout_of_inline_tables_and_arrays_of_tables(workdir, snapshot):
    path = put(workdir, "graphs/commented.toml", COMMENTED_TOML)
    code, out, err = invoke("migrate", "-v", "graphs/commented.toml")
    assert (code, err) == (0, "")
    migrated = path.read_text()
    assert migrated == snapshot(name="file")
    assert out == snapshot(name="report")
    untouched = re.search(r"# --- untouched.*# --- end of the untouched region ---\n", COMMENTED_TOML, re.S)
    assert untouched is not None and untouched.group(0) in migrated
    for comment in re.findall(r"# .*", COMMENTED_TOML):
        assert comment in migrated
    assert "from = { node = \"orders\", edge = { capacity = 8, policy = 'drop_oldest' } }  # inline" in migrated
    assert "from = [\"orders\", {node=\"priced\", edge={durable=false}}]" in migrated
    assert "[nodes.out.from.edge.merge]" in migrated
    assert read_toml("x", migrated)[0].data == _upgraded(read_toml("x", COMMENTED_TOML)[0].data)


def test_a_file_at_the_version_is_up_to_date_and_untouched(workdir):
    path = put(workdir, "graphs/new.yaml", "version: 2  # current\nnodes: {}\n")
    before = path.stat().st_mtime_ns
    assert invoke("migrate", "graphs/new.yaml") == (0, "graphs/new.yaml: up to date (version 2)\n", "")
    assert path.read_text() == "version: 2  # current\nnodes: {}\n" and path.stat().st_mtime_ns == before


def test_migrating_twice_is_migrating_once(workdir):
    path = put(workdir, "graphs/commented.yaml", COMMENTED_YAML)
    assert invoke("migrate", str(path))[0] == 0
    once = path.read_text()
    assert invoke("migrate", str(path))[:2] == (0, f"{path}: up to date (version 2)\n")
    assert path.read_text() == once


def test_check_writes_nothing_and_fails_when_a_file_would_change(workdir):
    old = put(workdir, "graphs/old.yaml", COMMENTED_YAML)
    put(workdir, "graphs/new.yaml", "version: 2\nnodes: {}\n")
    code, out, err = invoke("migrate", "--check", "graphs")
    assert code == 1 and err == ""
    assert out.splitlines() == [
        "graphs/new.yaml: up to date (version 2)",
        "graphs/old.yaml: would migrate 1 -> 2 (12 changes)",
        "2 files: 1 would be migrated, 1 up to date, 0 not migrated",
        "run `engine migrate` without --check to rewrite them",
    ]
    assert old.read_text() == COMMENTED_YAML
    assert invoke("migrate", "graphs")[0] == 0
    assert invoke("migrate", "--check", "graphs")[0] == 0  # what CI runs once everything is migrated


def test_diff_prints_a_unified_diff_and_writes_nothing(workdir):
    path = put(workdir, "graphs/q.yaml", "version: 1\nnodes:\n  a: {type: generate}\n"
                                         "  b: {type: stdout, from: {node: a, capacity: 8}}  # b\n")
    code, out, err = invoke("migrate", "--diff", "graphs/q.yaml")
    assert code == 0
    assert out == (
        "--- a/graphs/q.yaml\n+++ b/graphs/q.yaml\n@@ -1,4 +1,4 @@\n"
        "-version: 1\n+version: 2\n nodes:\n   a: {type: generate}\n"
        "-  b: {type: stdout, from: {node: a, capacity: 8}}  # b\n"
        "+  b: {type: stdout, from: {node: a, edge: {capacity: 8}}} # b\n")
    assert err == "graphs/q.yaml: would migrate 1 -> 2 (2 changes)\n"  # stdout is only the patch
    assert path.read_text().startswith("version: 1")
    assert invoke("migrate", "--diff", "--check", "graphs/q.yaml")[0] == 1


def test_a_file_newer_than_the_engine_is_refused_naming_the_versions_it_knows(workdir):
    put(workdir, "graphs/future.toml", "version = 3\n")
    code, out, err = invoke("migrate", "graphs/future.toml")
    assert code == 1 and out == ""
    assert err.splitlines()[0] == ("graphs/future.toml:1:1: HR011 version 3 is newer than this engine "
                                   "(this engine understands versions 1, 2)")
    assert (workdir / "graphs/future.toml").read_text() == "version = 3\n"


def test_a_decision_is_reported_at_its_line_and_leaves_the_file_untouched(workdir):
    text = ("version: 1\nnodes:\n  a: {type: generate, with: {count: 1}}\n  b:\n    type: stdout\n"
            "    from:\n      node: a\n      policy: latest\n      capacity: 5  # five?\n")
    path = put(workdir, "graphs/decide.yaml", text)
    other = put(workdir, "graphs/other.yaml", "version: 1\nnodes: {}\n")
    code, out, err = invoke("migrate", "graphs")
    assert code == 1
    assert err.splitlines()[:4] == [
        "graphs/decide.yaml:9:7: HR080 capacity 5 never had an effect with `latest` (it kept one event); decide: "
        "remove `capacity` to keep only the newest event, or use `policy: drop_oldest` to keep the newest 5",
        " 9 |       capacity: 5  # five?",
        "   |       ^",
        "   = hint: change the file as you decide, then run `engine migrate` on it again",
    ]
    assert path.read_text() == text  # nothing half-migrated
    assert other.read_text() == "version: 2\nnodes: {}\n"  # the other files still are
    assert out.splitlines()[-1] == "2 files: 1 migrated, 0 up to date, 1 not migrated"


def test_a_decision_in_toml_names_its_line(workdir):
    put(workdir, "graphs/d.toml", 'version = 1\n\n[nodes.b]\ntype = "stdout"\n'
                                  'from = { node = "a", capacity = 3, policy = "latest" }\n')
    code, _, err = invoke("migrate", "graphs/d.toml")
    assert code == 1 and err.startswith("graphs/d.toml:5:22: HR080 capacity 3 never had an effect")


@pytest.mark.parametrize("text, first", [
    ("nodes: {}\n", "graphs/bad.yaml:1:1: HR010 missing `version`"),
    ("version: two\nnodes: {}\n", "graphs/bad.yaml:1:1: HR011 unsupported version 'two'"),
    ("version: 1\nnodes: [\n", "graphs/bad.yaml:3:1: HR002 invalid YAML"),
])
def test_a_file_that_cannot_be_read_as_a_graph_is_reported_and_untouched(workdir, text, first):
    path = put(workdir, "graphs/bad.yaml", text)
    code, _, err = invoke("migrate", "graphs/bad.yaml")
    assert code == 1 and err.startswith(first)
    assert path.read_text() == text


def test_usage_errors(workdir):
    code, _, err = invoke("migrate", "graphs/nothere.yaml")
    assert code == 2 and err == "engine: error: no such file or directory: graphs/nothere.yaml\n"
    code, _, err = invoke("migrate", "--to", "7", "graphs")
    assert code == 2 and err == "engine: error: --to 7: this engine knows versions 1, 2\n"
    code, _, err = invoke("migrate", "graphs")
    assert code == 2 and "no graph files" in err


def test_directories_take_graph_files_only_and_skip_hidden_ones(workdir):
    put(workdir, "graphs/a.yaml", "version: 1\nnodes: {}\n")
    put(workdir, "graphs/.hidden.yaml", "version: 1\nnodes: {}\n")
    put(workdir, "graphs/notes.txt", "version: 1\n")
    code, out, _ = invoke("migrate", "graphs")
    assert code == 0 and out == "graphs/a.yaml: migrated 1 -> 2 (1 change)\n"
    assert (workdir / "graphs/.hidden.yaml").read_text() == "version: 1\nnodes: {}\n"


def test_line_endings_byte_order_mark_final_newline_and_permissions_are_kept(workdir):
    crlf = workdir / "graphs/crlf.yaml"
    crlf.write_bytes(b"\xef\xbb\xbfversion: 1\r\nnodes:\r\n  b: {type: stdout, from: {node: a, capacity: 3}}\r\n")
    bare = put(workdir, "graphs/bare.yaml", "version: 1\nnodes: {}")
    os.chmod(bare, 0o640)
    assert invoke("migrate", "graphs")[0] == 0
    assert crlf.read_bytes() == (b"\xef\xbb\xbfversion: 2\r\nnodes:\r\n"
                                 b"  b: {type: stdout, from: {node: a, edge: {capacity: 3}}}\r\n")
    assert bare.read_text() == "version: 2\nnodes: {}"
    assert stat.S_IMODE(bare.stat().st_mode) == 0o640
    assert sorted(p.name for p in (workdir / "graphs").iterdir()) == ["bare.yaml", "crlf.yaml"]  # no temp files


def test_a_symbolic_link_stays_one(workdir):
    target = put(workdir, "real.yaml", "version: 1\nnodes: {}\n")
    (workdir / "graphs/link.yaml").symlink_to(target)
    assert invoke("migrate", "graphs/link.yaml")[0] == 0
    assert (workdir / "graphs/link.yaml").is_symlink() and target.read_text() == "version: 2\nnodes: {}\n"


def test_a_rewrite_that_would_not_mean_what_the_steps_say_is_refused(workdir):
    # A merge key brings edge options in from an anchor: moving them cannot be written back.
    text = ("version: 1\nnodes:\n  a: {type: generate, with: {count: 1}}\n  b:\n    type: stdout\n"
            "    from:\n      node: a\n      <<: {capacity: 8}\n")
    path = put(workdir, "graphs/merge.yaml", text)
    code, _, err = invoke("migrate", "graphs/merge.yaml")
    assert code == 1 and err.startswith("graphs/merge.yaml: not migrated: the rewritten file would not say what "
                                        "the migration gives at nodes.b.from")
    assert path.read_text() == text


def test_a_toml_layout_tomlkit_cannot_change_is_refused(workdir):
    text = 'version = 1\n[nodes.b]\ntype = "map"\nfrom.node = "a"\nfrom.capacity = 8  # dotted keys\n'
    path = put(workdir, "graphs/dotted.toml", text)
    code, _, err = invoke("migrate", "graphs/dotted.toml")
    assert code == 1 and err.startswith("graphs/dotted.toml: not migrated: ") and "dotted keys there?" in err
    assert path.read_text() == text


def test_writes_are_atomic_for_a_concurrent_reader(workdir):
    """A reader polling the file while it is migrated 50 times sees the old or the new text,
    complete, never a mix or an empty file."""
    path = workdir / "graphs/watched.yaml"
    old = COMMENTED_YAML.encode()
    path.write_bytes(old)
    invoke("migrate", str(path))
    new = path.read_bytes()
    seen: set[bytes] = set()
    reads = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal reads
        while not done.is_set():
            seen.add(path.read_bytes())
            reads += 1

    reader = threading.Thread(target=watch)
    reader.start()
    try:
        for _ in range(50):
            fresh = workdir / "graphs/.fresh"
            fresh.write_bytes(old)
            os.replace(fresh, path)  # back to version 1, atomically too
            assert invoke("migrate", str(path))[0] == 0
    finally:
        done.set()
        reader.join()
    assert seen <= {old, new} and reads > 50
    assert path.read_bytes() == new


def test_every_shipped_graph_in_its_version_1_form_migrates_to_the_shipped_file_and_plan(tmp_path):
    """tests/graphs/v1 holds the shipped graphs as they were written in format 1: migrated,
    each is byte for byte the shipped version-2 file, validates and compiles to the same plan."""
    registry = default_registry()
    originals = sorted(V1_CORPUS.iterdir())
    assert len(originals) >= 7
    for original in originals:
        shipped = ROOT / ("graphs/toml" if original.suffix == ".toml" else "graphs") / original.name
        copy_path = tmp_path / original.name
        shutil.copy(original, copy_path)
        code, out, err = invoke("migrate", str(copy_path))
        assert code == 0 and err == "" and "migrated 1 -> 2" in out
        migrated = copy_path.read_text().replace("../../../schema/", "../schema/")
        assert migrated == shipped.read_text(), original.name
        assert invoke("validate", str(copy_path)) == (0, "1 file valid\n", "")
        before, after = load_file(original, registry), load_file(copy_path, registry)
        assert before.plan is not None and after.plan is not None
        assert before.plan.content_hash() == after.plan.content_hash()


def test_the_shipped_graphs_are_up_to_date():
    code, out, _ = invoke("migrate", "--check", str(ROOT / "graphs"), str(ROOT / "graphs/toml"))
    assert code == 0 and "would migrate" not in out


PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(doc=documents(), toml=st.booleans(), data=st.data())
def test_generated_documents_migrate_to_what_the_steps_give_keeping_every_comment(doc, toml, data):
    text, written = (write_toml if toml else write_yaml)(doc, data.draw)
    read = read_toml if toml else read_yaml
    assert read("g", text)[0].data == doc  # the writer wrote what was generated
    expected = copy.deepcopy(doc)
    _, decisions = upgrade(expected)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ("g.toml" if toml else "g.yaml")
        path.write_text(text)
        code, _, err = invoke("migrate", str(path))
        if decisions:
            assert code == 1 and "HR080" in err and path.read_text() == text
            return
        if code == 1 and UNWRITABLE in err:  # only where ruamel.yaml breaks even the unmigrated file
            assert not _writes_back(text) and path.read_text() == text
            return
        lost = re.search(r"the comment '(.*?)' would be lost", err)
        if code == 1 and lost:  # only a comment ruamel.yaml drops from the unmigrated file too
            assert lost.group(1) not in _written_back(text) and path.read_text() == text
            return
        assert (code, err) == (0, "")
        once = path.read_text()
        assert read("g", once)[0].data == expected
        for comment in written:
            assert re.search(re.escape(comment) + r"(?!\d)", once), (comment, text, once)
        assert invoke("migrate", str(path))[:2] == (0, f"{path}: up to date (version 2)\n")
        assert path.read_text() == once


def _written_back(text: str) -> str:
    """The document as ruamel.yaml's round trip writes it back unchanged."""
    document = _yaml().load(text)
    return _dump(document, _choose_layout(text, document))


def _writes_back(text: str) -> bool:
    """Whether ruamel.yaml writes the document, unchanged, back as YAML of the same values."""
    try:
        return bool(_yaml().load(_written_back(text)) == _yaml().load(text))
    except Exception:
        return False


# Found by the property above: ruamel.yaml writes the third item back as `- node: "a" -`.
BROKEN_BY_RUAMEL = """\
version: 1
nodes:
  a:
    type: "stdout"
    from: "a"
  b:
    from: # c15
    # c16
    - {node: a} # c17
    # c18
      # c19
    - node: "a"
    - a # c20
    type: stdout
"""


def test_a_file_ruamel_yaml_cannot_write_back_is_left_alone_with_the_reason(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(BROKEN_BY_RUAMEL)
    assert not _writes_back(BROKEN_BY_RUAMEL)
    code, out, err = invoke("migrate", str(path))
    assert code == 1 and out == ""
    assert err == f"{path}: not migrated: {UNWRITABLE}\n"
    assert path.read_text() == BROKEN_BY_RUAMEL


# Found by the property above: ruamel.yaml does not load `# c30` at all (a comment line
# after a flow item of a block list), so writing the file back would drop it silently.
DROPPED_BY_RUAMEL = """\
version: 1
nodes:
  a: {type: stdout, from: a}
  c:
    type: "stdout"
    from: # c28
    - {node: a, capacity: 1, storage: lmdb}
    # c30
    - {node: "a"} # c31
"""


def test_a_comment_ruamel_yaml_would_drop_stops_the_migration_with_the_fix(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(DROPPED_BY_RUAMEL)
    assert "# c30" not in _written_back(DROPPED_BY_RUAMEL)
    code, out, err = invoke("migrate", str(path))
    assert (code, out) == (1, "")
    assert err == (f"{path}: not migrated: the comment '# c30' would be lost; the file is unchanged: move the "
                   "comment onto a line of its own before a key, or make the changes by hand\n")
    assert path.read_text() == DROPPED_BY_RUAMEL
    path.write_text(DROPPED_BY_RUAMEL.replace("    # c30\n", "").replace("  c:\n", "  # c30\n  c:\n"))
    assert invoke("migrate", str(path))[0] == 0 and "# c30" in path.read_text()  # moved: kept


# Found by the property above: ruamel.yaml writes the list back as `- a -` / `  a`, which
# reads as one string: the values would change where nothing was migrated.
CHANGED_BY_RUAMEL = """\
version: 1
nodes:
  a: {type: generate, with: {count: 1}}
  b:
    type: "stdout"
    from: # c18
    # c19
    - {node: "a", port: out} # c20
    # c21
    - a
    - a
"""


def test_a_file_whose_values_ruamel_yaml_would_change_is_left_alone(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(CHANGED_BY_RUAMEL)
    assert not _writes_back(CHANGED_BY_RUAMEL)
    assert invoke("migrate", str(path)) == (1, "", f"{path}: not migrated: {UNWRITABLE}\n")
    assert path.read_text() == CHANGED_BY_RUAMEL
