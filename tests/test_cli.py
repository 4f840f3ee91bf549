"""The `engine` command as users and CI call it: output, formats and exit codes."""

import json
import subprocess
import sys

from engine.plan import plan_from_dict
from loader.api import is_graph_file
from tests.conftest import ROOT

# The graph files `engine validate graphs/` checks: those at the top of the directory.
SHIPPED = sorted(p.name for p in (ROOT / "graphs").iterdir() if is_graph_file(p.name))

BROKEN = """\
version: 1
nodes:
  orders:
    type: generate
    with: {count: 3, fields: {id: i}}
  priced:
    type: map
    from: prcied
    with: {set: {cents: "int(amount * 100)"}}
  out: {type: stdout, from: priced}
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_validate_valid_directory(cli):
    code, out, err = cli("validate", "graphs/")
    assert code == 0
    assert out == f"{len(SHIPPED)} files valid\n"
    assert err == ""


def test_validate_text_is_compiler_style(cli, tmp_path):
    path = write(tmp_path, "orders.yaml", BROKEN)
    code, out, _ = cli("validate", path)
    assert code == 1
    assert out.splitlines() == [
        f"{path}:8:11: HR032 unknown node 'prcied' in from",
        " 8 |     from: prcied",
        "   |           ^",
        "   = hint: did you mean 'priced'?",
        "1 error, 0 warnings in 1 file",
    ]


def test_validate_json_is_only_the_problem_array(cli, tmp_path):
    path = write(tmp_path, "orders.yaml", BROKEN)
    code, out, _ = cli("validate", "--format", "json", path)
    assert code == 1
    assert json.loads(out) == [{
        "code": "HR032", "severity": "error", "file": path, "line": 8, "column": 11,
        "path": "nodes.priced.from", "message": "unknown node 'prcied' in from",
        "hint": "did you mean 'priced'?",
    }]


def test_validate_json_on_valid_input_is_an_empty_array(cli):
    code, out, _ = cli("validate", "--format", "json", "graphs/")
    assert (code, json.loads(out)) == (0, [])


def test_validate_github_annotations(cli, tmp_path):
    path = write(tmp_path, "orders.yaml", BROKEN)
    code, out, _ = cli("validate", "--format", "github", path)
    assert code == 1
    escaped = path.replace(":", "%3A").replace(",", "%2C")
    assert out == (f"::error file={escaped},line=8,col=11,title=HR032::"
                   "unknown node 'prcied' in from (hint: did you mean 'priced'?)\n")


def test_warnings_do_not_fail(cli, tmp_path):
    path = write(tmp_path, "w.yaml", "version: 1\nnodes:\n  a: {type: generate, with: {fields: {x: i}}}\n")
    code, out, _ = cli("validate", path)
    assert code == 0
    assert "HR070 warning: the output of 'a' is never read" in out


def test_missing_path_is_a_usage_error(cli):
    code, _, err = cli("validate", "graphs/", "no/such/file.yaml")
    assert code == 2
    assert "no such file or directory: no/such/file.yaml" in err


def test_unreadable_file_exits_2(cli, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\nname: caf\xe9\n")
    code, out, _ = cli("validate", str(path))
    assert code == 2
    assert "HR001" in out and "not UTF-8" in out


def test_directory_without_graphs_is_a_usage_error(cli, tmp_path):
    code, _, err = cli("validate", str(tmp_path))
    assert code == 2
    assert "no graph files" in err


def test_unknown_option_is_a_usage_error(cli):
    code, _, err = cli("validate", "--format", "xml", "graphs/")
    assert code == 2
    assert "invalid choice" in err


def test_plan_prints_canonical_json(cli):
    code, out, _ = cli("plan", "graphs/quickstart.yaml")
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["name", "format_version", "nodes", "edges", "hash"]
    assert set(data["nodes"]) == {"orders", "priced", "buys", "per_user", "out"}
    assert data["edges"]["buys->per_user"]["capacity"] == 4096
    assert plan_from_dict(data).to_json() == out


def test_plan_yaml_and_toml_are_byte_identical(cli):
    _, from_yaml, _ = cli("plan", "graphs/quickstart.yaml")
    _, from_toml, _ = cli("plan", "graphs/toml/quickstart.toml")
    assert from_yaml == from_toml


def test_plan_of_broken_file_reports_problems(cli, tmp_path):
    path = write(tmp_path, "orders.yaml", BROKEN)
    code, out, err = cli("plan", path)
    assert (code, out) == (1, "")
    assert "HR032" in err


def test_route_ports_become_edge_ids(cli):
    _, out, _ = cli("plan", "graphs/alerts.yaml")
    edges = json.loads(out)["edges"]
    assert "by_severity.critical->critical_out" in edges
    assert edges["by_severity.critical->critical_out"]["policy"] == "drop_oldest"
    coalesce = edges["warnings_per_minute->latest_warning"]
    assert coalesce["key"] == ["sensor"] and coalesce["merge"] == {"hottest": "max", "warnings": "sum"}
    assert json.loads(out)["nodes"]["by_severity"]["outputs"] == ["critical", "warning", "unmatched"]


def test_schema_command_matches_committed_files(cli):
    code, out, _ = cli("schema")
    assert code == 0
    assert out == (ROOT / "schema/graph.v2.json").read_text()  # the current version by default
    code, out, _ = cli("schema", "--version", "1")
    assert code == 0 and out == (ROOT / "schema/graph.v1.json").read_text()


def test_schema_unknown_version(cli):
    code, _, err = cli("schema", "--version", "9")
    assert code == 2
    assert "this engine knows version 1" in err


def test_version_says_how_the_engine_runs(cli):
    code, out, _ = cli("--version")
    assert code == 0
    assert out.startswith("headrace ")
    assert "(interpreted," in out or "(compiled," in out


def test_console_script_runs_as_a_process():
    result = subprocess.run([sys.executable, "-m", "adapters.cli.main", "validate", "graphs/"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{len(SHIPPED)} files valid\n"
