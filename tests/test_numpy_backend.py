"""The NumPy backend over batches of many chunks: the rows a chunk or a thread boundary
falls between come out as if the batch were one piece, checked row by row against Python."""

import math
import os
import signal
import threading
import time

import numpy as np
import pytest

from adapters.gpu import cpu_share
from adapters.gpu import numpy_backend as nb
from adapters.gpu.program import DIVISION_BY_ZERO, NOT_FINITE, UNDEFINED
from tests.gpu_support import program_of

COLUMNS = {"f": "float32", "g": "float32", "i": "int32"}
CHAIN = program_of([
    ("div", "opencl.map", {"columns": COLUMNS, "set": {"x": "f / g"}}),
    ("small", "opencl.filter", {"where": "x < 50"}),
    ("root", "opencl.map", {"set": {"y": "sqrt(x)"}}),
    ("third", "opencl.map", {"set": {"k": "i // 3", "x": "x * 2"}}),
])
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


@pytest.mark.filterwarnings("error")  # every thread ignores NumPy's floating-point warnings itself
@pytest.mark.parametrize("threads", [1, 2, 3, 16])
def test_every_row_comes_out_as_python_computes_it_whatever_the_split(threads: int) -> None:
    columns, entered = batch()
    given = entered.copy()
    got = nb.run_numpy(CHAIN, columns, entered, threads=threads)
    np.testing.assert_array_equal(entered, given)  # the caller's array is not written
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


def test_a_reduce_over_many_chunks_counts_every_row_once() -> None:
    program = program_of([
        ("m", "opencl.map", {"columns": {"v": "float32", "key": "int32"}, "set": {"w": "1 / v"}}),
        ("r", "opencl.reduce", {"by": "key", "groups": 4,
                                "fields": {"n": "count()", "s": "sum(w)", "hi": "max(v)"}}),
    ])
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
    program = program_of([("m", "opencl.map", {"columns": {"f": "float32"}, "set": {"x": expression}})])
    f = np.linspace(-1e30, 1e30, N).astype(np.float32)
    f[where] = value  # doubled, it overflows float32
    got = nb.run_numpy(program, {"f": f}, np.ones(N, dtype=bool), threads=2)
    assert np.flatnonzero(got.code).tolist() == [where]
    assert int(got.code[where]) % 4 == NOT_FINITE and int(got.stage[where]) == 0
    assert (np.delete(got.stage, where) == 1).all()


def test_a_blas_that_skips_zeros_is_found_and_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe at import decides between the dot product and the sum (both tested above)."""
    monkeypatch.setattr(np, "dot", lambda a, b: 0.0)  # what a BLAS skipping zero weights returns
    assert nb._dot_finds_non_finite() is False
    monkeypatch.undo()
    assert nb._dot_finds_non_finite() is True  # NumPy's own BLAS here keeps IEEE semantics


def test_an_error_in_a_pool_thread_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    real = nb._run_chunk

    def chunk(*args: object) -> object:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("a chunk failed in a pool thread")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(nb, "_run_chunk", chunk)
    columns, entered = batch()
    with pytest.raises(RuntimeError, match="pool thread"):
        nb.run_numpy(CHAIN, columns, entered, threads=4)


def test_share_out_returns_only_when_every_span_stopped_and_prefers_its_own_error() -> None:
    lock = threading.Lock()
    running, finished = [0], []

    def spans(fail: set[int]) -> "object":
        def run_span(lo: int, hi: int) -> None:
            with lock:
                running[0] += 1
            try:
                if lo in fail:
                    raise RuntimeError(f"span at {lo}")
                time.sleep(0.2 if lo == 384 else 0)  # still busy when the error is known
                finished.append((lo, hi))
            finally:
                with lock:
                    running[0] -= 1
        return run_span

    with pytest.raises(RuntimeError, match="span at 192"):
        cpu_share.share_out(spans({192}), 640, 64, 4)  # spans of 3 chunks: 0, 192, 384, 576
    assert running[0] == 0 and sorted(finished) == [(0, 192), (384, 576), (576, 640)]
    with pytest.raises(RuntimeError, match="span at 0"):  # this thread's own error wins
        cpu_share.share_out(spans({0, 192}), 640, 64, 4)
    assert running[0] == 0


def test_an_empty_batch() -> None:
    got = nb.run_numpy(CHAIN, {c: np.zeros(0, dtype=t) for c, t in COLUMNS.items()}, np.zeros(0, dtype=bool))
    assert len(got.stage) == 0 and len(got.columns["x"]) == 0


@pytest.mark.parametrize(("files", "want"), [
    ({}, 8),
    ({"cpu.max": "max 100000\n"}, 8),
    ({"cpu.max": "150000 100000\n"}, 2),  # a 1.5-CPU limit: two threads
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu.max": "broken"}, 8),
    ({"cpu.max": "max 100000", "kube/cpu.max": "max 100000", "kube/pod/cpu.max": "300000 100000"}, 3),
    ({"cpu.max": "200000 100000", "kube/pod/cpu.max": "max 100000"}, 2),  # a limit above the process
])
def test_usable_cpus_honours_a_cgroup_v2_cpu_limit_on_the_way_up(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                                                   files: dict[str, str], want: int) -> None:
    (tmp_path / "kube" / "pod").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "self").write_text("0::/kube/pod\n")
    monkeypatch.setattr(cpu_share, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cpu_share, "PROC_CGROUP", tmp_path / "self")
    monkeypatch.setattr(cpu_share.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert cpu_share.usable_cpus() == want


def test_usable_cpus_honours_a_cgroup_v1_quota(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    cpu = tmp_path / "cpu,cpuacct"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("100000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "self").write_text("4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n")
    monkeypatch.setattr(cpu_share, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cpu_share, "PROC_CGROUP", tmp_path / "self")
    monkeypatch.setattr(cpu_share.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    assert cpu_share.usable_cpus() == 1  # the container sees its own cgroup as the mount
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_share.usable_cpus() == 4
    monkeypatch.setattr(cpu_share, "PROC_CGROUP", tmp_path / "missing")
    assert cpu_share.usable_cpus() == 4


def test_a_single_chunk_never_asks_how_many_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    def asked() -> int:
        raise AssertionError("usable_cpus called for one chunk")
    monkeypatch.setattr(cpu_share, "usable_cpus", asked)
    columns, entered = batch()
    small = {k: v[:64] for k, v in columns.items()}
    assert len(nb.run_numpy(CHAIN, small, entered[:64]).stage) == 64


def test_batches_of_every_size_share_one_zero_vector_per_type() -> None:
    """The finite check's zeros are sliced, not kept per batch length (a server sees many)."""
    for n in range(1, 300, 7):
        columns = {"f": np.ones(n, dtype=np.float32), "g": np.ones(n, dtype=np.float32),
                   "i": np.ones(n, dtype=np.int32)}
        assert (nb.run_numpy(CHAIN, columns, np.ones(n, dtype=bool)).stage == 4).all()
    assert set(nb._zeros) <= {np.dtype(np.float32), np.dtype(np.float64)}


@pytest.mark.parametrize("expression", ["x * 2 if i > 0 else 0", "0 if i > 0 else x * 2", "sqrt(x) + x"])
def test_a_step_that_reads_the_column_it_writes_reads_the_old_value(expression: str) -> None:
    """Written straight into the output column, `x = x * 2 if ...` would read its own half-
    written result; such a step computes first and writes after."""
    program = program_of([
        ("one", "opencl.map", {"columns": {"f": "float32", "i": "int32"}, "set": {"x": "f + 1"}}),
        ("two", "opencl.map", {"set": {"x": expression}}),
    ])
    f = np.arange(N, dtype=np.float32)
    i = np.resize(np.array([1, -1, 5], dtype=np.int32), N)
    got = nb.run_numpy(program, {"f": f, "i": i}, np.ones(N, dtype=bool), threads=2)
    x = f + np.float32(1)
    want = {"x * 2 if i > 0 else 0": np.where(i > 0, x * 2, 0), "0 if i > 0 else x * 2": np.where(i > 0, 0, x * 2),
            "sqrt(x) + x": np.sqrt(x) + x}[expression].astype(np.float32)
    assert (got.stage == 2).all()
    np.testing.assert_array_equal(got.columns["x"], want)


def test_a_column_whose_type_a_later_step_changes_keeps_its_own_type_until_then() -> None:
    """`a` ends as int32 (a later map sets it to 2), so its output column is int32; a step
    before that may not write its float64 `a` there, or `x = a` would read it truncated."""
    program = program_of([
        ("one", "opencl.map", {"columns": {"a": "float64"}, "set": {"a": "a"}}),
        ("two", "opencl.map", {"set": {"a": "2", "x": "a"}}),
    ])
    a = np.full(N, 54.444)
    got = nb.run_numpy(program, {"a": a}, np.ones(N, dtype=bool))
    assert got.columns["a"].dtype == np.int32 and (got.columns["a"] == 2).all()
    np.testing.assert_array_equal(got.columns["x"], a)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_shares_out_with_threads_of_its_own() -> None:
    """The parent's pool threads do not exist in a child it forks (an embedding server's
    workers): the child must start a pool, not wait forever on threads that are not there."""
    columns, entered = batch()
    want = nb.run_numpy(CHAIN, columns, entered, threads=4)
    pool = cpu_share._pool
    assert pool is not None
    # Wait until a pool thread has gone idle: a child that kept the parent's pool would count
    # on it (ThreadPoolExecutor starts no thread while its idle count is above 0) and hang.
    deadline = time.monotonic() + 30
    while pool._idle_semaphore._value == 0:
        assert time.monotonic() < deadline, "no pool thread went idle"
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # the child: killed by SIGALRM if it hangs, exit 0 if it computed the same
        signal.alarm(20)
        same = np.array_equal(nb.run_numpy(CHAIN, columns, entered, threads=2).stage, want.stage)
        os._exit(0 if same else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
