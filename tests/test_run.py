"""`engine run` as a user runs it: outputs, exit codes, error lines, stats, on_error."""

import json
import textwrap
from pathlib import Path

import pytest

from tests.runtime_support import counted


def write_graph(tmp_path: Path, text: str, name: str = "g.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def in_tmp(cli, tmp_path, monkeypatch):
    """`engine` run from inside tmp_path, so relative output paths land there."""
    monkeypatch.chdir(tmp_path)
    return cli


def test_generate_map_filter_stdout(in_tmp, tmp_path):
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 6, fields: {n: i, sq: i * i}}}
          tagged:
            type: map
            from: gen
            with: {set: {odd: "n % 2 == 1"}, remove: [sq]}
          odd: {type: filter, from: tagged, with: {where: odd}}
          out: {type: stdout, from: odd}
        """)
    code, out, err = in_tmp("run", graph)
    assert (code, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"n": 1, "odd": True}, {"n": 3, "odd": True}, {"n": 5, "odd": True}]


def test_route_sends_each_event_to_matching_ports(in_tmp, tmp_path):
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 10, fields: {n: i}}}
          split:
            type: route
            from: gen
            with: {routes: {small: n < 3, even: n % 2 == 0}}
          s: {type: file.write, from: split.small, with: {path: small.jsonl}}
          e: {type: file.write, from: split.even, with: {path: even.jsonl}}
          u: {type: file.write, from: split.unmatched, with: {path: rest.jsonl}}
          first:
            type: route
            from: gen
            with: {mode: first, routes: {small: n < 3, even: n % 2 == 0}}
          fe: {type: file.write, from: first.even, with: {path: first_even.jsonl}}
        """)
    code, _, err = in_tmp("run", graph)
    assert (code, err) == (0, "")
    numbers = lambda name: [e["n"] for e in jsonl(tmp_path / name)]  # noqa: E731
    assert numbers("small.jsonl") == [0, 1, 2]
    assert numbers("even.jsonl") == [0, 2, 4, 6, 8]
    assert numbers("rest.jsonl") == [3, 5, 7, 9]
    assert numbers("first_even.jsonl") == [4, 6, 8]


def test_fan_out_consumers_cannot_see_each_others_changes(in_tmp, tmp_path):
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 3, fields: {n: i, tag: "'orig'"}}}
          a: {type: map, from: gen, with: {set: {tag: "'a'"}, remove: [n]}}
          b: {type: map, from: gen, with: {rename: {tag: label}}}
          c: {type: file.write, from: gen, with: {path: c.jsonl}}
          wa: {type: file.write, from: a, with: {path: a.jsonl}}
          wb: {type: file.write, from: b, with: {path: b.jsonl}}
        """)
    code, _, err = in_tmp("run", graph)
    assert (code, err) == (0, "")
    assert jsonl(tmp_path / "a.jsonl") == [{"tag": "a"}] * 3
    assert jsonl(tmp_path / "b.jsonl") == [{"n": i, "label": "orig"} for i in range(3)]
    assert jsonl(tmp_path / "c.jsonl") == [{"n": i, "tag": "orig"} for i in range(3)]


def test_stats_file_counts_nodes_and_edges(in_tmp, tmp_path):
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 100, fields: {n: i}}}
          keep: {type: filter, from: gen, with: {where: n < 10}}
          out: {type: "null", from: keep}
        """)
    code, _, _ = in_tmp("run", graph, "--stats-file", "stats.json")
    assert code == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert set(stats) == {"nodes", "edges", "elapsed_s"}
    assert {name: counted(node, "in", "out", "errors", "ports") for name, node in stats["nodes"].items()} == {
        "gen": {"in": 0, "out": 100, "errors": 0, "ports": {"out": 100}},
        "keep": {"in": 100, "out": 10, "errors": 0, "ports": {"out": 10}},
        "out": {"in": 10, "out": 0, "errors": 0, "ports": {}},
    }
    assert all(node["busy_s"] >= 0 for node in stats["nodes"].values())
    assert stats["edges"]["gen->keep"]["capacity"] > 0 and stats["edges"]["gen->keep"]["blocked_s"] >= 0
    assert counted(stats["edges"]["gen->keep"], "enqueued", "dropped", "coalesced", "depth", "high_water") == {
        "enqueued": 100, "dropped": 0, "coalesced": 0, "depth": 0, "high_water": 100}
    assert stats["edges"]["keep->out"]["enqueued"] == 10
    assert stats["elapsed_s"] >= 0


def test_missing_input_file_is_one_clear_line(in_tmp, tmp_path):
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          src: {type: file.read, with: {path: nowhere/input.jsonl}}
          out: {type: stdout, from: src}
        """)
    code, out, err = in_tmp("run", graph)
    assert code == 1 and out == ""
    assert err == "engine: error: node 'src' (file.read): cannot open nowhere/input.jsonl: No such file or directory\n"


def test_unwritable_output_is_one_clear_line(in_tmp, tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory\n")
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 3, fields: {n: i}}}
          out: {type: file.write, from: gen, with: {path: blocker/out.jsonl}}
        """)
    code, _, err = in_tmp("run", graph)
    assert code == 1
    assert err.startswith("engine: error: node 'out' (file.write): cannot write blocker/out.jsonl: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_invalid_graph_does_not_run(in_tmp, tmp_path):
    graph = write_graph(tmp_path, "version: 1\nnodes:\n  out: {type: stdout, from: missing}\n")
    code, out, err = in_tmp("run", graph)
    assert code == 1 and out == ""
    assert "g.yaml:3:" in err and "HR" in err


ERRORS_GRAPH = """
    version: 1
    nodes:
      gen: {{type: generate, with: {{count: 5, fields: {{n: i, d: "i - 2"}}}}}}
      calc:
        type: map
        from: gen
        on_error: {on_error}
        with: {{set: {{q: "10 // d", secret: "missing_field + 1"}}}}
      out: {{type: file.write, from: calc, with: {{path: out.jsonl}}}}
    """


def test_runtime_expression_errors_are_dropped_counted_and_logged_without_payload(in_tmp, tmp_path):
    graph = write_graph(tmp_path, ERRORS_GRAPH.format(on_error="drop"))
    code, _, err = in_tmp("run", graph, "--stats-file", "stats.json")
    assert code == 0
    assert jsonl(tmp_path / "out.jsonl") == []  # `missing_field` fails for every event
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert counted(stats["nodes"]["calc"], "in", "out", "errors") == {"in": 5, "out": 0, "errors": 5}
    lines = err.splitlines()
    assert len(lines) == 1  # rate-limited: one line per node per interval
    assert lines[0].startswith("engine: warning: node 'calc' (map): ")
    assert "missing field 'missing_field'" in lines[0] or "division by zero" in lines[0]


def test_dead_letter_sends_event_and_reason_to_the_errors_port(in_tmp, tmp_path):
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 4, fields: {n: i, d: "i - 2"}}}
          calc:
            type: map
            from: gen
            on_error: dead_letter
            with: {set: {q: "10 // d"}}
          good: {type: file.write, from: calc, with: {path: good.jsonl}}
          bad: {type: file.write, from: calc.errors, with: {path: bad.jsonl}}
        """)
    code, _, err = in_tmp("run", graph)
    assert (code, err) == (0, "")
    assert [e["q"] for e in jsonl(tmp_path / "good.jsonl")] == [-5, -10, 10]
    assert jsonl(tmp_path / "bad.jsonl") == [{
        "node": "calc",
        "error": "division by zero in set.q '10 // d'",
        "event": {"n": 2, "d": 0},
    }]


def test_stop_fails_the_run_with_the_reason(in_tmp, tmp_path):
    graph = write_graph(tmp_path, ERRORS_GRAPH.format(on_error="stop"))
    code, _, err = in_tmp("run", graph)
    assert code == 1
    assert err.startswith("engine: error: node 'calc' (map): ")
    assert err.count("\n") == 1


def test_retry_waits_then_applies_then(in_tmp, tmp_path):
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 3, fields: {n: i}}}
          calc:
            type: map
            from: gen
            on_error: {action: retry, attempts: 2, backoff: 20ms, then: dead_letter}
            with: {set: {q: "6 // (n - 1)"}}
          good: {type: file.write, from: calc, with: {path: good.jsonl}}
          bad: {type: file.write, from: calc.errors, with: {path: bad.jsonl}}
        """)
    code, _, _ = in_tmp("run", graph, "--stats-file", "stats.json")
    assert code == 0
    assert [e["q"] for e in jsonl(tmp_path / "good.jsonl")] == [-6, 6]  # order kept around the retry
    bad = jsonl(tmp_path / "bad.jsonl")
    assert [b["event"] for b in bad] == [{"n": 1}]
    assert "after 2 retries" in str(bad[0]["error"])
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["elapsed_s"] >= 0.06  # 20 ms, then 40 ms of backoff
    assert stats["nodes"]["calc"]["errors"] == 1


def test_file_read_formats_and_bad_lines(in_tmp, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n\nnot json\n[1, 2]\n{"a": 2}\n')
    (tmp_path / "in.txt").write_text("alpha\nbeta\r\n")
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          j: {type: file.read, on_error: dead_letter, with: {path: in.jsonl}}
          l: {type: file.read, with: {path: in.txt, format: lines}}
          wj: {type: file.write, from: j, with: {path: j.jsonl}}
          bad: {type: file.write, from: j.errors, with: {path: bad.jsonl}}
          wl: {type: file.write, from: l, with: {path: l.csv, format: csv}}
        """)
    code, _, err = in_tmp("run", graph)
    assert (code, err) == (0, "")
    assert jsonl(tmp_path / "j.jsonl") == [{"a": 1}, {"a": 2}]
    assert [(b["error"], b["event"]) for b in jsonl(tmp_path / "bad.jsonl")] == [
        ("line 3: invalid JSON (Expecting value at column 1)", {"line": "not json"}),
        ("line 4: expected a JSON object, got list", {"line": "[1, 2]"}),
    ]
    assert (tmp_path / "l.csv").read_text() == "line\nalpha\nbeta\n"


def test_file_write_append_mode_keeps_existing_lines_and_csv_header(in_tmp, tmp_path):
    (tmp_path / "out.csv").write_text("n,word\n0,zero\n")
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 2, fields: {word: "'w' + str(i)", n: i + 1}}}
          out: {type: file.write, from: gen, with: {path: out.csv, format: csv, mode: append}}
        """)
    assert in_tmp("run", graph)[0] == 0
    assert (tmp_path / "out.csv").read_text() == "n,word\n0,zero\n1,w0\n2,w1\n"
    Path(graph).write_text(Path(graph).read_text().replace("mode: append", "mode: truncate"))
    assert in_tmp("run", graph)[0] == 0
    assert (tmp_path / "out.csv").read_text() == "word,n\nw0,1\nw1,2\n"  # declared field order


SEEDED = """
    version: 1
    nodes:
      gen: {{type: generate, with: {{count: 5, seed: {seed}, fields: {{n: i, r: "rand()"}}}}}}
      out: {{type: stdout, from: gen}}
    """


def test_generate_seed_makes_rand_reproducible(in_tmp, tmp_path):
    runs = []
    for seed in (7, 7, 8):
        graph = write_graph(tmp_path, SEEDED.format(seed=seed))
        code, out, _ = in_tmp("run", graph)
        assert code == 0
        runs.append([json.loads(line)["r"] for line in out.splitlines()])
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert len(set(runs[0])) == 5 and all(0 <= r < 1 for r in runs[0])


def test_generate_rate_paces_events_without_blocking():
    from engine.node import Failures, ManualClock, NodeContext
    from engine.plan import ErrorPolicy
    from engine.transforms import Generate, parse_generate

    clock = ManualClock(1000.0)
    ctx = NodeContext("gen", "generate", parse_generate({"count": 10, "rate": 4, "fields": {"n": "i"}}), ("out",),
                      ErrorPolicy(), clock)
    gen = Generate(ctx)
    outs: list[list[dict[str, object]]] = [[]]
    assert gen.poll(1024, clock.now(), outs, Failures())
    assert outs[0] == [{"n": 0}]
    assert gen.deadline() == 1000.25  # the next event is due a quarter second later
    clock.advance(1.0)
    gen.poll(1024, clock.now(), outs, Failures())
    assert [e["n"] for e in outs[0]] == [0, 1, 2, 3, 4]
    clock.advance(10.0)
    assert not gen.poll(1024, clock.now(), outs, Failures())
    assert [e["n"] for e in outs[0]] == list(range(10))


def test_map_rename_keeps_position_then_remove_then_keep(in_tmp, tmp_path):
    graph = write_graph(tmp_path, """
        version: 1
        nodes:
          gen: {type: generate, with: {count: 2, fields: {a: i, b: "'x'", c: i * 10}}}
          shaped:
            type: map
            from: gen
            with: {set: {d: a + c}, rename: {a: alpha}, remove: [b], keep: [d, alpha, missing]}
          out: {type: stdout, from: shaped}
        """)
    code, out, _ = in_tmp("run", graph)
    assert code == 0
    assert out.splitlines() == ['{"d":0,"alpha":0}', '{"d":11,"alpha":1}']


@pytest.mark.parametrize("mode", ["all", "first"])
def test_route_names_the_failing_condition(in_tmp, tmp_path, mode):
    graph = write_graph(tmp_path, f"""
        version: 1
        nodes:
          gen: {{type: generate, with: {{count: 2, fields: {{n: i}}}}}}
          split:
            type: route
            from: gen
            on_error: dead_letter
            with: {{mode: {mode}, routes: {{big: n > 5, odd: "10 % n == 0"}}}}
          bad: {{type: file.write, from: split.errors, with: {{path: bad.jsonl}}}}
          rest: {{type: file.write, from: split.unmatched, with: {{path: rest.jsonl}}}}
        """)
    assert in_tmp("run", graph)[0] == 0
    assert [b["error"] for b in jsonl(tmp_path / "bad.jsonl")] == ["division by zero in routes.odd '10 % n == 0'"]
    assert jsonl(tmp_path / "rest.jsonl") == []  # n=1: 10 % 1 == 0 matches `odd`, which has no consumer
