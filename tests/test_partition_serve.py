"""Partitioned nodes under `engine serve` on the `local` executor: `engine ctl status` and
/metrics show each instance beside the node's sum, pause/resume/drain act on every instance,
and a reload replaces exactly the stages it changes (docs/scale-out.md)."""

import asyncio
import json
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from adapters.serve.vocabulary import UPDATED
from tests.ctl_serve_support import Engine
from tests.process_support import free_port, wait_for
from tests.serve_support import Serving, events
from tests.test_metrics import samples, value

# Seven users through a partitioned stage of two members (`scored` then `per_user`): the
# totals are emitted only at the end of input, so a drain is what writes them.
TOTALS = """version: 2
name: totals
nodes:
  buys: {type: generate, with: {rate: 1500, fields: {user: "'u' + str(i % 7)", amount: "i % 10"}}}
  scored:
    type: map
    from: {node: buys, edge: {partition_by: user, capacity: 40}}
    parallelism: 2
    with: {set: {double: "amount * 2"}}
  per_user:
    type: aggregate
    from: scored
    parallelism: 2
    with: {by: user, fields: {n: "count()", total: "sum(double)"}}
  out: {type: file.write, from: per_user, with: {path: totals.jsonl, format: jsonl}}
"""


def status(engine: Engine) -> dict[str, object]:
    done = engine.ctl("status", "totals", "--json")
    assert done.returncode == 0, done.stderr
    detail: dict[str, object] = json.loads(done.stdout)
    return detail


def rows(detail: dict[str, object]) -> dict[str, dict[str, object]]:
    nodes = detail["nodes"]
    assert isinstance(nodes, list)
    return {n["name"]: n for n in nodes}


def lines(path: Path) -> list[Any]:
    return events(path)


def events_in(node: dict[str, object]) -> int:
    return int(str(node.get("events_in", 0)))  # protobuf's JSON leaves zeros out


def test_ctl_and_metrics_show_each_instance_and_pause_resume_drain_act_on_all(tmp_path: Path) -> None:
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "totals.yaml").write_text(TOTALS)
    port = free_port()
    engine = Engine(tmp_path, {"METRICS_ADDRESS": f"127.0.0.1:{port}", "METRICS_PUBLIC": "true"})
    try:
        engine.wait_serving()
        wait_for(lambda: events_in(rows(status(engine))["per_user[1]"]) > 100)
        shown = rows(status(engine))
        for name, kind in (("scored", "map"), ("per_user", "aggregate"), ("scored[route]", "partition"),
                           ("scored[0]", "stage"), ("scored[1]", "stage"),
                           ("per_user[0]", "aggregate"), ("per_user[1]", "aggregate")):
            assert shown[name]["type"] == kind and shown[name]["state"] == "running", (name, shown[name])
        assert events_in(shown["per_user"]) == events_in(shown["per_user[0]"]) + events_in(shown["per_user[1]"])

        # /metrics: a series per instance and one for the node's sum.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            scraped = samples(response.read().decode())
        parts = [value(scraped, "headrace_node_events_in_total", graph="totals", node=f"per_user[{i}]")
                 for i in range(2)]
        assert min(parts) > 0
        assert value(scraped, "headrace_node_events_in_total", graph="totals", node="per_user") == sum(parts)

        # Pausing the node pauses both instances: their `in` stops, the source's edge fills.
        paused = engine.ctl("pause", "totals", "per_user")
        assert paused.returncode == 0, paused.stderr
        entry = "buys->scored[route]"

        def edge_full() -> bool:
            edges = {e["id"]: e for e in status(engine)["edges"]}  # type: ignore[attr-defined]
            return int(edges[entry].get("depth", 0)) == 40

        wait_for(edge_full, seen=lambda: status(engine)["edges"])
        held = rows(status(engine))
        assert {held[f"per_user[{i}]"]["state"] for i in range(2)} == {"paused"}
        assert held["per_user"]["state"] == "paused"
        still = rows(status(engine))
        assert [events_in(still[f"per_user[{i}]"]) for i in range(2)] == \
            [events_in(held[f"per_user[{i}]"]) for i in range(2)]

        resumed = engine.ctl("resume", "totals", "per_user")
        assert resumed.returncode == 0, resumed.stderr
        wait_for(lambda: all(events_in(rows(status(engine))[f"per_user[{i}]"]) > events_in(held[f"per_user[{i}]"])
                             for i in range(2)))

        # A drain ends the input: every instance flushes its totals into the sink.
        drained = engine.ctl("drain", "totals")
        assert drained.returncode == 0, drained.stderr
        final = rows(status(engine))
        totals: list[Any] = events(tmp_path / "totals.jsonl")
        assert sorted(t["user"] for t in totals) == [f"u{k}" for k in range(7)]  # one row per user
        assert sum(int(t["n"]) for t in totals) == int(str(final["buys"]["events_out"]))
        assert events_in(final["per_user"]) == int(str(final["buys"]["events_out"]))
    finally:
        assert engine.stop() == 0, engine.log.read_text()


TWO_STAGES = """version: 2
nodes:
  src: {{type: generate, with: {{rate: 2000, fields: {{user: "'u' + str(i % 7)", n: i}}}}}}
  clean:
    type: map
    from: {{node: src, edge: {{partition_by: user}}}}
    parallelism: 2
    with: {{set: {{a: "n + 1"}}}}
  scored:
    type: map
    from: {{node: clean, edge: {{partition_by: user}}}}
    parallelism: {n}
    with: {{set: {{b: "n * {factor}"}}}}
  out: {{type: file.write, from: scored, with: {{path: {path}, format: jsonl, mode: append}}}}
"""


def test_a_reload_replaces_the_changed_stage_and_keeps_the_other_running(tmp_path: Path) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    out = tmp_path / "out.jsonl"

    def write(n: int, factor: int) -> None:
        (graphs / "g.yaml").write_text(TWO_STAGES.format(n=n, factor=factor, path=json.dumps(str(out))))

    write(2, 1)

    async def scenario() -> list[Any]:
        async with Serving(graphs) as s:
            await s.until(lambda: len(events(out)) > 100, what="events through both stages")
            runtime = s.running("g.yaml").runtime
            before = {name: r.impl for name, r in runtime.runners.items()}
            write(2, 2)  # `scored`'s expression: its stage is replaced, `clean`'s stage runs on
            await s.until(lambda: s.results("g.yaml")[-1:] == [UPDATED], what="the update")
            changes = s.history[-1][-1].nodes
            assert changes is not None and not changes.whole_swap
            assert changes.replaced == ("out", "scored[0]", "scored[1]")
            assert changes.kept == ("clean[0]", "clean[1]", "clean[route]", "scored[route]", "src")
            assert s.running("g.yaml").runtime is runtime
            for name in changes.kept:
                assert runtime.runners[name].impl is before[name], name  # the same instance, its state with it
            await s.until(lambda: any(e["b"] == 2 * e["n"] and e["n"] for e in lines(out)), what="the new map")

            write(3, 2)  # parallelism 2 -> 3: three instances of `scored`
            await s.until(lambda: s.results("g.yaml")[-1:] == [UPDATED] and len(s.results("g.yaml")) == 3,
                          what="the second update")
            changes = s.history[-1][-1].nodes
            assert changes is not None and changes.added == ("scored[2]",)
            assert "clean[0]" in changes.kept and "scored[route]" in changes.replaced
            def nodes() -> Any:
                return runtime.stats()["nodes"]

            await s.until(lambda: nodes()["scored[2]"]["in"] > 0, what="the third instance at work")
            assert nodes()["scored"]["instances"] == 3 and "scored[3]" not in nodes()
        return events(out)

    written: list[Any] = asyncio.run(scenario())
    # Across both reloads (and the drain at the end) no event was lost or written twice, and
    # each user's events kept their order.
    seen = [int(str(e["n"])) for e in written]
    assert sorted(seen) == list(range(len(seen)))
    for user in {str(e["user"]) for e in written}:
        mine = [int(str(e["n"])) for e in written if e["user"] == user]
        assert mine == sorted(mine), user
    assert Counter(e["b"] == 2 * e["n"] for e in written)[True] > 0

