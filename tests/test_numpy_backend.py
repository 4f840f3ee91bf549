"""The NumPy backend over batches of many chunks: the rows a chunk or a thread boundary
falls between come out as if the batch were one piece, checked row by row against Python."""

import math

import numpy as np
import pytest

from adapters.gpu import numpy_backend as nb
from adapters.gpu.program import DIVISION_BY_ZERO, NOT_FINITE, UNDEFINED, build_program
from engine.durations import duration_ms

COLUMNS = {"f": "float32", "g": "float32", "i": "int32"}
CHAIN = build_program([
    ("div", "opencl.map", {"columns": COLUMNS, "set": {"x": "f / g"}}),
    ("small", "opencl.filter", {"where": "x < 50"}),
    ("root", "opencl.map", {"set": {"y": "sqrt(x)"}}),
    ("third", "opencl.map", {"set": {"k": "i // 3", "x": "x * 2"}}),
], duration_ms)
N = 64 * 9 + 13  # nine whole chunks of 64 and a short one


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nb, "CHUNK", 64)


def batch(seed: int = 5) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 20, N).astype(np.float32)
    g = rng.normal(0, 2, N).astype(np.float32)
    g[rng.random(N) < 0.08] = 0  # division by zero
    f[rng.random(N) < 0.03] = 3e38  # 3e38 / 0.5 is infinite in float32
    g[f == 3e38] = 0.5
    i = rng.integers(-1000, 1000, N).astype(np.int32)
    entered = rng.random(N) > 0.1
    entered[64:128] = False  # a whole chunk that never entered
    entered[128:192] = True  # and one where every row did
    return {"f": f, "g": g, "i": i}, entered


def expected(columns: dict[str, np.ndarray], entered: np.ndarray) -> list[tuple[int, int, float, float, int]]:
    """Row by row in Python (float32 arithmetic): (stage, reason, x, y, k); reason 0 = no error."""
    rows = []
    for f, g, i, ok in zip(columns["f"], columns["g"], columns["i"], entered, strict=True):
        if not ok:
            rows.append((nb.NOT_ENTERED, 0, 0.0, 0.0, 0))
            continue
        if g == 0:
            rows.append((0, DIVISION_BY_ZERO, 0.0, 0.0, 0))
            continue
        with np.errstate(over="ignore"):
            x = f / g
        if not math.isfinite(x):
            rows.append((0, NOT_FINITE, 0.0, 0.0, 0))
        elif not x < 50:
            rows.append((1, 0, 0.0, 0.0, 0))
        elif x < 0:
            rows.append((2, UNDEFINED, 0.0, 0.0, 0))
        else:
            rows.append((4, 0, float(x * np.float32(2)), float(np.sqrt(x)), int(i) // 3))
    return rows


@pytest.mark.parametrize("threads", [1, 2, 3, 16])
def test_every_row_comes_out_as_python_computes_it_whatever_the_split(threads: int) -> None:
    columns, entered = batch()
    got = nb.run_numpy(CHAIN, columns, entered, threads=threads)
    want = expected(columns, entered)
    assert [int(s) for s in got.stage] == [w[0] for w in want]
    assert [int(c) % 4 for c in got.code] == [w[1] for w in want]
    failed = got.code != 0
    assert [CHAIN.member_of(int(c)) for c in got.code[failed]] == [int(s) for s in got.stage[failed]]
    done = got.stage == 4
    assert done.sum() > N // 3 and (got.stage == 1).any() and (got.stage == 2).any()
    assert got.columns["x"][done].tolist() == [w[2] for w in want if w[0] == 4]
    assert got.columns["y"][done].tolist() == [w[3] for w in want if w[0] == 4]
    assert got.columns["k"][done].tolist() == [w[4] for w in want if w[0] == 4]
    assert list(entered)[64:128] == [False] * 64  # the caller's array is not written


def test_a_reduce_over_many_chunks_counts_every_row_once() -> None:
    program = build_program([
        ("m", "opencl.map", {"columns": {"v": "float32", "key": "int32"}, "set": {"w": "1 / v"}}),
        ("r", "opencl.reduce", {"by": "key", "groups": 4,
                                "fields": {"n": "count()", "s": "sum(w)", "hi": "max(v)"}}),
    ], duration_ms)
    rng = np.random.default_rng(9)
    v = rng.integers(-3, 4, N).astype(np.float32)  # zeros fail the map
    key = rng.integers(-1, 5, N).astype(np.int32)  # -1 and 4 fail the reduce
    entered = rng.random(N) > 0.1
    outcomes = [nb.run_numpy(program, {"v": v, "key": key}, entered, threads=t) for t in (1, 4)]
    ok = entered & (v != 0) & (key >= 0) & (key < 4)
    for got in outcomes:
        assert got.partials is not None
        assert got.partials.count.tolist() == [int((ok & (key == g)).sum()) for g in range(4)]
        assert got.partials.values["s"].tolist() == pytest.approx([float((1 / v[ok & (key == g)]).sum())
                                                                    for g in range(4)])
        assert got.partials.values["hi"].tolist() == [float(v[ok & (key == g)].max()) for g in range(4)]
        assert int((got.stage == 2).sum()) == int(ok.sum())
    np.testing.assert_array_equal(outcomes[0].stage, outcomes[1].stage)
    np.testing.assert_array_equal(outcomes[0].code, outcomes[1].code)


@pytest.mark.parametrize("dot", [True, False], ids=["dot-product check", "sum check"])
@pytest.mark.parametrize("where", [0, 63, 64, 100, N - 1])
@pytest.mark.parametrize(("expression", "value"), [("f * 2", 3e38), ("f * 2", -3e38), ("f * 2 - f * 2", 3e38)],
                         ids=["inf", "-inf", "nan"])
def test_a_single_non_finite_value_anywhere_fails_its_row_only(monkeypatch: pytest.MonkeyPatch, dot: bool,
                                                               where: int, expression: str, value: float) -> None:
    monkeypatch.setattr(nb, "_DOT_FINDS_NON_FINITE", dot)
    program = build_program([("m", "opencl.map", {"columns": {"f": "float32"}, "set": {"x": expression}})],
                            duration_ms)
    f = np.linspace(-1e30, 1e30, N).astype(np.float32)
    f[where] = value  # doubled, it overflows float32
    got = nb.run_numpy(program, {"f": f}, np.ones(N, dtype=bool), threads=2)
    assert np.flatnonzero(got.code).tolist() == [where]
    assert int(got.code[where]) % 4 == NOT_FINITE and int(got.stage[where]) == 0
    assert (np.delete(got.stage, where) == 1).all()


def test_this_blas_keeps_infinities_in_a_dot_product() -> None:
    """Where it did not, the backend would check with a sum instead (the test above covers both)."""
    assert nb._dot_finds_non_finite() is True


def test_an_error_in_another_thread_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    program = build_program([
        ("m", "opencl.map", {"columns": {"f": "float32"}, "set": {"x": "f + 1"}}),
        ("k", "opencl.kernel", {"inputs": {"x": "float32"}, "outputs": {"y": "float32"}, "source": "y = x;"}),
    ], duration_ms)
    with pytest.raises(nb.KernelNeedsOpenCL, match="^k$"):
        nb.run_numpy(program, {"f": np.zeros(N, dtype=np.float32)}, np.ones(N, dtype=bool), threads=4)


def test_an_empty_batch() -> None:
    got = nb.run_numpy(CHAIN, {c: np.zeros(0, dtype=t) for c, t in COLUMNS.items()}, np.zeros(0, dtype=bool))
    assert len(got.stage) == 0 and len(got.columns["x"]) == 0


@pytest.mark.parametrize(("cpu_max", "want"), [
    ("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("broken", None)])
def test_usable_cpus_honours_a_container_cpu_limit(monkeypatch: pytest.MonkeyPatch, tmp_path, cpu_max: str,
                                                   want: int | None) -> None:
    limit = tmp_path / "cpu.max"
    limit.write_text(cpu_max)
    monkeypatch.setattr(nb, "CPU_MAX", limit)
    monkeypatch.setattr(nb.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert nb.usable_cpus() == (8 if want is None else want)
    monkeypatch.setattr(nb, "CPU_MAX", tmp_path / "missing")
    assert nb.usable_cpus() == 8


def test_batches_of_every_size_share_one_zero_vector_per_type() -> None:
    """The finite check's zeros are sliced, not kept per batch length (a server sees many)."""
    for n in range(1, 300, 7):
        columns = {"f": np.ones(n, dtype=np.float32), "g": np.ones(n, dtype=np.float32),
                   "i": np.ones(n, dtype=np.int32)}
        assert (nb.run_numpy(CHAIN, columns, np.ones(n, dtype=bool)).stage == 4).all()
    assert set(nb._zeros) <= {np.dtype(np.float32), np.dtype(np.float64)}
