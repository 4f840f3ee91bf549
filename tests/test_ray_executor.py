"""The `ray` executor on a real local Ray (two nodes of one CPU, tests/ray_support.py): the
same results as `local`, instances spread over both nodes, a killed actor fails the graph
naming its instance, and a cluster that is not there is one line, not a hang."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.ray.stage import RemoteStage, stage_factory
from engine.runtime import Runtime
from tests.conftest import ROOT
from tests.partition_support import assert_same_results, chain_graph, steps_strategy, user_totals
from tests.ray_support import RAY_TESTS, local_ray  # noqa: F401  (the fixture)
from tests.runtime_support import RECORDED, build

pytestmark = RAY_TESTS

ENGINE = [sys.executable, "-m", "adapters.cli.main"]
# Instances reserve a sliver of a CPU each: a generated graph may have a dozen of them on
# this 2-CPU Ray, and they are placed by SPREAD, not by what they reserve.
SLIVER = 0.05


def engine(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENGINE, *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_on_ray(text: str, cpus: float = SLIVER) -> tuple[Runtime, list[dict[str, object]]]:
    runtime = build(text, stages=stage_factory(cpus))
    ok = asyncio.run(runtime.run())
    assert ok, runtime.failure
    return runtime, list(RECORDED["out"])


def remote_stages(runtime: Runtime) -> list[RemoteStage]:
    stages = [r.impl for r in runtime.runners.values() if isinstance(r.impl, RemoteStage)]
    return sorted(stages, key=lambda s: s.ctx.name)


def test_engine_run_gives_the_same_totals_on_ray_as_locally(local_ray, tmp_path):  # noqa: F811
    outputs: dict[str, list[str]] = {}
    stats: dict[str, dict[str, object]] = {}
    for executor in ("local", "ray"):
        out, stats_file = tmp_path / f"{executor}.jsonl", tmp_path / f"{executor}.json"
        done = engine("run", "graphs/user_totals.yaml", "--executor", executor, "--ray-address", local_ray,
                      "--stats-file", str(stats_file), env={"USER_TOTALS_OUT": str(out)})
        assert done.returncode == 0, done.stderr
        outputs[executor] = sorted(out.read_text().splitlines())
        stats[executor] = json.loads(stats_file.read_text())["nodes"]
    assert len(outputs["local"]) == 97
    assert outputs["ray"] == outputs["local"]
    for node in ("scored[0]", "scored[1]", "per_user[0]", "per_user[1]", "per_user"):
        assert stats["ray"][node]["in"] == stats["local"][node]["in"] > 0
        assert stats["ray"][node]["out"] == stats["local"][node]["out"]
    assert stats["ray"]["per_user"]["instances"] == 2


def test_instances_are_placed_on_both_ray_nodes_and_give_the_local_results(local_ray):  # noqa: F811
    expected = run_graph_locally(user_totals(5000, 2))
    runtime, got = run_on_ray(user_totals(5000, 2), cpus=1.0)  # one CPU each: one per node
    assert_same_results(got, expected)
    placed = [stage.placed for stage in remote_stages(runtime)]
    assert len(placed) == 2
    assert placed[0]["node_id"] != placed[1]["node_id"]
    assert placed[0]["pid"] != placed[1]["pid"] != os.getpid()
    assert sum(stage.bytes_sent for stage in remote_stages(runtime)) > 5000 * 20  # the events went over


def run_graph_locally(text: str) -> list[dict[str, object]]:
    runtime = build(text)
    assert asyncio.run(runtime.run()), runtime.failure
    return list(RECORDED["out"])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(steps=steps_strategy, count=st.integers(1, 300), keys=st.integers(1, 5))
def test_generated_chains_give_the_same_results_on_ray(local_ray, steps, count, keys):  # noqa: F811
    text = chain_graph(count, keys, steps)
    expected = run_graph_locally(chain_graph(count, keys, steps, partitioned=False))
    assert_same_results(run_graph_locally(text), expected)
    _, got = run_on_ray(text)
    assert_same_results(got, expected)


def test_a_killed_actor_fails_the_graph_within_10_s_naming_its_instance(local_ray):  # noqa: F811
    runtime = build(user_totals(100_000_000, 2), stages=stage_factory(SLIVER))

    async def run() -> tuple[bool, float]:
        task = asyncio.ensure_future(runtime.run())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            nodes = runtime.stats()["nodes"]
            assert isinstance(nodes, dict)
            if nodes.get("scored[1]", {}).get("in", 0) > 10_000:
                break
            await asyncio.sleep(0.05)
        victim = remote_stages(runtime)[1]
        pid = victim.placed["pid"]
        assert isinstance(pid, int)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        ok = await asyncio.wait_for(task, 30)
        return ok, time.monotonic() - killed

    ok, took = asyncio.run(run())
    assert not ok
    assert took < 10, took
    assert "node 'scored' instance 1 of 2" in runtime.failure, runtime.failure
    assert "\n" not in runtime.failure


def test_an_unreachable_cluster_is_one_line_and_exit_1():
    done = engine("run", "graphs/user_totals.yaml", "--executor", "ray", "--ray-address", "127.0.0.1:1",
                  timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in lines[0] and "--ray-address" in lines[0]


@pytest.fixture
def no_ray(tmp_path: Path) -> dict[str, str]:
    """An environment where `import ray` fails, as where the extra is not installed."""
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    return {"PYTHONPATH": os.pathsep.join([str(shim.parent), str(ROOT)])}


def test_without_ray_installed_the_executor_names_the_extra(no_ray, tmp_path):
    done = engine("run", "graphs/user_totals.yaml", "--executor", "ray", env={
        **no_ray, "USER_TOTALS_OUT": str(tmp_path / "out.jsonl")}, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "headrace[ray]" in lines[0] and "--executor local" in lines[0]
    assert not (tmp_path / "out.jsonl").exists()
