"""The pytest plugin, as a user's project gets it: a directory with nothing but graphs and
tests, the installed `headrace`, and plain `pytest`."""

import json
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import ROOT


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=project,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    shutil.copy(ROOT / "graphs/orders_etl.yaml", graphs / "orders_etl.yaml")
    (graphs / "orders_etl.test.yaml").write_text(textwrap.dedent("""\
        version: 1
        graph: orders_etl.yaml
        tests:
          - name: cleaned orders come out
            inputs:
              raw: [{order_id: "1", user: " Ann ", amount: "12.5", country: "de"}]
            expect:
              out: {equals: [{id: "1", user: "ann", amount: 12.5, country: "DE"}]}
          - name: a wrong expectation
            inputs:
              raw: [{order_id: "2", user: "bob", amount: "1", country: "fr"}]
            expect:
              out: {equals: [{id: "2", user: "bob", amount: 1.0, country: "XX"}]}
        """))
    # Not a graph test: a file of the same kind of name from some other tool.
    (tmp_path / "settings.test.yaml").write_text("database: {host: localhost}\ntests: [1, 2]\n")
    return tmp_path


def test_graph_test_files_are_collected_run_and_reported(project):
    result = pytest_in(project, "-v", "--junitxml=report.xml")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "graphs/orders_etl.test.yaml::cleaned orders come out PASSED" in out
    assert "graphs/orders_etl.test.yaml::a wrong expectation FAILED" in out
    assert 'country: expected "XX", got "FR"' in out
    assert "settings.test.yaml" not in out  # left alone
    cases = {c.get("name"): c for c in ET.parse(project / "report.xml").iter("testcase")}
    assert set(cases) == {"cleaned orders come out", "a wrong expectation"}
    assert cases["a wrong expectation"].find("failure") is not None
    selected = pytest_in(project, "-q", "-k", "cleaned")
    assert selected.returncode == 0 and "1 passed, 1 deselected" in selected.stdout


def test_fixtures_give_problems_plans_and_runs_for_snapshots(project):
    (project / "graphs/orders_etl.test.yaml").unlink()
    (project / "graphs/broken.yaml").write_text("version: 2\nname: broken\nnodes:\n  a: {type: nope}\n")
    tests = project / "tests"
    tests.mkdir()
    (tests / "test_graphs.py").write_text(textwrap.dedent("""\
        import json

        def test_validate(headrace_validate, snapshot):
            assert headrace_validate("graphs/") == snapshot

        def test_validate_codes(headrace_validate):
            problems = headrace_validate("graphs/")
            assert [(p["file"], p["line"], p["code"]) for p in problems] == [("graphs/broken.yaml", 4, "HR031")]

        def test_plan(headrace_plan):
            plan = headrace_plan("graphs/orders_etl.yaml")
            assert plan["name"] == "orders_etl" and plan["hash"].startswith("sha256:")

        def test_run(headrace_run):
            out = headrace_run("graphs/orders_etl.yaml",
                               inputs={"raw": [{"order_id": "1", "user": "A", "amount": "2", "country": "de"},
                                               {"order_id": "2", "user": "b", "amount": "x", "country": "de"}]},
                               env={"ETL_OUT": "never-written.jsonl"})
            assert out["out"] == [{"id": "1", "user": "a", "amount": 2.0, "country": "DE"}]
            assert [e["error"] for e in out["rejects"]] == [out["cleaned.errors"][0]["error"]]
            assert out["valid"] == out["out"]
        """))
    first = pytest_in(project, "-q", "tests", "--snapshot-update")
    assert first.returncode == 0, first.stdout + first.stderr
    again = pytest_in(project, "-q", "tests")
    assert again.returncode == 0 and "4 passed" in again.stdout, again.stdout
    assert not (project / "never-written.jsonl").exists()
    stored = next((tests / "__snapshots__").rglob("*.ambr")).read_text()
    assert "graphs/broken.yaml" in stored and str(project) not in stored


def test_runs_under_xdist(project):
    result = pytest_in(project, "-q", "-n", "2")
    assert result.returncode == 1 and "1 failed, 1 passed" in result.stdout, result.stdout


def test_importing_the_plugin_loads_nothing_of_headrace():
    code = ("import sys, adapters.testing.pytest_plugin; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('engine', 'loader', 'ruamel', 'jsonschema', 'orjson', 'migrations'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert json.loads(out) == []
