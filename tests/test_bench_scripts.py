"""The benchmark scripts run and check their own answers (tiny sizes: seconds, not numbers)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import require
from tests.gpu_support import NO_OPENCL
from tests.ray_support import RAY_TESTS

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def row(output: str, label: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(label))
    return [cell.strip() for cell in line.split("|")]


def test_peers_bench_headrace_and_plain_agree() -> None:
    out = run("bench/peers_bench.py", "--only", "headrace,plain", "--quick", "--repeat", "1")
    assert "runtime" in out and "events/s" in out and "totals OK" in out
    assert row(out, "plain Python loop")[-1] == "yes"
    assert row(out, "Headrace (engine run)")[-1] == "yes"
    assert "compiled" in out or "interpreted" in out


def test_shapes_bench_runs_every_shape_and_every_output_matches(tmp_path) -> None:
    out = run("bench/shapes.py", "--quick", "--json", str(tmp_path / "shapes.json"))
    rows = json.loads((tmp_path / "shapes.json").read_text())["rows"]
    assert {row["shape"] for row in rows} == {1, 2, 3, 4, 5, 6, 7}
    for shape in range(1, 8):  # each shape ran the engine beside at least one reference
        runners = [row["runner"] for row in rows if row["shape"] == shape]
        assert "engine" in runners and "stdlib" in runners, runners
    for row in rows:
        if row["status"] == "skipped":  # only the orjson loops, where orjson is not installed
            assert row["runner"] == "orjson", row
            continue
        assert row["status"] == "ok" and row["output_ok"], row
        assert row["peak_rss_mib"][str(row["sizes"][-1])] > 0, row
    table = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table) == len(rows) and all(line.split("|")[-2].strip() in ("yes", "skipped") for line in table)
    assert "requests/s" in out  # shape 6 reports requests as well as events


def test_edge_bench_covers_every_policy() -> None:
    out = run("bench/edge_bench.py", "--count", "20480", "--repeat", "1")
    for label in ("deque extend + list drain (reference)", "block", "drop_newest", "drop_oldest", "keep_latest",
                  "coalesce"):
        assert len(row(out, label)) == 4, label


def test_lmdb_bench_compares_the_edge_with_raw_lmdb_and_the_pipeline_with_memory(tmp_path) -> None:
    out = run("bench/lmdb_bench.py", "--count", "4096", "--pipeline-count", "3000", "--repeat", "1",
              "--dir", str(tmp_path))
    for label in ("raw py-lmdb append + pop", "raw py-lmdb + encoding", "LmdbEdge offer + take + ack"):
        assert len(row(out, label)) == 3, label
    assert "totals OK" in out
    assert len(row(out, "lmdb edges (storage: lmdb)")) == 3
    assert list(tmp_path.iterdir()) == []  # every database was removed


def test_gpu_bench_times_every_backend_and_they_agree(tmp_path) -> None:
    out = run("bench/gpu.py", "--quick", "--json", str(tmp_path / "gpu.json"))
    report = json.loads((tmp_path / "gpu.json").read_text())
    for label in ("hand-written NumPy", "run_numpy (Headrace NumPy)", "auto -> "):
        assert len(row(out, label)) == 4, label
    assert report["elements"] == 200_000 and report["max_abs_diff"]
    assert all(diff <= 1e-4 for diff in report["max_abs_diff"].values()), report["max_abs_diff"]
    if report["device"] is None:  # no PyOpenCL or no device here: the NumPy half still runs
        assert "skipped" in out
        require(False, f"bench/gpu.py measured no OpenCL device: {NO_OPENCL}")  # a failure in CI
    else:
        assert len(row(out, "OpenCL segment (wall)")) == 4
        assert report["kernel"]["bytes"] == 30 * 200_000 and report["segment"]["fraction"] > 0


def test_gpu_bench_without_a_device_runs_the_numpy_half() -> None:
    out = run("bench/gpu.py", "--quick", "--device", "numpy")
    assert len(row(out, "run_numpy (Headrace NumPy)")) == 4
    assert "OpenCL: skipped" in out and "fractions: skipped" in out


def test_tap_bench_runs_the_pipeline_with_and_without_a_tap_and_they_agree() -> None:
    out = run("bench/tap_bench.py", "--count", "20000", "--repeat", "1", "--rate", "1000")
    assert "totals OK" in out
    assert row(out, "no tap (reference)")[2:] == ["+0.0%", "yes", "-"]
    for label in ("tap on priced->buys (inside the fused chain)", "tap on per_user->out (a plain edge)"):
        cells = row(out, label)
        assert len(cells) == 5 and cells[3] in ("yes", "no"), cells
        assert int(cells[4].replace(",", "")) >= 1, cells  # the tap saw events while the graph ran


def test_test_bench_runs_the_tests_beside_engine_run(tmp_path) -> None:
    out = run("bench/test_bench.py", "--quick", "--json", str(tmp_path / "test_bench.json"))
    report = json.loads((tmp_path / "test_bench.json").read_text())
    assert report["tests_ok"] and report["runs_ok"] and "tests OK, runs OK" in out
    for label in ("engine test DIR (in-process)", "engine test DIR (subprocess)", "engine test, the same tests",
                  "engine run, subprocess (one per test)", "engine run, in-process (cmd_run)"):
        assert len(row(out, label)) == 6, label
    assert row(out, "engine test DIR (in-process)")[1] == str(report["tests"])
    for graph in ("http_bridge", "tail_errors"):  # no engine run for what runs until stopped, and it says so
        assert report["graphs"][graph]["skipped"] and "no engine run: skipped" in row(out, graph)[-1]
    assert report["graphs"]["quickstart"]["run_subprocess_seconds"]  # a generate source ran with a small count
    assert report["graphs"]["orders_etl"]["run_subprocess_seconds"]  # a file.read source ran on the test's events


def test_metrics_bench_runs_the_pipeline_with_and_without_the_endpoint_and_they_agree() -> None:
    out = run("bench/metrics_bench.py", "--quick")  # also checks a final scrape against the runtime's stats
    assert "totals OK" in out
    assert row(out, "no metrics (reference)")[3:] == ["+0.0%", "yes", "-"]
    cells = row(out, "metrics endpoint, scraped every 0.01 s")
    assert len(cells) == 6 and cells[4] in ("yes", "no"), cells


def test_nats_bench_runs_the_connector_beside_plain_nats_py() -> None:
    from tests.servers import find_program
    find_program("nats-server")  # the bench starts one (skips here without it; fails in CI)
    out = run("bench/nats_bench.py", "--quick")
    assert "totals OK" in out
    for label in ("read: plain nats-py pull loop (reference)", "read: nats.read -> null",
                  "write: plain nats-py publish_async loop (reference)", "write: generate -> nats.write (JetStream)"):
        assert len(row(out, label)) == 4, label


def test_redis_bench_compares_both_directions_with_a_plain_redis_py_loop() -> None:
    from tests.servers import find_program

    find_program("redis-server")  # skips here, fails in CI, without it
    out = run("bench/redis_bench.py", "--quick")
    assert "counts OK" in out
    for label in ("read: plain redis-py loop (reference)", "read: redis.read -> null",
                  "write: plain redis-py loop (reference)", "write: generate -> redis.write"):
        assert len(row(out, label)) == 5, label


def test_postgres_bench_compares_the_sink_with_plain_psycopg(postgres_server) -> None:
    out = run("bench/postgres_bench.py", "--quick", "--dsn", postgres_server.dsn)  # each run checks its rows
    for label in ("postgres.write mode: insert (COPY)", "plain psycopg COPY loop", "postgres.write mode: upsert",
                  "plain psycopg executemany"):
        assert len(row(out, "| " + label)) == 5, label
    assert "insert ratio" in out


def test_mqtt_bench_compares_both_directions_with_a_plain_aiomqtt_loop() -> None:
    from tests.servers import find_program

    find_program("mosquitto")  # the bench starts one (skips here without it; fails in CI)
    out = run("bench/mqtt_bench.py", "--quick")
    assert "counts OK" in out
    for label in ("read: plain aiomqtt loop (reference)", "read: mqtt.read -> null",
                  "write: plain aiomqtt loop (reference)", "write: generate -> mqtt.write"):
        assert len(row(out, "| " + label)) == 6, label


@RAY_TESTS[0]
@RAY_TESTS[1]
@RAY_TESTS[2]
def test_scale_out_bench_runs_locally_and_on_ray_with_equal_totals() -> None:
    require(importlib.util.find_spec("ray") is not None, "Ray is not installed: pip install 'headrace[ray]'")
    out = run("bench/scale_out.py", "--quick")  # its own local Ray, in its own process
    for label in ("p1 local", "p2 local", "p2 ray"):
        assert row(out, label)[-1] == "yes", label
    assert "µs/event" in out and "bytes/event" in out and "serial fraction" in out
