"""The OpenCL backend gives numpy_backend's Outcome: expressions, filters, reduce, user kernels.

Runs on the first OpenCL device that can build a kernel (PoCL's CPU device is enough); the
module is skipped where PyOpenCL or such a device is missing, and fails under CI=true.
"""

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import require
from tests.gpu_support import NO_OPENCL, program_of

require(importlib.util.find_spec("pyopencl"), NO_OPENCL)
import pyopencl as cl  # noqa: E402

from adapters.gpu import numpy_backend, opencl_backend  # noqa: E402
from adapters.gpu.numpy_backend import NOT_ENTERED, element_steps, run_numpy  # noqa: E402
from adapters.gpu.opencl_backend import KernelBuildError, OpenclRunner  # noqa: E402
from adapters.gpu.program import NOT_FINITE  # noqa: E402


def _usable_device():
    """The first device whose compiler works (a PoCL built without knowing the CPU cannot)."""
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        return None
    for platform in platforms:
        for device in platform.get_devices():
            try:
                cl.Program(cl.Context(devices=[device]), "__kernel void probe(__global int* a) { a[0] = 1; }").build()
            except cl.Error:
                continue
            return device
    return None


DEVICE = _usable_device()
require(DEVICE is not None, NO_OPENCL)
FP64 = opencl_backend.has_fp64(DEVICE)


@pytest.fixture(scope="module")
def ctx():
    return cl.Context(devices=[DEVICE])


@pytest.fixture(scope="module")
def queue(ctx):
    return cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)


def program(*members):
    return program_of(list(members))


def head(columns, **sets):
    return ("a", "opencl.map", {"columns": columns, "set": sets})


def data(columns, n=3000, seed=7):
    """Random columns with the values that matter: zeros, -1, signed zero, extremes, exact multiples."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, dtype in columns.items():
        if dtype in ("float32", "float64"):
            values = rng.normal(0, 4, n)
            values[rng.random(n) < 0.05] = 0.0
            special = [0.0, -0.0, 1.0, -1.0, 6.0, -6.0, 3.0, -3.0, 0.5, -2.5, 2.5, 1e-3, 7.5, -7.5,
                       np.nan, np.inf, -np.inf]
            values[: len(special)] = special
            values[len(special): 200] = np.round(values[len(special): 200])
            out[name] = values.astype(dtype)
        elif dtype in ("int32", "int64"):
            info = np.iinfo(dtype)
            values = rng.integers(-40, 40, n).astype(dtype)
            special = [0, -1, 1, info.min, info.max, -7, 7, 3, -3, info.min, -1, 0]
            values[: len(special)] = special
            values[20:60] = rng.integers(info.min, info.max, 40, dtype=dtype, endpoint=True)
            out[name] = values
        else:
            out[name] = rng.random(n) < 0.5
    return out


def entered_rows(n, seed=3):
    entered = np.random.default_rng(seed).random(n) > 0.05
    entered[:40] = True
    return entered


def compare(prog, got, want):
    """Same stage and code everywhere; same written values on rows that went through."""
    np.testing.assert_array_equal(got.stage, want.stage)
    np.testing.assert_array_equal(got.code, want.code)
    assert set(got.columns) == set(want.columns)
    done = want.stage == len(element_steps(prog))
    for name, column in want.columns.items():
        assert got.columns[name].dtype == column.dtype, name
        a, b = got.columns[name][done], column[done]
        if np.issubdtype(b.dtype, np.floating):
            rtol = 2e-5 if b.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert (want.partials is None) == (got.partials is None)
    if want.partials is not None:
        np.testing.assert_array_equal(got.partials.count, want.partials.count)
        assert set(got.partials.values) == set(want.partials.values)
        for name, value in want.partials.values.items():
            assert got.partials.values[name].dtype == value.dtype, name
            if value.dtype == np.float64:
                np.testing.assert_allclose(got.partials.values[name], value, rtol=1e-6, err_msg=name)
            else:
                np.testing.assert_array_equal(got.partials.values[name], value, err_msg=name)


def both(ctx, queue, prog, columns, entered):
    runner = OpenclRunner(prog, ctx, queue)
    got = runner.run(columns, entered)
    compare(prog, got, run_numpy(prog, columns, entered))
    return runner, got


SINGLE = {"f": "float32", "g": "float32", "z": "float32", "i": "int32", "j": "int32", "b": "bool"}
DOUBLE = {"d": "float64", "e": "float64", "l": "int64", "m": "int64", "i": "int32", "f": "float32", "b": "bool"}

SINGLE_EXPRESSIONS = [
    "f * 1.5 + g", "f - g * 2", "-f", "f / g", "f // g", "f % g", "f // -2.5", "f % 2.5", "f ** 2", "g ** 0.5",
    "pow(f, 3)", "pow(g, 0.5)", "i + j", "i - j", "i * j", "-i", "i // j", "i % j", "i // -1", "i % -1",
    "i // 7", "i % -7", "i * 2000000000", "i + -2147483648", "i / j", "sqrt(f)", "exp(f)", "log(f)", "log2(f)",
    "log10(f)", "sin(f)", "cos(f)", "tan(f)", "asin(f / 10)", "acos(f)", "atan(f)", "tanh(f)", "atan2(f, g)",
    "hypot(f, g)", "abs(f)", "abs(i)", "floor(f)", "ceil(f)", "round(f)", "round(i)", "floor(i)", "min(f, g)",
    "max(f, g, 0.5)", "min(i, j)", "max(i, j, 3)", "clamp(f, -1, 1)", "clamp(f, g, 0)", "clamp(i, -5, 5)",
    "int(f)", "int(f * 1e10)", "float(i)", "f > g", "i == j", "f <= g", "i != 3", "0 < f < 2", "b == (f > 0)",
    "not b", "b and f > 0", "b or i > 3", "g != 0 and f / g > 1", "f / g if g != 0 else 0", "z == 0 or f / z > 0",
    "j != 0 and i // j > 1 or f > 0", "i if b else j", "f if b else i", "b + 1", "b * f", "f * 1e38 * 10",
    "exp(f * 100)", "sqrt(-abs(f) - 1) + 1 / z", "1 / z + sqrt(-abs(f) - 1)", "f / z", "z // z", "z % f",
    "i % 0", "f / 0", "min(sqrt(f), 1)", "b if f > 0 else not b", "(f > 0) == b", "f + 1e-3 * g",
    "f * f * f - 3 * f + 1", "(f - g) / (f + g)", "i % j == 0", "round(f / 2) * 2", "f * 1.1 - 0.3", "i * 1e10",
]
DOUBLE_EXPRESSIONS = [
    "d * e + 1.1", "d / e", "d // e", "d % e", "d // 0.5", "d % -1.5", "l + m", "l * m", "-l", "l // m", "l % m",
    "l // -1", "l / 3", "l + i", "d * f", "f * 1.1", "sqrt(d)", "log(e)", "exp(d)", "pow(d, e)", "int(d)",
    "int(d * 1e300)", "float(l)", "min(d, e, f)", "max(l, m)", "clamp(l, -3, 3)", "abs(l)", "round(d)",
    "d > f", "l == m", "e != 0 and d / e > 0", "d if b else l", "i // 3 + l", "d ** 0.5", "l * 3000000000",
]


@pytest.mark.parametrize("expression", SINGLE_EXPRESSIONS)
def test_float32_expressions_match_numpy(ctx, queue, expression):
    prog = program(head(SINGLE, y=expression))
    columns = data(SINGLE)
    both(ctx, queue, prog, columns, entered_rows(len(columns["f"])))


@pytest.mark.skipif(not FP64, reason="the device has no float64")
@pytest.mark.parametrize("expression", DOUBLE_EXPRESSIONS)
def test_float64_expressions_match_numpy(ctx, queue, expression):
    prog = program(head(DOUBLE, y=expression))
    columns = data(DOUBLE)
    both(ctx, queue, prog, columns, entered_rows(len(columns["d"])))


def test_errors_in_one_expression_keep_numpy_order(ctx, queue):
    """Two failing operands: the first in evaluation order (left to right) names the error."""
    prog = program(head(SINGLE, y="sqrt(f) + 1 / z", w="log(g) - f // z"))
    columns = data(SINGLE)
    columns["z"][:] = 0
    _, got = both(ctx, queue, prog, columns, np.ones(len(columns["f"]), dtype=bool))
    assert {int(c) % 4 for c in got.code} >= {1, 2}


def test_chained_filters_and_maps_overwrite_inputs(ctx, queue):
    prog = program(
        head(SINGLE, f="f * 2", x="f + g", flag="i > 0"),  # every `set` reads the incoming f
        ("keep", "opencl.filter", {"where": "x > -3 and flag or b"}),
        ("again", "opencl.map", {"set": {"f": "int(f)", "y": "x / g", "i": "i // 2"}}),  # f becomes an int32
        ("small", "opencl.filter", {"where": "f < 5 and y != 0"}),
        ("last", "opencl.map", {"set": {"f": "f * 1.5", "z": "float(i) + f"}}),
    )
    assert prog.written["f"] == "float32"
    columns = data(SINGLE)
    runner, got = both(ctx, queue, prog, columns, entered_rows(len(columns["f"])))
    assert runner.kernels == 1
    assert set(np.unique(got.stage)) >= {1, 3, 5, NOT_ENTERED}
    assert got.columns["flag"].dtype == np.bool_


def test_rows_not_entered(ctx, queue):
    prog = program(head(SINGLE, y="f / z"))
    columns = data(SINGLE, n=300)
    entered = np.zeros(300, dtype=bool)
    _, got = both(ctx, queue, prog, columns, entered)
    assert (got.stage == NOT_ENTERED).all() and (got.code == 0).all()


def test_empty_batch(ctx, queue):
    columns = {name: values[:0] for name, values in data(SINGLE).items()}
    both(ctx, queue, program(head(SINGLE, y="f + 1")), columns, np.zeros(0, dtype=bool))
    reduce = ("r", "opencl.reduce", {"by": "i", "groups": 3, "fields": {"n": "count()", "lo": "min(f)", "s": "sum(j)"}})
    both(ctx, queue, program(head(SINGLE, y="f + 1"), reduce), columns, np.zeros(0, dtype=bool))


def test_columns_named_like_c_keywords(ctx, queue):
    columns = {"double": "float32", "int": "int32", "switch": "float32"}
    prog = program(head(columns, kernel="double * 2 + switch", do="int // 2"))
    both(ctx, queue, prog, data(columns), entered_rows(3000))


def test_kernel_counts(ctx, queue):
    chain = [head(SINGLE, x="f + g"), ("keep", "opencl.filter", {"where": "x > 0"}),
             ("more", "opencl.map", {"set": {"y": "x * 2"}})]
    reduce = ("r", "opencl.reduce", {"fields": {"n": "count()", "s": "sum(y)"}})
    assert OpenclRunner(program(*chain), ctx, queue).kernels == 1
    assert OpenclRunner(program(*chain, reduce), ctx, queue).kernels == 2
    only = ("r", "opencl.reduce", {"columns": SINGLE, "fields": {"n": "count()", "s": "sum(f)"}})
    assert OpenclRunner(program(only), ctx, queue).kernels == 1


REDUCE_FIELDS = {"n": "count()", "total": "sum(x)", "low": "min(x)", "high": "max(i)", "avg": "mean(i)",
                 "flags": "sum(b)", "ints": "sum(j)", "top": "max(f)", "mid": "mean(f)"}


@pytest.mark.parametrize("by", ["key", ""])
def test_reduce_matches_numpy(ctx, queue, by):
    params = {"fields": REDUCE_FIELDS} | ({"by": "key", "groups": 5} if by else {})
    prog = program(head(SINGLE, x="f * 2", key="i % 7 - 1"), ("pos", "opencl.filter", {"where": "g > -4"}),
                   ("r", "opencl.reduce", params))
    columns = data(SINGLE)
    runner, got = both(ctx, queue, prog, columns, entered_rows(len(columns["f"])))
    assert got.columns == {} and runner.kernels == 2
    if by:  # keys -1 and 5 are outside 0..4: those rows fail at the reduce, their stage stays
        assert (got.code == prog.reduce.code + 1).sum() > 0
    assert (got.stage == 3).sum() == got.partials.count.sum()


def test_reduce_alone_reads_entry_columns(ctx, queue):
    columns = {"k": "int64", "v": "float32", "w": "int32"}
    prog = program(("r", "opencl.reduce", {"columns": columns, "by": "k", "groups": 4,
                                           "fields": {"n": "count()", "s": "sum(v)", "lo": "min(w)", "kk": "sum(k)"}}))
    values = data(columns)
    values["k"] = np.random.default_rng(1).integers(-1, 5, 3000)
    runner, _ = both(ctx, queue, prog, values, entered_rows(3000))
    assert runner.kernels == 1


def test_reduce_with_many_groups(ctx, queue):
    columns = {"k": "int32", "v": "float32"}
    prog = program(("r", "opencl.reduce", {"columns": columns, "by": "k", "groups": 20000,
                                           "fields": {"n": "count()", "s": "sum(v)", "hi": "max(v)"}}))
    values = {"k": np.random.default_rng(2).integers(0, 20000, 50000).astype(np.int32),
              "v": np.random.default_rng(3).normal(size=50000).astype(np.float32)}
    both(ctx, queue, prog, values, np.ones(50000, dtype=bool))


def kernel_program(source, outputs=None, inputs=None, after=()):
    return program(head({"x": "float32", "n": "int32"}, y="x + 1"),
                   ("score", "opencl.kernel", {"inputs": inputs or {"x": "float32"},
                                               "outputs": outputs or {"score": "float32"}, "source": source}),
                   *after)


def run_kernel(ctx, queue, prog, x, n=None):
    x = np.asarray(x, dtype=np.float32)
    columns = {"x": x, "n": np.zeros(len(x), dtype=np.int32) if n is None else np.asarray(n, dtype=np.int32)}
    return OpenclRunner(prog, ctx, queue).run(columns, np.ones(len(x), dtype=bool))


def test_user_kernel(ctx, queue):
    got = run_kernel(ctx, queue, kernel_program("score = x * x + 1.0f;"), [1, -2, 0.5])
    np.testing.assert_allclose(got.columns["score"], [2, 5, 1.25])
    assert (got.stage == 2).all() and (got.code == 0).all()


def test_user_kernel_returns_early_and_fails_on_infinity(ctx, queue):
    source = "if (x < 0.0f) return;\nscore = x > 100.0f ? INFINITY : sqrt(x);"
    prog = kernel_program(source, after=[("pos", "opencl.filter", {"where": "score > 0"})])
    got = run_kernel(ctx, queue, prog, [4, -1, 200, 9])
    step = prog.steps[1]
    assert list(got.code) == [0, 0, step.code + NOT_FINITE, 0]
    assert list(got.stage) == [3, 2, 1, 3]
    np.testing.assert_allclose(got.columns["score"][[0, 3]], [2, 3])


def test_user_kernel_overwrites_its_input(ctx, queue):
    prog = kernel_program("x = x * 2.0f; twice = (int)x;", outputs={"x": "float32", "twice": "int32"})
    got = run_kernel(ctx, queue, prog, [1.5, -3])
    np.testing.assert_allclose(got.columns["x"], [3, -6])
    assert list(got.columns["twice"]) == [3, -6]
    assert got.columns["y"].tolist() == [2.5, -2]


def test_user_kernel_build_error_names_node_and_line(ctx, queue):
    prog = kernel_program("float t = x;\nscore = t * ;")
    with pytest.raises(KernelBuildError) as caught:
        OpenclRunner(prog, ctx, queue)
    message = caught.value.message
    assert message.startswith("opencl.kernel 'score': the OpenCL compiler refused the kernel: ")
    assert "source line 2" in message and "`score = t * ;`" in message and "\n" not in message
    assert caught.value.member == 1 and caught.value.source_line == 2


def test_second_runner_builds_nothing(ctx, queue):
    members = [head(SINGLE, y="f * 3.25 + g"), ("keep", "opencl.filter", {"where": "y > 0.125"})]
    first = OpenclRunner(program(*members), ctx, queue)
    builds = opencl_backend.BUILDS
    second = OpenclRunner(program(*members), ctx, queue)
    assert builds == opencl_backend.BUILDS and second.source == first.source
    columns = data(SINGLE)
    entered = entered_rows(3000)
    np.testing.assert_array_equal(first.run(columns, entered).stage, second.run(columns, entered).stage)


def test_timing_with_and_without_profiling(ctx, queue):
    prog = program(head(SINGLE, y="f * 2"))
    columns = data(SINGLE)
    for q in (queue, cl.CommandQueue(ctx)):
        runner = OpenclRunner(prog, ctx, q)
        runner.run(columns, entered_rows(3000))
        assert set(runner.last_timing) == {"upload", "kernel", "download"}
        assert all(t >= 0 for t in runner.last_timing.values()) and runner.last_timing["kernel"] > 0


def test_generated_source_fuses_and_guards(ctx, queue):
    runner = OpenclRunner(program(head(SINGLE, y="f / g"), ("keep", "opencl.filter", {"where": "y > 1"})), ctx, queue)
    assert runner.source.count("__kernel") == 1
    assert "if (i >= n) return;" in runner.source and "FP_CONTRACT OFF" in runner.source


finite32 = st.floats(-1e6, 1e6, width=32)
int32s = st.integers(-(2 ** 31), 2 ** 31 - 1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(finite32, finite32, int32s, int32s), min_size=1, max_size=64))
def test_floor_division_and_modulo_like_python(ctx, queue, rows):
    columns = {"f": "float32", "g": "float32", "i": "int32", "j": "int32"}
    prog = program(head(columns, q="f // g", r="f % g", iq="i // j", ir="i % j", s="f - g * 0.75"))
    values = {name: np.array([row[k] for row in rows], dtype=dtype) for k, (name, dtype) in enumerate(columns.items())}
    runner = OpenclRunner(prog, ctx, queue)
    got = runner.run(values, np.ones(len(rows), dtype=bool))
    want = run_numpy(prog, values, np.ones(len(rows), dtype=bool))
    np.testing.assert_array_equal(got.code, want.code)
    done = want.code == 0
    for name in ("q", "r", "iq", "ir", "s"):  # exact: these operations are correctly rounded on both sides
        np.testing.assert_array_equal(got.columns[name][done], want.columns[name][done], err_msg=name)


def test_one_runner_over_batches_of_different_sizes(ctx, queue):
    """Device buffers are kept between runs; a smaller batch after a larger one reads only its rows."""
    prog = program(head(SINGLE, x="f * 2", key="i % 4"), ("pos", "opencl.filter", {"where": "g > -2"}),
                   ("r", "opencl.reduce", {"by": "key", "groups": 4, "fields": {"n": "count()", "s": "sum(x)"}}))
    runner = OpenclRunner(prog, ctx, queue)
    for n, seed in ((3000, 1), (250, 2), (5000, 3)):
        columns = data(SINGLE, n=n, seed=seed)
        entered = entered_rows(n, seed)
        compare(prog, runner.run(columns, entered), run_numpy(prog, columns, entered))


def test_device_without_float64(ctx, queue, monkeypatch):
    """Float sums total in float on such a device, and a float64 column is refused by name."""
    monkeypatch.setattr(opencl_backend, "has_fp64", lambda device: False)
    prog = program(head(SINGLE, x="f * 2"), ("r", "opencl.reduce", {"fields": {"s": "sum(x)", "m": "mean(g)"}}))
    runner = OpenclRunner(prog, ctx, queue)
    assert "double" not in runner.source
    columns = data(SINGLE)
    columns["f"][:20] = 1.0  # finite totals
    columns["g"][:20] = 1.0
    entered = entered_rows(3000)
    got, want = runner.run(columns, entered), run_numpy(prog, columns, entered)
    np.testing.assert_array_equal(got.stage, want.stage)
    for name in ("s", "m"):
        np.testing.assert_allclose(got.partials.values[name], want.partials.values[name], rtol=1e-4)
    with pytest.raises(KernelBuildError, match=r"GPU segment 'a': the device .* has no float64"):
        OpenclRunner(program(head({"d": "float64"}, y="d + 1")), ctx, queue)


@pytest.mark.parametrize("threads", [1, 3])
def test_numpy_split_in_chunks_and_threads_matches_opencl(ctx, queue, monkeypatch, threads):
    """run_numpy cuts a batch into chunks shared out among threads; the kernel sees it whole."""
    monkeypatch.setattr(numpy_backend, "CHUNK", 128)
    prog = program(head(SINGLE, x="f / z + g", key="i % 7 - 1", y="sqrt(f) * 2 if b else f // g"),
                   ("keep", "opencl.filter", {"where": "x > -3 or b"}),
                   ("r", "opencl.reduce", {"fields": REDUCE_FIELDS, "by": "key", "groups": 5}))
    columns = data(SINGLE)
    columns["z"][::9] = 0
    entered = entered_rows(len(columns["f"]))
    got = OpenclRunner(prog, ctx, queue).run(columns, entered)
    compare(prog, got, run_numpy(prog, columns, entered, threads=threads))
    assert {int(c) % 4 for c in got.code if c} >= {1, 2} and (got.stage == 1).any()


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "no host-allocated buffers"])
def test_batches_of_changing_size_reuse_the_download_areas(ctx, queue, monkeypatch, pinned):
    """Downloads land in host memory kept from batch to batch (pinned where the driver
    allows); a smaller batch after a larger one, and a larger after a smaller, come out right."""
    if not pinned:
        def refuse(*args, **kwargs):
            raise cl.RuntimeError("no host-allocated buffers here")
        monkeypatch.setattr(opencl_backend.cl, "enqueue_map_buffer", refuse)
    prog = program(head(SINGLE, y="f * 2 + g", k="i // 3"), ("pos", "opencl.filter", {"where": "y > -5"}))
    runner = OpenclRunner(prog, ctx, queue)
    for n in (3000, 250, 3000, 7000):
        columns = data(SINGLE, n=n, seed=n)
        entered = entered_rows(n, seed=n)
        got = runner.run(columns, entered)
        assert len(got.stage) == n and len(got.columns["y"]) == n
        compare(prog, got, run_numpy(prog, columns, entered))
    held = [buf for buf, _ in runner._landing.values()]
    assert all((buf is not None) == pinned for buf in held) and len(held) == 4  # stage, code, y, k
