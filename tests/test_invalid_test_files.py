"""The broken graph-test corpus (tests/graphs/invalid_tests/): each file's problems are
pinned (syrupy), the code in its name is among them at a place in the file, and together
with the broken-graph corpus every problem code is covered.

Update the snapshots after an intended wording change:
    .venv/bin/python -m pytest -p no:xdist tests/test_invalid_test_files.py --snapshot-update
"""

import json
import re

import pytest

from tests.conftest import ROOT

CORPUS = ROOT / "tests/graphs/invalid_tests"
FILES = sorted(p for p in CORPUS.iterdir() if ".test." in p.name)
TEST_FILE_CODES = {"HR090", "HR091", "HR092", "HR093"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_broken_test_file(path, cli, snapshot):
    code = path.name.split("_", 1)[0].upper()
    relative = str(path.relative_to(ROOT))
    status, text_out, err = cli("test", relative)
    assert status == 1 and "Traceback" not in text_out + err
    _, json_out, _ = cli("test", "--format", "json", relative)
    problems = json.loads(json_out)["problems"]
    assert code in {p["code"] for p in problems}
    assert all(p["file"] == relative and p["line"] > 0 and p["column"] > 0 and p["hint"] for p in problems)
    assert re.sub(r" in [0-9.]+ s$", " in N s", text_out.rstrip("\n")) == snapshot


def test_corpus_covers_the_test_file_codes(cli):
    seen = set()
    for path in FILES:
        _, out, _ = cli("test", "--format", "json", str(path.relative_to(ROOT)))
        seen |= {p["code"] for p in json.loads(out)["problems"]}
    assert seen >= TEST_FILE_CODES
