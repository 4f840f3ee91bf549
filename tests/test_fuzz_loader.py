"""Fuzzing `engine validate`: 10,000 generated documents per run (tests/fuzz_docs.py makes
them from the shipped graphs of every format version and the broken-file corpus: random
keys, wrong types, deep nesting, huge numbers, unicode, YAML tags, anchors and alias bombs,
TOML edge cases) go through the loader exactly as the command sends them, and each must
come back as a plan or as problems, never as an exception; every problem has a known code,
the file, and a line and column from 1.

A failure prints the run's seed; `HEADRACE_FUZZ_SEED=<seed>` replays the run, and
`python -m tests.fuzz_docs <seed> <shard> <index>` prints one case.
"""

import json
import random
import subprocess
import sys
import traceback
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from loader import load_text
from loader.problems import CODES, ERROR, WARNING, Problem, has_errors
from loader.read_yaml import MAX_NODES
from loader.report import render_github, render_json, render_text, summary
from tests import fuzz_docs
from tests.conftest import ROOT

SEED = fuzz_docs.run_seed()
SHARDS = 4  # spread over pytest-xdist's workers
PER_SHARD = 2_500  # 10,000 documents per run
FILES_PER_RUN = 150  # of them, also written to disk and checked by `engine validate` itself
# Variables the documents may name; odd values on purpose.
ENV = {"N": "5", "ORDERS": "x", "RATE": "9" * 400, "EXPR": "__import__('os')", "PATH_": "\u202e/etc"}


def replay(shard: int, index: int) -> str:
    return (f"replay: {fuzz_docs.SEED_ENV}={SEED} pytest 'tests/test_fuzz_loader.py' "
            f"(or python -m tests.fuzz_docs {SEED} {shard} {index})")


def problem_faults(problem: Problem, file: str, text: str) -> list[str]:
    """What is wrong with one problem as `engine validate` would report it."""
    faults = []
    if problem.code not in CODES:
        faults.append(f"unknown code {problem.code}")
    if problem.file != file:
        faults.append(f"file {problem.file!r}, not {file!r}")
    # str.splitlines splits at every line end any reader counts, so it bounds them all.
    if not 1 <= problem.line <= len(text.splitlines()) + 1 or problem.column < 1:
        faults.append(f"position {problem.line}:{problem.column}")
    if not problem.message or problem.severity not in (ERROR, WARNING):
        faults.append("no message or severity")
    return faults


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_document(case: fuzz_docs.Case, registry) -> tuple[str, list[str]]:
    """Load and report one document as `engine validate` does; returns its outcome and faults."""
    result = load_text(case.name, case.text, registry, ENV)
    faults = [f"{p.code} {p.message[:60]!r}: {fault}" for p in result.problems
              for fault in problem_faults(p, case.name, case.text)]
    if (result.plan is None) != has_errors(result.problems):
        faults.append("a plan together with errors, or neither")
    if result.plan is not None:
        json.loads(result.plan.to_json())
    # What the command writes, encoded as stdout encodes it. (Only text that came from no
    # file holds a lone surrogate: the text output would quote it, the messages never do.)
    sources = {case.name: case.text} if case.text.isascii() or _encodes(case.text) else {}
    for rendered in (render_text(result.problems, sources), render_json(result.problems),
                     render_github(result.problems), summary(result.problems, 1)):
        rendered.encode("utf-8")
    return ("plan" if result.plan is not None else "problems"), faults


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS), ids=lambda shard: f"seed{SEED}-shard{shard}")
def test_generated_documents_get_located_problems_never_exceptions(registry, shard):
    failures: list[str] = []
    outcomes: Counter[str] = Counter()
    for index in range(PER_SHARD):
        case = fuzz_docs.case(SEED, shard, index)
        try:
            outcome, faults = check_document(case, registry)
        except Exception as exc:  # the property: nothing escapes
            where = "".join(traceback.format_exception(exc)[-3:])
            failures.append(f"{case.how}\n  {type(exc).__name__}: {exc}\n{where}  {replay(shard, index)}")
            continue
        outcomes[outcome] += 1
        if faults:
            failures.append(f"{case.how}\n  {faults[:3]}\n  {replay(shard, index)}")
        if len(failures) >= 5:
            break
    assert not failures, f"seed {SEED}, shard {shard}:\n" + "\n".join(failures)
    # Not a fuzzer that only feeds one path: some documents must still be whole graphs.
    assert outcomes["plan"] >= PER_SHARD // 50, (outcomes, f"seed {SEED}")


@pytest.mark.slow
def test_validate_command_on_generated_files(cli, tmp_path):
    """A sample written to disk, some of it not UTF-8, in directories of up to three files,
    checked by `engine validate --format json` itself: exit 0, 1 or 2 as documented, and
    every problem located in a file the command was given."""
    rng = random.Random(f"{SEED}:files")
    names = ["a.yaml", "b.toml", "c.yml", "ノード.yaml", "x y.toml", "UPPER.yaml", "d.e.yaml"]
    failures: list[str] = []
    for index in range(FILES_PER_RUN // 3):
        folder = tmp_path / str(index)
        folder.mkdir()
        written: dict[str, str] = {}
        for name in rng.sample(names, rng.randint(1, 3)):
            case = fuzz_docs.case(SEED, -1, index * 3 + len(written))
            suffix = Path(case.name).suffix
            path = folder / (Path(name).stem + suffix)
            data = case.text.encode("utf-8", errors="replace")
            if rng.random() < 0.1:  # not UTF-8: Latin-1, or a stray byte
                data = case.text.encode("latin-1", errors="replace") if rng.random() < 0.5 else data + b"\xff\n"
            path.write_bytes(data)
            written[str(path)] = case.how
        status, out, err = cli("validate", "--format", "json", str(folder))
        problems = json.loads(out)
        faults = [p for p in problems if p["file"] not in written or p["line"] < 1 or p["column"] < 1
                  or p["code"] not in CODES]
        errors = [p for p in problems if p["severity"] == "error"]
        expected = 2 if any(p["code"] == "HR001" for p in problems) else (1 if errors else 0)
        if faults or status != expected:
            failures.append(f"exit {status} (expected {expected}), {faults[:2]}, {err[-300:]}, {written}")
    assert not failures, f"seed {SEED} ({fuzz_docs.SEED_ENV}={SEED} to replay):\n" + "\n".join(failures[:5])


# --- the worst documents, one by one ------------------------------------------------------------


def billion_laughs(levels: int, fan: int) -> str:
    lines = ["version: 2", "name: laughs", "x-lol:", '  l0: &l0 "lol"']
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fan) + "]")
    lines += ["nodes:", "  gen:", "    type: generate",
              f"    with: {{count: 1, fields: {{x: i}}, keep: *l{levels - 1}}}", "  out: {type: stdout, from: gen}"]
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_a_located_problem_refused_before_anything_is_built(registry):
    """10**9 values through aliases: refused where the expansion happens, allocating no more
    than a few times the text (building the first 200,000 values before refusing took ~60 MB)."""
    text = billion_laughs(10, 10)
    tracemalloc.start()
    try:
        result = load_text("laughs.yaml", text, registry, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(p.code, p.line, p.column, p.path) for p in result.problems] == [("HR005", 10, 7, "x-lol.l6")]
    assert f"expands to more than {MAX_NODES:,} values" in result.problems[0].message
    assert peak < 2_000_000, f"{peak:,} bytes"


@pytest.mark.parametrize(("text", "where"), [
    ("a: &r [1, *r]\n", (1, 4)),  # an alias inside its own anchor
    ("a: &r {b: 1, <<: *r}\n", (1, 4)),  # a merge of the mapping being merged into
])
def test_an_alias_inside_its_own_anchor_is_a_located_problem(registry, text, where):
    result = load_text("loop.yaml", "version: 2\n" + text, registry, {})
    assert [(p.code, p.line - 1, p.column) for p in result.problems] == [("HR005", *where)]


@pytest.mark.parametrize(("name", "text", "line"), [
    ("flow.yaml", "version: 2\nx: " + "[" * 70 + "]" * 70 + "\n", 2),
    ("block.yaml", "version: 2\nx:\n" + "".join(" " * (d + 1) + f"k{d}:\n" for d in range(70)) + "\n", 67),
    ("array.toml", "version = 2\nx = " + "[" * 70 + "]" * 70 + "\n", 2),
    ("dotted.toml", "version = 2\n" + ".".join(["k"] * 70) + " = 1\n", 2),
    ("huge.yaml", "version: 2\nx: 1" + "0" * 400 + "\n", 2),
    ("huge.toml", "version = 2\nx = 0x" + "f" * 400 + "\n", 2),
])
def test_deep_nesting_and_huge_numbers_are_located_problems(registry, name, text, line):
    result = load_text(name, text, registry, {})
    assert [(p.code, p.line) for p in result.problems] == [("HR005", line)]


def test_a_lone_surrogate_is_a_located_problem(registry):
    """Text that came from no file (an API call) may hold one; YAML's reader would crash on it."""
    result = load_text("api.yaml", "version: 2\nname: \"a\ud800\"\n", registry, {})
    assert [(p.code, p.line, p.column) for p in result.problems] == [("HR001", 2, 9)]


def test_the_worst_documents_load_in_linear_time():
    """Documents whose reading once took time growing with the square of their size: a long
    word in a TOML multi-line array (minutes at 100 kB), flow collections nested 100,000
    deep (a minute), a dotted TOML key of 50,000 parts (tomllib: half a minute). Together
    they load in well under a second now; the limit only stops a hung run."""
    script = """
import sys
from adapters.cli.registry import default_registry
from loader import load_text
registry = default_registry()
docs = {
    "long.toml": 'version = 2\\nkeep = [\\n  "' + "x" * 100_000 + '",\\n  "' + "x." * 50_000 + '",\\n]\\n',
    "flow.yaml": "version: 2\\nx: " + "[" * 100_000 + "]" * 100_000 + "\\n",
    "dotted.toml": "version = 2\\n" + ".".join(["k"] * 50_000) + " = 1\\n",
}
for name, text in docs.items():
    codes = [p.code for p in load_text(name, text, registry, {}).problems]
    print(name, codes)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "flow.yaml ['HR005']" in done.stdout and "dotted.toml ['HR005']" in done.stdout, done.stdout


def test_an_expression_error_after_an_escaped_line_break_points_into_the_file(registry):
    """`"10\\n\\n$"` is one line of the file: the expression's third line is not the file's
    third line after it (which the error pointed at, past the end of this file)."""
    text = 'version: 2\nnodes:\n  s: {type: generate, with: {count: 1, fields: {x: "10\\n\\n$"}}}\n'
    result = load_text("escaped.yaml", text + "  out: {type: stdout, from: s}\n", registry, {})
    assert [(p.code, p.line, p.column) for p in result.problems] == [("HR040", 3, 52)]
