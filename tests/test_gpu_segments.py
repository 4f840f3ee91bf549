"""GPU segments at run time: the same events out on OpenCL (PoCL), NumPy and plain nodes;
conversion failures, dead letters, counters, reductions, devices."""

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapters.gpu import devices
from engine.node import NodeFailure
from tests.gpu_support import BACKENDS, build, graph, needs_opencl, program_of, recorded, run


def close(a: object, b: object, rel: float = 1e-9) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


def same_events(got: list[dict[str, object]], want: list[dict[str, object]], rel: float = 1e-9) -> bool:
    return len(got) == len(want) and all(
        g.keys() == w.keys() and all(close(g[k], w[k], rel) for k in g) for g, w in zip(got, want))


# -- one answer everywhere -------------------------------------------------------------------

COLUMNS = {"a": "float64", "b": "float64", "n": "int32", "m": "int32"}
_FLOATS = st.floats(min_value=-100, max_value=100, allow_nan=False).map(lambda x: round(x, 3))
_INTS = st.integers(min_value=-50, max_value=50)


def _expr(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["a", "b", "n", "m", "1.5", "2", "0", "-3"])
    if depth == 0:
        return leaf
    sub = _expr(depth - 1)
    return st.one_of(
        leaf,
        st.builds(lambda x, op, y: f"({x} {op} {y})", sub, st.sampled_from(["+", "-", "*", "/", "//", "%"]), sub),
        st.builds(lambda f, x: f"{f}({x})", st.sampled_from(["sqrt", "exp", "log", "abs", "floor", "ceil", "round",
                                                             "sin", "atan", "tanh"]), sub),
        st.builds(lambda x, y: f"pow({x}, {y})", sub, st.sampled_from(["2", "0.5", "b"])),
        st.builds(lambda x, y, c: f"({x} if {c} else {y})", sub, sub, _cond(0)),
        st.builds(lambda x, y: f"clamp({x}, -10, {y})", sub, st.sampled_from(["10", "a"])),
        st.builds(lambda x, y: f"max({x}, {y})", sub, sub),
    )


def _cond(depth: int) -> st.SearchStrategy[str]:
    # Exact operations only: a condition on an inexact function result could sit on a
    # rounding boundary, where backends may legitimately differ by one ulp.
    exact = st.sampled_from(["a", "b", "n", "m", "(a + b)", "(n * m)", "(a - n)", "1"])
    operators = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
    compare = st.builds(lambda x, op, y: f"{x} {op} {y}", exact, operators, exact)
    if depth == 0:
        return compare
    both = st.builds(lambda x, op, y: f"({x} {op} {y})", compare, st.sampled_from(["and", "or"]), compare)
    return st.one_of(compare, both, compare.map(lambda c: f"not ({c})"))


_STEPS = st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["x", "y", "a"]), _expr(2), min_size=1, max_size=2).map(lambda s: ("map", s)),
    _cond(1).map(lambda c: ("filter", c)),
), min_size=1, max_size=3)
_EVENTS = st.lists(st.fixed_dictionaries({"a": _FLOATS, "b": _FLOATS, "n": _INTS, "m": _INTS, "id": st.just(0)}),
                   min_size=1, max_size=40)


def _chain(steps: list[tuple[str, object]], gpu: bool) -> tuple[str, str]:
    body, previous = [], "src"
    columns = dict(COLUMNS)
    for j, (kind, arg) in enumerate(steps):
        lines = [f"      s{j}:", f"        type: {'opencl.' if gpu else ''}{kind}", f"        from: {previous}",
                 "        with:"]
        if gpu and j == 0:
            lines.append("          columns: {" + ", ".join(f"{k}: {v}" for k, v in columns.items()) + "}")
        if kind == "map":
            assert isinstance(arg, dict)
            lines.append("          set: {" + ", ".join(f"{k}: \"{v}\"" for k, v in arg.items()) + "}")
        else:
            lines.append(f"          where: \"{arg}\"")
        body.append("\n".join(lines))
        previous = f"s{j}"
    return "\n".join(body), previous


def _known_columns(steps: list[tuple[str, object]]) -> bool:
    """Later steps read x and y only after a map set them (validation refuses otherwise)."""
    known = set(COLUMNS)
    for _, arg in steps:
        text = " ".join(arg.values()) if isinstance(arg, dict) else str(arg)
        reads_x = "x" in text.replace("exp", "").replace("max", "")
        if (reads_x and "x" not in known) or ("y" in text and "y" not in known):
            return False
        if isinstance(arg, dict):
            known |= set(arg)
    return True


@pytest.mark.parametrize("backend", BACKENDS)  # OpenCL: skipped without a device here, a failure in CI
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(steps=_STEPS, events=_EVENTS)
def test_opencl_numpy_and_plain_nodes_give_the_same_events(backend: str, steps: list[tuple[str, object]],
                                                          events: list[dict[str, object]]) -> None:
    assume(_known_columns(steps))
    for i, e in enumerate(events):
        e["id"] = i
    plain_body, plain_last = _chain(steps, gpu=False)
    gpu_body, gpu_last = _chain(steps, gpu=True)
    _, ok = run(graph(events, plain_body, "", plain_last))
    assert ok
    want = recorded("sink")
    _, ok = run(graph(events, gpu_body, "", gpu_last), backend)
    assert ok
    assert same_events(recorded("sink"), want), (steps, recorded("sink"), want)


# -- entry conversion, failures, counters ----------------------------------------------------

MIXED = [{"id": 0, "t": 20.0, "k": 1}, {"id": 1, "t": "hot", "k": 1}, {"id": 2, "k": 2},
         {"id": 3, "t": 30, "k": 2.5}, {"id": 4, "t": 40.0, "k": 0}, {"id": 5, "t": 10.0, "k": 3}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_and_mistyped_fields_are_dead_letters_and_the_rest_goes_on(backend: str) -> None:
    body = """
      conv:
        type: opencl.map
        from: src
        on_error: dead_letter
        with:
          columns: {t: float32, k: int32}
          set: {f: "t * 1.8 + 32", r: "100 / k"}
      dead:
        type: test.record
        from: conv.errors
"""
    runtime, ok = run(graph(MIXED, body, "", "conv"), backend)
    assert ok
    exact = [(e["id"], e["f"], e["r"]) for e in recorded("sink")]
    rounded = [(e["id"], round(e["f"], 3), round(e["r"], 4)) for e in recorded("sink")]
    assert exact == [(0, 68.0, 100.0), (5, 50.0, 100 / 3)] or rounded == [(0, 68.0, 100.0), (5, 50.0, 33.3333)]
    dead = {e["event"]["id"]: e["error"] for e in recorded("dead")}  # type: ignore[index]
    assert dead == {
        1: "field 't' is text, not a number (a float32 column)",
        2: "missing field 't' (a float32 column of the GPU segment)",
        3: "field 'k' is not a whole number (an int32 column)",
        4: "division by zero in set.r '100 / k'",
    }
    stats = runtime.stats()["nodes"]["conv"]  # type: ignore[index]
    assert (stats["in"], stats["out"], stats["errors"]) == (6, 6, 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_event_is_dead_lettered_as_its_node_received_it(backend: str) -> None:
    body = """
      first:
        type: opencl.map
        from: src
        with:
          columns: {t: float64}
          set: {t: "t - 10", u: "t * 2"}
      second:
        type: opencl.map
        from: first
        on_error: dead_letter
        with: {set: {v: "sqrt(t)"}}
      dead:
        type: test.record
        from: second.errors
"""
    events = [{"id": 0, "t": 14.0}, {"id": 1, "t": 5.0}]
    runtime, ok = run(graph(events, body, "", "second"), backend)
    assert ok
    assert recorded("sink") == [{"id": 0, "t": 4.0, "u": 28.0, "v": 2.0}]
    [dead] = recorded("dead")
    assert dead["event"] == {"id": 1, "t": -5.0, "u": 10.0}
    assert "sqrt(t)" in str(dead["error"])
    nodes = runtime.stats()["nodes"]  # type: ignore[index]
    assert (nodes["first"]["in"], nodes["first"]["out"]) == (2, 2)
    assert (nodes["second"]["in"], nodes["second"]["out"], nodes["second"]["errors"]) == (2, 2, 1)
    assert runtime.stats()["edges"]["first->second"]["enqueued"] == 2  # type: ignore[index]


@pytest.mark.parametrize("backend", BACKENDS)
def test_on_error_stop_fails_the_graph_with_the_expression(backend: str) -> None:
    body = """
      conv:
        type: opencl.map
        from: src
        on_error: stop
        with:
          columns: {t: float32}
          set: {l: "log(t)"}
"""
    runtime, ok = run(graph([{"t": 1.0}, {"t": 0.0}], body, "", "conv"), backend)
    assert not ok
    assert "node 'conv'" in runtime.failure and "log(t)" in runtime.failure


@pytest.mark.parametrize("backend", BACKENDS)
def test_filter_counts_per_member(backend: str) -> None:
    body = """
      conv:
        type: opencl.map
        from: src
        with:
          columns: {t: float32}
          set: {f: "t * 2"}
      hot:
        type: opencl.filter
        from: conv
        with: {where: "f > 50"}
"""
    events = [{"t": float(t)} for t in range(40)]
    runtime, ok = run(graph(events, body, "", "hot"), backend)
    assert ok
    assert [e["f"] for e in recorded("sink")] == [float(2 * t) for t in range(26, 40)]
    nodes = runtime.stats()["nodes"]  # type: ignore[index]
    assert (nodes["hot"]["in"], nodes["hot"]["out"]) == (40, 14)
    assert nodes["sink"]["in"] == 14


# -- reductions --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_reduce_by_key_per_batch(backend: str) -> None:
    body = """
      tot:
        type: opencl.reduce
        from: src
        on_error: dead_letter
        with:
          columns: {k: int32, v: float32}
          batch_size: 100
          by: k
          groups: 3
          fields: {n: "count()", s: "sum(v)", lo: "min(v)", hi: "max(v)", avg: "mean(v)"}
      dead:
        type: test.record
        from: tot.errors
"""
    events = [{"k": i % 4, "v": float(i)} for i in range(200)]
    runtime, ok = run(graph(events, body, "", "tot"), backend)
    assert ok
    got = recorded("sink")
    want = []
    for batch in (range(0, 100), range(100, 200)):
        for k in range(3):
            vs = [float(i) for i in batch if i % 4 == k]
            want.append({"k": k, "n": len(vs), "s": sum(vs), "lo": min(vs), "hi": max(vs), "avg": sum(vs) / len(vs)})
    assert same_events(got, want, 1e-6)
    assert len(recorded("dead")) == 50
    assert recorded("dead")[0]["error"] == "key is outside 0 to 2 in by 'k'"
    nodes = runtime.stats()["nodes"]  # type: ignore[index]
    assert (nodes["tot"]["in"], nodes["tot"]["out"], nodes["tot"]["errors"]) == (200, 56, 50)


def test_reduce_per_window_emits_when_the_window_closes() -> None:
    import numpy as np

    from adapters.gpu.numpy_reduce import Partials
    from adapters.gpu.reduce_window import ReduceTotals
    program = program_of([("r", "opencl.reduce", {"columns": {"v": "int32"}, "window": "10s",
                                                  "fields": {"s": "sum(v)", "n": "count()"}})])
    totals = ReduceTotals(program.reduce)  # type: ignore[arg-type]
    one = Partials(np.array([2]), {"s": np.array([5])})
    assert totals.add(one, 101.0) == []
    assert totals.add(one, 109.0) == []
    assert totals.deadline() == 110.0
    assert totals.close_due(109.9) == []
    assert totals.add(one, 112.0) == [{"s": 10, "n": 4, "window_start": 100.0, "window_end": 110.0}]
    assert totals.close_all() == [{"s": 5, "n": 2, "window_start": 110.0, "window_end": 120.0}]


# -- devices ---------------------------------------------------------------------------------

SIMPLE = """
      conv:
        type: opencl.map
        from: src
        with:
          columns: {t: float64}
          set: {f: "t * 2"}
"""


def test_auto_without_a_gpu_runs_on_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_devices", lambda: [])
    runtime = build(graph([{"t": 1.0}], SIMPLE, "", "conv"), "auto")
    [segment] = [s.segment for s in runtime.segments if hasattr(s.segment, "program")]
    assert segment.placement.startswith("NumPy")  # type: ignore[attr-defined]


@needs_opencl
def test_cpu_setting_runs_on_the_opencl_cpu_device() -> None:
    runtime = build(graph([{"t": 1.0}], SIMPLE, "", "conv"), "cpu")
    [segment] = [s.segment for s in runtime.segments if hasattr(s.segment, "program")]
    assert segment.placement.startswith("OpenCL on")  # type: ignore[attr-defined]


def test_float64_on_a_device_without_it_is_refused_before_running(monkeypatch: pytest.MonkeyPatch) -> None:
    apple = devices.DeviceInfo(0, "Apple", "Apple M2", "gpu", False, 8 << 30, 2 << 30, 10, "OpenCL 1.2", "Apple")
    monkeypatch.setattr(devices, "list_devices", lambda: [apple])
    with pytest.raises(NodeFailure) as failure:
        build(graph([{"t": 1.0}], SIMPLE, "", "conv"), "auto")
    message = str(failure.value)
    assert "'conv'" in message and "cl_khr_fp64" in message and "float32" in message


def test_float64_without_it_runs_on_numpy_when_fallback_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    apple = devices.DeviceInfo(0, "Apple", "Apple M2", "gpu", False, 8 << 30, 2 << 30, 10, "OpenCL 1.2", "Apple")
    monkeypatch.setattr(devices, "list_devices", lambda: [apple])
    runtime = build(graph([{"t": 1.0}], SIMPLE, "", "conv"), "auto", "numpy")
    [segment] = [s.segment for s in runtime.segments if hasattr(s.segment, "program")]
    assert segment.placement.startswith("NumPy")  # type: ignore[attr-defined]


def kernel_node(source: str) -> str:
    """An opencl.kernel node `k` reading column x and writing y."""
    lines = "\n".join("            " + line for line in source.splitlines())
    return f"""
      k:
        type: opencl.kernel
        from: src
        with:
          columns: {{x: float32}}
          inputs: {{x: float32}}
          outputs: {{y: float32}}
          source: |
{lines}
"""


def test_a_kernel_node_on_numpy_is_refused_with_the_fix() -> None:
    body = kernel_node("y = x * 2.0f;")
    with pytest.raises(NodeFailure) as failure:
        build(graph([{"x": 1.0}], body, "", "k"), "numpy")
    assert "opencl.kernel" in str(failure.value) and "HEADRACE_OPENCL_DEVICE" in str(failure.value)


@needs_opencl
def test_a_kernel_node_runs_user_opencl_c_fused_with_a_map() -> None:
    body = kernel_node("if (x < 0.0f) { y = 0.0f; return; }\ny = x * x + 1.0f;") + """
      m:
        type: opencl.map
        from: k
        with: {set: {z: "y * 2"}}
"""
    runtime, ok = run(graph([{"x": 3.0}, {"x": -1.0}], body, "", "m"), "cpu")
    assert ok
    assert recorded("sink") == [{"x": 3.0, "y": 10.0, "z": 20.0}, {"x": -1.0, "y": 0.0, "z": 0.0}]
    [segment] = [s.segment for s in runtime.segments if hasattr(s.segment, "program")]
    assert segment.run.runner(segment.program).kernels == 1  # type: ignore[attr-defined]


@needs_opencl
def test_a_driver_build_error_names_the_node_and_line() -> None:
    body = kernel_node("y = x *;")
    with pytest.raises(NodeFailure) as failure:
        build(graph([{"x": 1.0}], body, "", "k"), "cpu")
    assert "'k'" in str(failure.value) and "y = x *;" in str(failure.value)


# -- the shipped example ---------------------------------------------------------------------

def _example_expected() -> dict[int, tuple[int, float, float]]:
    totals: dict[int, list[float]] = {}
    hottest: dict[int, float] = {}
    for i in range(100000):
        sensor, temp_c, humidity = i % 16, 15 + (i % 40) * 0.5, 30 + (i % 7) * 10
        temp_f = temp_c * 1.8 + 32
        if temp_f > 80 and humidity >= 50:
            totals.setdefault(sensor, []).append(min(max(math.sqrt(temp_c * temp_c + humidity) / 10, 0), 5))
            hottest[sensor] = max(hottest.get(sensor, -1e9), temp_f)
    return {k: (len(v), hottest[k], sum(v) / len(v)) for k, v in totals.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_example_graph_computes_per_sensor_totals(backend: str, tmp_path: "object") -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root), HEADRACE_OPENCL_DEVICE=backend)
    done = subprocess.run([sys.executable, "-m", "adapters.cli.main", "run", str(root / "graphs/sensor_scores.yaml")],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    rows = map(json.loads, done.stdout.splitlines())
    got = {e["sensor"]: (e["readings"], e["hottest_f"], e["mean_score"]) for e in rows}
    want = _example_expected()
    assert got.keys() == want.keys() and len(got) == 16
    for sensor, (n, hot, score) in want.items():
        assert got[sensor][0] == n
        assert math.isclose(got[sensor][1], hot, rel_tol=1e-6) and math.isclose(got[sensor][2], score, rel_tol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tap_on_a_link_inside_a_segment_sees_the_events_crossing_it(backend: str) -> None:
    import asyncio
    body = """
      conv:
        type: opencl.map
        from: src
        with:
          columns: {t: float64}
          set: {f: "t * 2"}
      hot:
        type: opencl.filter
        from: conv
        with: {where: "f > 3"}
"""
    seen: list[dict[str, object]] = []
    runtime = build(graph([{"t": 1.0}, {"t": 2.0}, {"t": 3.0}], body, "", "hot"), backend)
    runtime.controls.tap("conv->hot", seen.extend)
    assert asyncio.run(runtime.run())
    assert seen == [{"t": 1.0, "f": 2.0}, {"t": 2.0, "f": 4.0}, {"t": 3.0, "f": 6.0}]
    assert recorded("sink") == [{"t": 2.0, "f": 4.0}, {"t": 3.0, "f": 6.0}]


def test_an_integer_literal_out_of_range_for_its_column_is_a_load_problem() -> None:
    import textwrap

    from loader.api import load_text
    from tests.gpu_support import gpu_registry
    text = graph([{"n": 1}], """
      conv:
        type: opencl.map
        from: src
        with:
          columns: {n: int32}
          set: {m: "n + 3000000000"}
""", "", "conv")
    result = load_text("g.yaml", textwrap.dedent(text), gpu_registry())
    [problem] = [p for p in result.problems if p.severity == "error"]
    assert (problem.code, problem.message) == ("HR048", "the literal 3000000000 is out of range for int32")
    line = textwrap.dedent(text).splitlines()[problem.line - 1]
    assert line[problem.column - 1:].startswith("3000000000")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_undefined_math_result_of_literals_alone_fails_the_event(backend: str) -> None:
    body = """
      conv:
        type: opencl.map
        from: src
        with:
          columns: {t: float64}
          set: {y: "log(0)"}
"""
    runtime, ok = run(graph([{"t": 1.0}], body, "", "conv"), backend)
    assert ok and recorded("sink") == []
    assert runtime.stats()["nodes"]["conv"]["errors"] == 1  # type: ignore[index]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_segment_fed_by_a_durable_edge_runs_each_delivery_whole_before_it_is_acknowledged(
        backend: str, tmp_path: "object") -> None:
    """A batch_size and max_delay far beyond the input would hold every event until the end;
    behind a durable edge the segment runs what each take delivered, so the acknowledgement
    that removes events from disk comes after they went through, and one run per delivery."""
    from adapters.storage.lmdb_edge import LmdbEdge, durable_edges
    from adapters.storage.lmdb_store import LmdbStore

    events = [{"x": float(i)} for i in range(300)]
    body = """
      double:
        type: opencl.map
        from: {node: src, edge: {durable: true, capacity: 64}}
        with: {columns: {x: float32}, batch_size: 100000, max_delay: 1h, set: {y: "x * 2"}}
"""
    store = LmdbStore(tmp_path)  # type: ignore[arg-type]
    runtime, ok = run(graph(events, body, "", "double"), backend, durable=durable_edges(store))
    assert ok
    assert recorded("sink") == [{"x": float(i), "y": 2.0 * i} for i in range(300)]
    [segment] = [s.segment for s in runtime.segments if hasattr(s.segment, "program")]
    assert 300 / 64 <= segment.batches <= 300 / 10  # per delivery: not all at once, not one by one
    [edge] = [e for e in runtime.edges.values() if isinstance(e, LmdbEdge)]
    assert store.read(lambda txn: sum(1 for _ in txn.cursor(edge.table.db))) == 0
    store.close()
