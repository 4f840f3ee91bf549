"""The broken-graph corpus: each file's problems are pinned (syrupy snapshots), the code in
its name is among them, and together the files cover every problem code.

Update the snapshots after an intended wording change:
    .venv/bin/python -m pytest -p no:xdist tests/test_invalid_corpus.py --snapshot-update
"""

import json
from pathlib import Path

import pytest

from loader.problems import CODES
from tests.conftest import ROOT
from tests.test_invalid_test_files import TEST_FILE_CODES

CORPUS = ROOT / "tests/graphs/invalid"
FILES = sorted(p for p in CORPUS.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml", ".toml"))
DIRECTORIES = sorted(p for p in CORPUS.iterdir() if p.is_dir())


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def expected_code(path: Path) -> str:
    return path.name.split("_", 1)[0].upper()


def expected_exit(code: str) -> int:
    if code == "HR001":
        return 2
    return 0 if code in ("HR070", "HR071", "HR080", "HR081", "HR105") else 1  # warnings


def test_corpus_is_large_and_mixed():
    assert len(FILES) >= 40
    assert sum(1 for p in FILES if p.suffix == ".toml") >= 10


def test_corpus_covers_every_code(cli):
    seen = set()
    for target in FILES + DIRECTORIES:
        _, out, _ = cli("validate", "--format", "json", relative(target))
        seen |= {p["code"] for p in json.loads(out)}
    graph_codes = set(CODES) - TEST_FILE_CODES  # graph tests' own: tests/test_invalid_test_files.py
    assert seen >= graph_codes, sorted(graph_codes - seen)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_broken_file(path, cli, snapshot):
    code = expected_code(path)
    assert code in CODES, f"name {path.name} must start with a problem code"
    status, text_out, _ = cli("validate", relative(path))
    json_status, json_out, _ = cli("validate", "--format", "json", relative(path))
    problems = json.loads(json_out)
    assert code in {p["code"] for p in problems}
    assert status == json_status == expected_exit(code)
    for problem in problems:
        assert problem["file"] == relative(path)
        assert problem["message"] and problem["line"] >= 0
    assert text_out == snapshot(name="text")
    assert problems == snapshot(name="json")


@pytest.mark.parametrize("path", DIRECTORIES, ids=lambda p: p.name)
def test_broken_directory(path, cli, snapshot):
    status, text_out, _ = cli("validate", relative(path))
    _, json_out, _ = cli("validate", "--format", "json", relative(path))
    assert status == 1
    assert "HR060" in {p["code"] for p in json.loads(json_out)}
    assert text_out == snapshot(name="text")
    assert json.loads(json_out) == snapshot(name="json")
