"""Node families as one bundle (specs, segment builder, checks), the one chain finder, and
the GPU settings reaching the segment builder from the command line's `--config`."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapters.cli.registry import default_registry, registry_for
from adapters.gpu.config import GpuConfig
from adapters.gpu.family import GpuSegments
from adapters.gpu.params import MapParams
from adapters.settings import load_settings
from engine.chain import LAST_MEMBER, MEMBER, NOT_MEMBER, find_chains
from engine.findings import Finding
from engine.fusion import ChainFinder
from engine.plan import GraphPlan, NodePlan
from engine.plan_chains import chains
from engine.spec import SINK, NodeFamily, SpecRegistry
from loader.api import load_text
from tests.conftest import ROOT
from tests.gpu_support import build, needs_opencl
from tests.process_support import Lines
from tests.runtime_support import Record, _spec

GPU_GRAPH = """\
version: 2
name: gpu
nodes:
  src: {type: generate, with: {count: 3, fields: {t: "i * 1.0"}}}
  conv:
    type: opencl.map
    from: src
    with: {columns: {t: float64}, set: {f: "t * 2"}}
  out: {type: "null", from: conv}
"""


def plan_of(text: str, registry: SpecRegistry | None = None) -> GraphPlan:
    result = load_text("g.yaml", textwrap.dedent(text), registry or default_registry())
    assert result.plan is not None, [f"{p.line}:{p.column} {p.message}" for p in result.problems]
    return result.plan


def gpu_builder(registry: SpecRegistry) -> GpuSegments:
    family = registry.family_of("opencl.map")
    assert family is not None and isinstance(family.segment_builder, GpuSegments)
    return family.segment_builder


# -- the registry holds families ------------------------------------------------------------

def test_the_gpu_family_is_one_bundle_in_the_registry() -> None:
    registry = default_registry()
    # `join` is a family of one for its whole-graph check (engine/join_spec.py).
    assert [f.name for f in registry.families()] == ["join", "opencl"]
    family = registry.families()[1]
    assert {spec.name for spec in family.specs} == {"opencl.map", "opencl.filter", "opencl.reduce", "opencl.kernel"}
    assert all(registry.get(spec.name) is spec for spec in family.specs)
    assert registry.family_of("map") is None and registry.family_of("opencl.reduce") is family
    assert family.segment_builder is not None and family.checks


def test_a_copied_registry_keeps_the_families_and_extends_alone() -> None:
    registry = default_registry()
    copy = registry.copy()
    toy = NodeFamily("toy", (_spec("toy.sink", SINK, Record, {}),))
    copy.add_family(toy)
    assert [f.name for f in copy.families()] == ["join", "opencl", "toy"]
    assert [f.name for f in registry.families()] == ["join", "opencl"] and registry.get("toy.sink") is None
    with pytest.raises(ValueError, match="already registered"):
        copy.add_family(toy)


# -- family checks: typed findings, located; anything else is an internal error --------------

def toy_registry(check: object) -> SpecRegistry:
    registry = default_registry().copy()
    registry.add_family(NodeFamily("toy", (_spec("toy.sink", SINK, Record, {"n": {"type": "integer"}}),),
                                   checks=(check,)))  # type: ignore[arg-type]
    return registry


TOY_GRAPH = """\
version: 2
nodes:
  src: {type: generate, with: {count: 1, fields: {n: i}}}
  sink:
    type: toy.sink
    from: src
    with: {n: 7}
"""


def test_a_family_finding_becomes_a_located_problem() -> None:
    found = Finding("HR049", ("nodes", "sink", "with", "n"), "seven is too many", "use 6")
    registry = toy_registry(lambda plan: [found])
    result = load_text("g.yaml", TOY_GRAPH, registry)
    assert result.plan is None
    [problem] = result.problems
    assert (problem.code, problem.line, problem.column, problem.path) == ("HR049", 7, 15, "nodes.sink.with.n")
    assert (problem.message, problem.hint) == ("seven is too many", "use 6")


def test_a_family_check_runs_only_for_graphs_with_its_nodes() -> None:
    registry = toy_registry(lambda plan: [Finding("HR049", ("nodes",), "always")])
    assert load_text("g.yaml", GPU_GRAPH, registry).ok


@pytest.mark.parametrize("returned", [["a string"], [None], "not a list"])
def test_a_check_returning_anything_but_findings_is_an_internal_error(returned: object) -> None:
    with pytest.raises(TypeError, match="internal error: a check of node family 'toy' returned"):
        load_text("g.yaml", TOY_GRAPH, toy_registry(lambda plan: returned))


def test_the_gpu_check_names_an_expression_error_inside_the_value() -> None:
    text = GPU_GRAPH.replace('set: {f: "t * 2"}', 'set: {f: "t * name"}')
    [problem] = load_text("g.yaml", text, default_registry()).problems
    assert problem.code == "HR048" and problem.path == "nodes.conv.with.set.f"
    assert (problem.line, problem.column) == (8, 49)  # at `name`, inside the expression


def test_gpu_members_get_frozen_typed_parameters() -> None:
    runtime = build(GPU_GRAPH)
    params = runtime.runners["conv"].ctx.params
    assert params == MapParams(columns=(("t", "float64"),), batch_size=None, max_delay=None, set=(("f", "t * 2"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.set = ()  # type: ignore[misc]
    later = GPU_GRAPH.replace('  out: {type: "null", from: conv}', '  out: {type: "null", from: hot}\n  hot: '
                              '{type: opencl.reduce, from: conv, with: {fields: {n: count()}, max_delay: 5ms}}')
    [problem] = load_text("g.yaml", later, default_registry()).problems
    assert (problem.code, problem.path) == ("HR049", "nodes.hot.with.max_delay")


def test_the_family_checks_run_beside_schema_errors() -> None:
    """A file shows all its problems at once: a schema error does not hide the GPU check's."""
    text = GPU_GRAPH.replace('set: {f: "t * 2"}', 'set: {f: "t * name"}, colour: red')
    result = load_text("g.yaml", text, default_registry())
    assert sorted(p.code for p in result.problems) == ["HR021", "HR048"]
    assert result.plan is None


def test_a_family_check_never_sees_a_toml_date_it_cannot_hold() -> None:
    """A TOML date (no parameter takes one) is a schema error; the graph is still compiled for
    the family checks, its plan holding only JSON values."""
    text = textwrap.dedent("""\
        version = 2
        [nodes.src]
        type = "generate"
        with = {count = 3, fields = {t = "i * 1.0"}}
        [nodes.conv]
        type = "opencl.map"
        from = "src"
        with = {columns = {t = "float64"}, set = {f = "t * name"}, when = 1979-05-27}
        [nodes.out]
        type = "null"
        from = "conv"
        """)
    result = load_text("g.toml", text, default_registry())
    assert sorted(p.code for p in result.problems) == ["HR021", "HR048"]


# -- one chain finder ------------------------------------------------------------------------

MIXED = """\
version: 2
nodes:
  a_gen: {type: generate, with: {count: 3, fields: {t: "i * 1.0"}}}
  b_map: {type: map, from: a_gen, with: {set: {u: "t + 1"}}}
  c_keep: {type: filter, from: b_map, with: {where: "u > 1"}}
  d_gpu:
    type: opencl.map
    from: c_keep
    with: {columns: {u: float64}, set: {v: "u * 2"}}
  e_hot: {type: opencl.filter, from: d_gpu, with: {where: "v > 4"}}
  f_sum: {type: opencl.reduce, from: e_hot, with: {fields: {n: "count()"}}}
  g_out: {type: "null", from: f_sum}
  h_alone:
    type: opencl.map
    from: {node: c_keep, edge: {policy: drop_newest}}
    with: {columns: {u: float64}, set: {w: "u"}}
  i_out: {type: "null", from: h_alone}
"""


def test_chains_lists_fused_chains_and_gpu_segments() -> None:
    plan = plan_of(MIXED)
    # c_keep's output has two readers, so its chain ends there; a reduce ends its segment; a
    # drop_newest edge is no link, so h_alone is a segment of its own.
    assert chains(plan, default_registry()) == [["a_gen", "b_map", "c_keep"], ["d_gpu", "e_hot", "f_sum"], ["h_alone"]]


def test_fusion_and_gpu_segments_apply_one_rule_with_their_own_members() -> None:
    plan = plan_of(MIXED)
    assert ChainFinder(plan, default_registry()).chains() == [["a_gen", "b_map", "c_keep"]]
    assert gpu_builder(default_registry()).chains(plan) == [["d_gpu", "e_hot", "f_sum"], ["h_alone"]]

    def everything(node: NodePlan) -> int:
        return LAST_MEMBER if node.type == "opencl.reduce" else MEMBER

    # The same rule over all nodes: c_keep is read twice and f_sum ends its chain.
    assert find_chains(plan, everything) == [["a_gen", "b_map", "c_keep"], ["d_gpu", "e_hot", "f_sum"],
                                             ["g_out"], ["h_alone", "i_out"]]
    assert find_chains(plan, lambda node: NOT_MEMBER) == []


# -- settings reach the segment builder ------------------------------------------------------

def test_the_settings_file_and_environment_reach_the_gpu_builder(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text('opencl_device = "cpu"\nopencl_fallback = "numpy"\n')
    assert gpu_builder(registry_for(load_settings(config, env={}))).config == GpuConfig("cpu", "numpy")
    settings = load_settings(config, env={"HEADRACE_OPENCL_DEVICE": "1"})
    assert gpu_builder(registry_for(settings)).config == GpuConfig("1", "numpy")
    assert gpu_builder(default_registry()).config == GpuConfig("auto", "none")


@pytest.fixture
def no_gpu_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HEADRACE_OPENCL_DEVICE", "HEADRACE_OPENCL_FALLBACK", "HEADRACE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_engine_run_config_chooses_the_device(cli, tmp_path: Path, no_gpu_settings: None) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_text(GPU_GRAPH)
    config = tmp_path / "x.toml"
    config.write_text('opencl_device = "no_such_device_xyz"\n')
    code, _, err = cli("run", str(graph), "--config", str(config))
    assert code == 1 and "HEADRACE_OPENCL_DEVICE=no_such_device_xyz" in err and "'conv'" in err
    config.write_text('opencl_device = "numpy"\n')
    assert cli("run", str(graph), "--config", str(config))[0] == 0


def test_engine_run_reports_bad_gpu_settings(cli, tmp_path: Path, no_gpu_settings: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_text(GPU_GRAPH)
    monkeypatch.setenv("HEADRACE_OPENCL_FALLBACK", "maybe")
    code, _, err = cli("run", str(graph))
    # Read only for the segment, the settings' problem is its problem: located as before.
    assert (code, err) == (1, "engine: error: GPU segment 'conv': HEADRACE_OPENCL_FALLBACK: must be none or numpy "
                              "(got 'maybe')\n")
    config = tmp_path / "x.toml"
    config.write_text('opencl_fallback = "maybe"\n')  # a file named on the command line: its own problem
    code, _, err = cli("run", str(graph), "--config", str(config))
    assert code == 1 and err.startswith("engine: error: ") and "GPU segment" not in err


def _serve_placement(tmp_path: Path, device: str) -> str:
    """The line `engine serve DIR --config x.toml` logs about where the GPU segment runs,
    with `opencl_device = device` in x.toml and no GPU setting in the environment."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "gpu.yaml").write_text(GPU_GRAPH)
    config = tmp_path / "x.toml"
    config.write_text(f'opencl_device = "{device}"\ncontrol_address = "127.0.0.1:0"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    proc = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "serve", str(graphs), "--config", str(config)],
                            cwd=tmp_path, env=dict(env, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(proc.stderr)
        out.wait(lambda lines: any("GPU segment 'conv' runs on" in line for line in lines))
        return next(line for line in out.lines if "GPU segment 'conv' runs on" in line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_engine_serve_config_reaches_the_gpu_segment(tmp_path: Path) -> None:
    assert "runs on NumPy (HEADRACE_OPENCL_DEVICE=numpy)" in _serve_placement(tmp_path, "numpy")


@needs_opencl
def test_engine_serve_config_cpu_runs_on_the_opencl_cpu_device(tmp_path: Path) -> None:
    assert "runs on OpenCL on" in _serve_placement(tmp_path, "cpu")
