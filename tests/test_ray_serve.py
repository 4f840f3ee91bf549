"""`engine serve` with the `ray` executor (settings `executor`, `ray_address`): a partitioned
graph's instances run on actors of the test's local Ray (tests/ray_support.py); a killed
actor fails that graph with one line naming its instance while the directory's other graphs
serve on, and `engine ctl reload` starts it again; a cluster that cannot be reached rejects
the partitioned graph only."""

import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.ctl_serve_support import Engine
from tests.process_support import wait_for
from tests.ray_support import RAY_TESTS, local_ray  # noqa: F401  (the fixture)
from tests.serve_support import events, ticking_graph

pytestmark = RAY_TESTS

PARTITIONED = """version: 2
name: scores
nodes:
  buys: {type: generate, with: {rate: 2000, fields: {user: "'u' + str(i % 7)", amount: "i % 10"}}}
  scored:
    type: map
    from: {node: buys, edge: {partition_by: user}}
    parallelism: 2
    with: {set: {double: "amount * 2"}}
  out: {type: file.write, from: scored, with: {path: scores.jsonl, format: jsonl, mode: append}}
"""
# Instances reserve a sliver of a CPU: the two-node test Ray has one CPU per node.
SETTINGS = {"EXECUTOR": "ray", "RAY_CPUS_PER_INSTANCE": "0.05"}


def serve(folder: Path, settings: dict[str, str]) -> Engine:
    graphs = folder / "graphs"
    graphs.mkdir()
    (graphs / "scores.yaml").write_text(PARTITIONED)
    (graphs / "ticks.yaml").write_text(ticking_graph(folder / "ticks.jsonl", "t", rate=200, name="ticks"))
    return Engine(folder, {**SETTINGS, **settings})


def graph(engine: Engine, name: str) -> dict[str, Any]:
    done = engine.ctl("status", name, "--json")
    assert done.returncode == 0, done.stderr
    detail: dict[str, Any] = json.loads(done.stdout)
    return detail


def instance_in(engine: Engine, name: str) -> int:
    return int(next(n for n in graph(engine, "scores")["nodes"] if n["name"] == name)["events_in"])


def stage_workers() -> list[dict[str, Any]]:
    """The live actors of stage instances, with their worker's pid. (Ray's public state API
    needs the dashboard, which the test Ray does not run; the GCS table is what it reads.)"""
    from ray._private import state

    alive = state.actors(actor_state_name="ALIVE").values()
    return [a for a in alive if str(a["ActorClassName"]).endswith("StageWorker")]


def test_a_killed_actor_fails_its_graph_the_others_serve_on_and_a_reload_restarts_it(
        local_ray: str, tmp_path: Path) -> None:  # noqa: F811
    engine = serve(tmp_path, {"RAY_ADDRESS": local_ray})
    try:
        engine.wait_serving()
        wait_for(lambda: min(instance_in(engine, f"scored[{i}]") for i in range(2)) > 200, timeout=60,
                 seen=lambda: engine.log.read_text()[-2000:])
        workers = stage_workers()
        assert len(workers) == 2, workers
        assert len({w["Address"]["NodeID"] for w in workers}) == 2  # spread over both Ray nodes

        os.kill(int(workers[0]["Pid"]), signal.SIGKILL)
        wait_for(lambda: graph(engine, "scores")["summary"]["state"] == "failed", timeout=15)
        failure = graph(engine, "scores")["failure"]
        assert "\n" not in failure
        assert "node 'scored' instance " in failure and " of 2: its Ray actor died" in failure, failure

        ticks = len(events(tmp_path / "ticks.jsonl"))
        wait_for(lambda: len(events(tmp_path / "ticks.jsonl")) > ticks + 20)  # the other graph serves on
        assert graph(engine, "ticks")["summary"]["state"] == "running"

        reloaded = engine.ctl("reload")
        assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
        assert "scores.yaml: updated" in reloaded.stdout, reloaded.stdout
        assert graph(engine, "scores")["summary"]["state"] == "running"
        wait_for(lambda: min(instance_in(engine, f"scored[{i}]") for i in range(2)) > 100, timeout=60)
        assert len(stage_workers()) == 2  # new actors; the killed one's partner was released
    finally:
        assert engine.stop() == 0, engine.log.read_text()
    assert stage_workers() == []  # a graceful stop releases every actor


def test_an_unreachable_cluster_rejects_the_partitioned_graph_and_the_others_run(tmp_path: Path) -> None:
    engine = serve(tmp_path, {"RAY_ADDRESS": "127.0.0.1:1"})
    try:
        engine.wait_serving()
        wait_for(lambda: events(tmp_path / "ticks.jsonl"))  # a graph without parallelism runs
        listed = {g["name"]: g for g in json.loads(engine.ctl("status", "--json").stdout)["graphs"]}
        assert listed["ticks"]["state"] == "running"
        rejected = listed["scores"]
        assert rejected["last_result"] == rejected["state"] == "rejected"
        assert len(rejected["problems"]) == 1
        assert "cannot reach the Ray cluster at 127.0.0.1:1" in rejected["problems"][0]
        assert "\n" not in rejected["problems"][0]
    finally:
        assert engine.stop() == 0, engine.log.read_text()
