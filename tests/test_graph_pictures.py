"""`engine graph`: the topology of a plan as Mermaid, DOT, JSON, SVG and PNG (docs/graphs.md)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from adapters.pictures.dot import dot
from adapters.pictures.mermaid import mermaid
from adapters.pictures.topology import FUSED, SEGMENT, topology
from loader.api import load_file
from tests.conftest import ROOT, require

# A source, a fused chain (readings -> scaled -> warm) with a dead-letter `errors` port, a
# route with named ports, a GPU segment, a durable edge, and a node named like a Mermaid
# keyword (`end`).
GRAPH = """\
version: 2
name: pictures
nodes:
  readings:
    type: generate
    with:
      count: 10
      fields: {sensor: "i % 4", temp: "i * 1.5"}
  scaled:
    type: map
    from: readings
    on_error: dead_letter
    with: {set: {temp_f: "temp * 1.8 + 32"}}
  warm:
    type: filter
    from: scaled
    with: {where: "temp_f > 40"}
  by_level:
    type: route
    from: {node: warm, edge: {capacity: 64, policy: drop_oldest}}
    with: {routes: {hot: "temp_f > 80", cold: "temp_f < 50"}}
  gpu_scale:
    type: opencl.map
    from: by_level.hot
    with:
      columns: {sensor: int32, temp_f: float32}
      set: {score: temp_f / 10}
  gpu_keep:
    type: opencl.filter
    from: gpu_scale
    with: {where: "score > 9"}
  hot_out:
    type: stdout
    from: {node: gpu_keep, edge: {durable: true, capacity: 256}}
  end:
    type: "null"
    from: by_level.cold
  failures:
    type: stdout
    from: scaled.errors
"""

MERMAID = """\
flowchart LR
    subgraph g_readings["fused chain"]
        n_readings(["readings<br/>generate"])
        n_scaled["scaled<br/>map"]
        n_warm["warm<br/>filter"]
    end
    n_failures[\\"failures<br/>stdout"/]
    n_by_level["by_level<br/>route"]
    n_end[\\"end<br/>null"/]
    subgraph g_gpu_scale["GPU segment (opencl)"]
        n_gpu_scale["gpu_scale<br/>opencl.map"]
        n_gpu_keep["gpu_keep<br/>opencl.filter"]
    end
    n_hot_out[\\"hot_out<br/>stdout"/]
    n_readings -->|"block 1024"| n_scaled
    n_scaled -->|"block 1024"| n_warm
    n_scaled -.->|"errors · block 1024"| n_failures
    n_warm -->|"drop_oldest 64"| n_by_level
    n_by_level -->|"hot · block 1024"| n_gpu_scale
    n_by_level -->|"cold · block 1024"| n_end
    n_gpu_scale -->|"block 1024"| n_gpu_keep
    n_gpu_keep ==>|"block 256 · durable"| n_hot_out
"""

DOT = """\
digraph "pictures" {
    rankdir=LR;
    graph [fontname="Helvetica", fontsize=10];
    node [fontname="Helvetica", fontsize=11];
    edge [fontname="Helvetica", fontsize=9];
    subgraph "cluster_g_readings" {
        label="fused chain";
        style="rounded,dashed";
        "n_readings" [label="readings\\ngenerate", shape=box, style="rounded"];
        "n_scaled" [label="scaled\\nmap", shape=box];
        "n_warm" [label="warm\\nfilter", shape=box];
    }
    "n_failures" [label="failures\\nstdout", shape=invtrapezium, margin="0.05,0.02"];
    "n_by_level" [label="by_level\\nroute", shape=box];
    "n_end" [label="end\\nnull", shape=invtrapezium, margin="0.05,0.02"];
    subgraph "cluster_g_gpu_scale" {
        label="GPU segment (opencl)";
        style="rounded,filled";
        fillcolor="#eef4ff";
        "n_gpu_scale" [label="gpu_scale\\nopencl.map", shape=box];
        "n_gpu_keep" [label="gpu_keep\\nopencl.filter", shape=box];
    }
    "n_hot_out" [label="hot_out\\nstdout", shape=invtrapezium, margin="0.05,0.02"];
    "n_readings" -> "n_scaled" [label="block 1024"];
    "n_scaled" -> "n_warm" [label="block 1024"];
    "n_scaled" -> "n_failures" [label="errors · block 1024", style="dashed"];
    "n_warm" -> "n_by_level" [label="drop_oldest 64"];
    "n_by_level" -> "n_gpu_scale" [label="hot · block 1024"];
    "n_by_level" -> "n_end" [label="cold · block 1024"];
    "n_gpu_scale" -> "n_gpu_keep" [label="block 1024"];
    "n_gpu_keep" -> "n_hot_out" [label="block 256 · durable", style="bold"];
}
"""

NO_GRAPHVIZ = ("Graphviz's `dot` is not on PATH: install it (Debian: apt-get install graphviz, "
               "which CI does in .ci/install-graphviz)")


@pytest.fixture
def graph_file(tmp_path: Path) -> Path:
    path = tmp_path / "pictures.yaml"
    path.write_text(GRAPH)
    return path


@pytest.fixture
def picture(graph_file, registry):
    plan = load_file(graph_file, registry).plan
    assert plan is not None
    return topology(plan, registry)


def need_dot() -> str:
    program = shutil.which("dot")
    require(program, NO_GRAPHVIZ)
    assert program is not None
    return program


# -- the model and its two texts ---------------------------------------------------------------

def test_mermaid_draws_kinds_ports_policies_and_groups(picture):
    assert mermaid(picture) == MERMAID


def test_mermaid_lines_users_check(picture):
    lines = [line.strip() for line in mermaid(picture).splitlines()]
    assert 'n_readings(["readings<br/>generate"])' in lines  # a source: a stadium
    assert 'n_by_level["by_level<br/>route"]' in lines  # a transform: a rectangle
    assert 'n_end[\\"end<br/>null"/]' in lines  # a sink: a funnel; `end` is safe as `n_end`
    assert 'n_scaled -.->|"errors · block 1024"| n_failures' in lines  # the dead-letter port
    assert 'n_by_level -->|"hot · block 1024"| n_gpu_scale' in lines  # a named port
    assert 'n_gpu_keep ==>|"block 256 · durable"| n_hot_out' in lines
    assert 'subgraph g_gpu_scale["GPU segment (opencl)"]' in lines
    assert 'subgraph g_readings["fused chain"]' in lines
    assert "end" in lines and not any(line.startswith("end[") or line.startswith("end ") for line in lines)


def test_dot_draws_the_same_picture(picture):
    assert dot(picture) == DOT


def test_the_model_as_json(picture):
    data = json.loads(picture.to_json())
    kinds = {n["name"]: n["kind"] for n in data["nodes"]}
    assert kinds == {"readings": "source", "scaled": "transform", "warm": "transform", "failures": "sink",
                     "by_level": "transform", "end": "sink", "gpu_scale": "transform", "gpu_keep": "transform",
                     "hot_out": "sink"}
    ports = {n["name"]: n["ports"] for n in data["nodes"]}
    assert ports["by_level"] == ["hot", "cold", "unmatched"] and ports["scaled"] == ["out", "errors"]
    assert ports["end"] == []
    assert data["groups"] == [
        {"id": "g_gpu_scale", "kind": SEGMENT, "family": "opencl", "label": "GPU segment (opencl)",
         "nodes": ["n_gpu_scale", "n_gpu_keep"]},
        {"id": "g_readings", "kind": FUSED, "family": "", "label": "fused chain",
         "nodes": ["n_readings", "n_scaled", "n_warm"]},
    ]
    durable = [e for e in data["edges"] if e["durable"]]
    assert durable == [{"id": "gpu_keep->hot_out", "from": "n_gpu_keep", "port": "out", "to": "n_hot_out",
                        "policy": "block", "capacity": 256, "durable": True, "label": "block 256 · durable"}]


def test_a_lone_node_is_no_group_but_a_lone_gpu_node_is_a_segment(tmp_path, registry):
    path = tmp_path / "lone.yaml"
    path.write_text("version: 2\nnodes:\n"
                    "  src: {type: generate, with: {count: 1, fields: {x: i}}}\n"
                    "  one:\n    type: opencl.map\n    from: {node: src, edge: {policy: drop_newest}}\n"
                    "    with: {columns: {x: float32}, set: {y: x * 2}}\n"
                    "  out: {type: stdout, from: one}\n")
    plan = load_file(path, registry).plan
    assert plan is not None
    groups = topology(plan, registry).groups
    assert [(g.kind, g.nodes) for g in groups] == [(SEGMENT, ("n_one",))]


def test_parameter_values_are_never_drawn(picture):
    for text in (mermaid(picture), dot(picture), picture.to_json()):
        assert "1.8" not in text and "temp_f > 80" not in text and "float32" not in text


def test_the_same_plan_gives_the_same_text(graph_file, registry, tmp_path):
    """Key order in the file does not matter: the picture follows the plan."""
    lines = GRAPH.splitlines()
    start = lines.index("  readings:")
    reordered = lines[:start] + lines[start + 5:] + lines[start:start + 5]  # `readings` last
    other = tmp_path / "reordered.yaml"
    other.write_text("\n".join(reordered) + "\n")
    plan = load_file(other, registry).plan
    assert plan is not None
    assert mermaid(topology(plan, registry)) == MERMAID


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "graphs").glob("*.yaml") if ".test." not in p.name))
def test_every_shipped_graph_draws(path, cli):
    code, out, err = cli("graph", f"graphs/{path}")
    assert (code, err) == (0, "") and out.startswith("flowchart LR\n")
    assert f"drawn by `engine graph graphs/{path}`:\n\n```mermaid\n{out}```" in (ROOT / "docs/graphs.md").read_text()


# -- Graphviz ----------------------------------------------------------------------------------

def test_graphviz_parses_the_dot(picture):
    drawn = subprocess.run([need_dot(), "-Tsvg"], input=dot(picture), capture_output=True, text=True, timeout=60)
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stderr == ""  # no warnings either
    for text in ("GPU segment (opencl)", "fused chain", "errors · block 1024", "block 256 · durable", "gpu_keep"):
        assert text in drawn.stdout


def test_svg_and_png_through_the_command(cli, graph_file, tmp_path):
    need_dot()
    code, out, err = cli("graph", str(graph_file), "--format", "svg")
    assert (code, err) == (0, "") and "<svg" in out and "GPU segment (opencl)" in out
    assert cli("graph", str(graph_file), "-o", str(tmp_path / "p.svg")) == (0, "", "")
    assert "<svg" in (tmp_path / "p.svg").read_text()
    assert cli("graph", str(graph_file), "--format", "png", "-o", str(tmp_path / "p.bin")) == (0, "", "")
    assert (tmp_path / "p.bin").read_bytes().startswith(b"\x89PNG\r\n")


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_without_graphviz_the_command_says_how_to_install_it(cli, graph_file, tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    code, out, err = cli("graph", str(graph_file), "--format", fmt, "-o", str(tmp_path / f"p.{fmt}"))
    assert (code, out) == (2, "")
    assert err == (f"engine: error: --format {fmt} needs Graphviz's `dot` program, which is not on PATH: "
                   "install Graphviz (Debian: apt-get install graphviz; macOS: brew install graphviz)\n")
    assert not (tmp_path / f"p.{fmt}").exists()


def test_text_formats_need_no_graphviz(cli, graph_file, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli("graph", str(graph_file)) == (0, MERMAID, "")
    assert cli("graph", str(graph_file), "--format", "dot") == (0, DOT, "")


# -- the command line --------------------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [("p.mmd", MERMAID), ("p.mermaid", MERMAID), ("p.dot", DOT),
                                           ("p.gv", DOT)])
def test_the_format_follows_the_output_extension(cli, graph_file, tmp_path, name, expected):
    assert cli("graph", str(graph_file), "-o", str(tmp_path / name)) == (0, "", "")
    assert (tmp_path / name).read_text() == expected


def test_format_wins_over_the_extension_and_json_goes_to_stdout(cli, graph_file, tmp_path):
    assert cli("graph", str(graph_file), "--format", "mermaid", "-o", str(tmp_path / "p.md")) == (0, "", "")
    assert (tmp_path / "p.md").read_text() == MERMAID
    code, out, err = cli("graph", str(graph_file), "--format", "json")
    assert (code, err) == (0, "") and json.loads(out)["name"] == "pictures"
    assert cli("graph", str(graph_file), "-o", str(tmp_path / "p.json")) == (0, "", "")
    assert json.loads((tmp_path / "p.json").read_text()) == json.loads(out)


def test_an_extension_that_names_no_format_is_a_usage_error(cli, graph_file, tmp_path):
    code, out, err = cli("graph", str(graph_file), "-o", str(tmp_path / "p.jpg"))
    assert (code, out) == (2, "")
    assert err.startswith(f"engine: error: cannot tell the format from '{tmp_path / 'p.jpg'}' (known extensions: "
                          ".mmd, .mermaid, .dot, .gv, .json, .svg, .png): give --format")
    assert not (tmp_path / "p.jpg").exists()


def test_usage_errors(cli, graph_file, tmp_path):
    code, _, err = cli("graph", str(graph_file), "--format", "gif")
    assert code == 2 and "invalid choice: 'gif'" in err
    code, _, err = cli("graph")
    assert code == 2 and "the following arguments are required: FILE" in err
    assert cli("graph", str(tmp_path / "missing.yaml")) == (2, "", f"engine: error: no such file: "
                                                                   f"{tmp_path / 'missing.yaml'}\n")
    code, out, err = cli("graph", str(graph_file), "-o", str(tmp_path / "no" / "such" / "dir.mmd"))
    assert (code, out) == (2, "") and err.startswith(f"engine: error: cannot write {tmp_path / 'no'}")


def test_a_graph_with_problems_prints_them_and_exits_1(cli, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("version: 2\nnodes:\n  src: {type: generate, with: {fields: {x: i}}}\n"
                    "  out: {type: stdout, from: scr}\n")
    code, out, err = cli("graph", str(path))
    assert (code, out) == (1, "")
    assert f"{path}:4:" in err and "HR032" in err and "did you mean 'src'?" in err


# -- CI installs Graphviz ----------------------------------------------------------------------

def install_graphviz(tmp_path: Path, apt_get: str) -> subprocess.CompletedProcess[str]:
    """.ci/install-graphviz with a stand-in apt-get (and sudo), looking for a `dot` that
    only the stand-in can put on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"apt-get $*\" >> {tmp_path}/apt.log\n{apt_get}\n")
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", GRAPHVIZ_DOT="headrace-test-dot")
    return subprocess.run(["bash", str(ROOT / ".ci/install-graphviz")], env=env, capture_output=True, text=True,
                          timeout=60)


def test_install_graphviz_fails_when_apt_get_fails(tmp_path):
    done = install_graphviz(tmp_path, 'case "$1" in install) exit 100;; esac')
    assert done.returncode == 1
    assert done.stderr.startswith("error: could not install Debian's graphviz: apt-get install graphviz failed.")
    assert (tmp_path / "apt.log").read_text().splitlines() == ["apt-get update -qq", "apt-get install -y -qq graphviz"]


def test_install_graphviz_fails_when_the_install_leaves_no_dot(tmp_path):
    done = install_graphviz(tmp_path, "exit 0")
    assert done.returncode == 1 and "headrace-test-dot is not on PATH after the install" in done.stderr


def test_install_graphviz_installs_only_when_missing(tmp_path):
    dot_program = tmp_path / "bin" / "headrace-test-dot"
    installs = f'case "$1" in install) printf "#!/bin/sh\\n" > {dot_program}; chmod +x {dot_program};; esac'
    assert install_graphviz(tmp_path, installs).returncode == 0
    assert install_graphviz(tmp_path, installs).returncode == 0
    assert len((tmp_path / "apt.log").read_text().splitlines()) == 2  # update and install, once


def test_ci_run_installs_graphviz_before_the_tests():
    lines = (ROOT / ".ci/run").read_text().splitlines()
    first_test = next(i for i, line in enumerate(lines) if "pytest" in line and not line.startswith("#"))
    assert lines.index("bash .ci/install-graphviz") < first_test  # a plain command: under set -e it stops CI
