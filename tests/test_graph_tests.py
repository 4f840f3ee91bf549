"""`engine test`: graph tests run the real plan with fixture sources and captured sinks, and
say what differs; bad test files are problems at `file:line:col`, never tracebacks."""

import json
import shutil
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from adapters.testing.conditions import canon
from loader.api import graph_files, is_graph_file
from tests.conftest import ROOT

GRAPHS = ROOT / "graphs"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def etl(tmp_path: Path) -> Path:
    """A copy of the shipped orders_etl graph, to write test files beside."""
    shutil.copy(GRAPHS / "orders_etl.yaml", tmp_path / "orders_etl.yaml")
    return tmp_path


def test_every_shipped_graph_has_a_test_file_and_they_all_pass(cli):
    graphs = [p for d in (GRAPHS, GRAPHS / "toml") for p in graph_files(d)]
    for graph in graphs:
        tests = [graph.with_name(graph.stem + suffix) for suffix in (".test.yaml", ".test.toml")]
        assert any(t.exists() for t in tests), f"{graph} has no test file"
    code, out, err = cli("test", "graphs/")
    assert code == 0, out + err
    assert "FAIL" not in out and out.count("PASS") >= 2 * len(graphs)


def test_the_example_of_the_issue_works_and_a_wrong_field_is_named(cli, etl):
    write(etl / "fixtures/bad.csv", """\
        order_id,user,amount,country,note
        1,ann,oops,de,
        2,bob,,fr,
        3,cy,x,us,
        4,dee,2.5,se,
        """)
    test = write(etl / "orders_etl.test.yaml", """\
        version: 1
        graph: orders_etl.yaml
        env: {ETL_MIN: "10"}
        tests:
          - name: valid orders come out cleaned
            inputs:
              raw:
                - {order_id: "1", user: " Ann ", amount: "12.5", country: "de"}
                - {order_id: "2", user: "bob", amount: "oops", country: ""}
            expect:
              out:
                equals:
                  - {id: "1", user: "ann", amount: 12.5, country: "DE"}
              cleaned.errors:
                count: 1
          - name: rejects keep the reason
            inputs:
              raw: {file: fixtures/bad.csv}
            expect:
              rejects:
                all: "amount == null or len(error) > 0"
                count: 3
              out:
                snapshot: true
          - name: deliberately wrong
            inputs:
              raw:
                - {order_id: "7", user: "Zoe", amount: "3", country: "fr"}
            expect:
              out:
                equals:
                  - {id: "7", user: "zoe", amount: 3.0, country: "DE"}
        """)
    code, out, _ = cli("test", str(test))
    assert code == 1
    assert "PASS " + str(test) + "::valid orders come out cleaned" in out
    # The snapshot does not exist yet: the test says how to write it.
    assert f"{test}:24: expect out: snapshot: no snapshot stored" in out and "engine test --update" in out
    # The failing condition's line, the event and the field that differs.
    assert f"{test}:31: expect out: equals:" in out
    assert "event 1 differs:" in out and 'country: expected "DE", got "FR"' in out
    code, out, _ = cli("test", str(test), "--update", "-k", "rejects")
    assert code == 0 and "snapshot written" in out
    snapshot = json.loads((etl / "__snapshots__/orders_etl.test.yaml.snap").read_text())
    assert snapshot == {"rejects keep the reason": {"out": [{"id": "4", "user": "dee", "amount": 2.5,
                                                             "country": "SE"}]}}
    code, out, _ = cli("test", str(test), "-k", "REJECTS")
    assert code == 0 and out.count("PASS") == 1 and "deliberately" not in out


def test_a_snapshot_that_no_longer_matches_fails_with_the_difference(cli, etl):
    test = write(etl / "orders_etl.test.yaml", """\
        version: 1
        graph: orders_etl.yaml
        tests:
          - name: snap
            inputs:
              raw: [{order_id: "1", user: "ann", amount: "2", country: "de"}]
            expect:
              out: {snapshot: true}
        """)
    assert cli("test", str(test), "--update")[0] == 0
    snap = etl / "__snapshots__/orders_etl.test.yaml.snap"
    snap.write_text(snap.read_text().replace('"amount": 2.0', '"amount": 3.0'))
    code, out, _ = cli("test", str(test))
    assert code == 1 and "amount: expected 3.0, got 2.0" in out and "as stored in" in out
    code, out, _ = cli("test", str(test), "--update")
    assert code == 0 and "snapshot updated" in out
    assert cli("test", str(test))[0] == 0


def test_sinks_never_touch_the_outside_world(cli, etl, monkeypatch):
    monkeypatch.chdir(etl)
    test = write(etl / "t.test.yaml", """\
        version: 1
        graph: orders_etl.yaml
        env: {ETL_OUT: written.jsonl, ORDERS_CSV: no-such-file.csv}
        tests:
          - name: captured
            inputs:
              raw: [{order_id: "1", user: "ann", amount: "2", country: "de"}]
            expect:
              out: {count: 1}
        """)
    code, out, _ = cli("test", str(test))
    assert code == 0, out
    assert not (etl / "written.jsonl").exists() and not (etl / "out").exists()


def test_interpolation_sees_only_the_test_files_env(cli, tmp_path, monkeypatch):
    write(tmp_path / "g.yaml", """\
        version: 2
        name: g
        nodes:
          src: {type: stdin}
          tag: {type: map, from: src, with: {set: {who: "'${WHO:-nobody}'", level: "${LEVEL:-1}"}}}
          out: {type: stdout, from: tag}
        """)
    monkeypatch.setenv("WHO", "from-the-process")
    monkeypatch.setenv("LEVEL", "99")
    test = write(tmp_path / "g.test.yaml", """\
        version: 1
        graph: g.yaml
        env: {LEVEL: "7"}
        tests:
          - name: env
            inputs: {src: [{}]}
            expect:
              out: {equals: [{who: nobody, level: 7}]}
        """)
    code, out, _ = cli("test", str(test))
    assert code == 0, out


def test_the_virtual_clock_closes_processing_time_windows_without_sleeping(cli, tmp_path):
    write(tmp_path / "w.yaml", """\
        version: 2
        name: w
        nodes:
          src: {type: stdin}
          stamp: {type: map, from: src, with: {set: {t: "now()", r: "rand()"}}}
          per_hour:
            type: aggregate
            from: stamp
            with:
              by: k
              window: {type: tumbling, size: 1h}
              fields: {n: count(), last: max(t)}
          out: {type: stdout, from: per_hour}
        """)
    test = write(tmp_path / "w.test.yaml", """\
        version: 1
        graph: w.yaml
        tests:
          - name: five hours of events
            start_time: "2025-01-01T00:00:00Z"
            inputs:
              src: {events: [{k: a}, {k: a}, {k: a}, {k: a}, {k: a}, {k: a}], every: 1h}
            expect:
              out:
                count: 6
                all: "n == 1 and window_end - window_start == 3600"
              stamp: {snapshot: true}
        """)
    started = time.monotonic()
    code, out, _ = cli("test", str(test), "--update")
    assert code == 0, out
    assert time.monotonic() - started < 5  # six virtual hours
    stamped = json.loads((tmp_path / "__snapshots__/w.test.yaml.snap").read_text())["five hours of events"]["stamp"]
    assert [e["t"] for e in stamped] == [1735689600.0 + 3600 * i for i in range(6)]
    # rand() is seeded: the same numbers on every run, so the snapshot holds.
    assert cli("test", str(test))[0] == 0


def test_a_graph_failing_at_run_time_fails_that_test_only(cli, tmp_path):
    write(tmp_path / "g.yaml", """\
        version: 2
        name: g
        nodes:
          src: {type: stdin}
          strict: {type: map, from: src, on_error: stop, with: {set: {n: "int(n)"}}}
          out: {type: stdout, from: strict}
        """)
    test = write(tmp_path / "g.test.yaml", """\
        version: 1
        graph: g.yaml
        tests:
          - name: breaks
            inputs: {src: [{n: "x"}]}
            expect: {out: {count: 0}}
          - name: fine
            inputs: {src: [{n: "4"}]}
            expect: {out: {equals: [{n: 4}]}}
        """)
    code, out, err = cli("test", str(test))
    assert code == 1 and "Traceback" not in out + err
    assert f"{test}:4: the graph failed: node 'strict'" in out
    assert "PASS " + str(test) + "::fine" in out


@pytest.mark.parametrize(("body", "code", "where", "text"), [
    ("inputs: {rew: []}\n    expect: {out: {count: 0}}", "HR090", ":5:14:", "did you mean 'raw'?"),
    ("inputs: {cleaned: []}\n    expect: {out: {count: 0}}", "HR090", ":5:14:", "not a source"),
    ("expect: {outt: {count: 0}}", "HR090", ":5:14:", "did you mean 'out'?"),
    ("expect: {valid.nope: {count: 0}}", "HR090", ":5:14:", "no port 'nope'"),
    ("expect: {out: {equal: []}}", "HR021", ":5:20:", "did you mean 'equals'?"),
    ("expect: {out: {all: 'amount >'}}", "HR040", ":5:", "invalid expression"),
    ("inputs: {raw: {file: missing.jsonl}}\n    expect: {out: {count: 0}}", "HR091", ":5:26:", "missing.jsonl"),
    ("inputs: {raw: [1, 2]}\n    expect: {out: {count: 0}}", "HR022", ":5:", "expected"),
    ("expect: {out: {count: 0}}\n    stats: {edges: {'raw->nowhere': {dropped: 0}}}", "HR090", ":6:", "edge"),
])
def test_a_bad_test_file_is_a_problem_at_its_place(cli, etl, body, code, where, text):
    test = etl / "bad.test.yaml"
    test.write_text("version: 1\ngraph: orders_etl.yaml\ntests:\n  - name: t\n    " + body + "\n")
    status, out, err = cli("test", str(test))
    assert status == 1 and "Traceback" not in out + err
    line = next(line for line in out.splitlines() if f" {code} " in line)
    assert line.startswith(f"{test}{where}"), out
    assert text in out


def test_a_graph_that_does_not_exist_or_has_problems_is_reported(cli, tmp_path):
    tests = "tests: [{name: t, expect: {a: {count: 0}}}]\n"
    missing = write(tmp_path / "a.test.yaml", "version: 1\ngraph: nope.yaml\n" + tests)
    code, out, _ = cli("test", str(missing))
    assert code == 1 and f"{missing}:2:8: HR092" in out
    write(tmp_path / "broken.yaml", "version: 2\nname: broken\nnodes:\n  a: {type: nope}\n")
    broken = write(tmp_path / "b.test.yaml", "version: 1\ngraph: broken.yaml\n" + tests)
    code, out, _ = cli("test", str(broken))
    assert code == 1 and "broken.yaml:4:" in out and "HR031" in out


def test_usage_errors_exit_2(cli, tmp_path):
    assert cli("test", str(tmp_path / "nothing-here"))[0] == 2
    assert cli("test", str(tmp_path))[0] == 2  # no test files


def test_reports_for_ci(cli, etl):
    test = write(etl / "r.test.yaml", """\
        version: 1
        graph: orders_etl.yaml
        tests:
          - name: good
            inputs: {raw: [{order_id: "1", user: "a", amount: "1", country: "de"}]}
            expect: {out: {count: 1}}
          - name: bad
            inputs: {raw: [{order_id: "1", user: "a", amount: "1", country: "de"}]}
            expect: {out: {count: 2}}
        """)
    code, out, _ = cli("test", str(test), "--format", "json")
    report = json.loads(out)
    assert code == 1
    assert [(t["name"], t["outcome"]) for t in report["tests"]] == [("good", "passed"), ("bad", "failed")]
    assert report["tests"][1]["failures"][0]["line"] == 9
    assert report["summary"]["passed"] == 1 and report["summary"]["failed"] == 1
    code, out, _ = cli("test", str(test), "--format", "junit")
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["bad"]
    code, out, _ = cli("test", str(test), "--format", "github")
    assert f"::error file={test},line=9,title=test bad::expect out: count: expected 2 events, got 1" in out


def test_stats_are_checked(cli, etl):
    test = write(etl / "s.test.yaml", """\
        version: 1
        graph: orders_etl.yaml
        tests:
          - name: stats
            inputs: {raw: [{order_id: "1", user: "a", amount: "x", country: "de"}]}
            expect: {out: {count: 0}}
            stats:
              nodes: {cleaned: {errors: 0}}
              edges: {"raw->cleaned": {dropped: 0}}
        """)
    code, out, _ = cli("test", str(test))
    assert code == 1 and f"{test}:7: stats: node 'cleaned' errors: expected 0, got 1" in out


def test_test_files_are_not_graphs_to_validate_or_serve():
    assert not is_graph_file("orders_etl.test.yaml") and not is_graph_file("q.test.toml")
    assert is_graph_file("orders_etl.yaml")
    assert all(not p.name.endswith(".test.yaml") for p in graph_files(GRAPHS))


def test_values_compare_as_json():
    assert canon(1) == canon(1.0) and canon(True) != canon(1) and canon(None) != canon(0)
    assert canon({"a": [1, {"b": 2}]}) == canon({"a": [1.0, {"b": 2}]})


def test_schema_for_tests_is_printed_and_committed(cli):
    code, out, _ = cli("schema", "--tests")
    assert code == 0 and json.loads(out) == json.loads((ROOT / "schema/tests.v1.json").read_text())


@pytest.mark.parametrize(("name", "text"), [
    ("events.jsonl", '{"order_id": "1", "user": "a", "amount": "2", "country": "de"}\n'),
    ("events.json", '[{"order_id": "1", "user": "a", "amount": "2", "country": "de"}]'),
    ("events.csv", "order_id,user,amount,country\n1,a,2,de\n"),
])
def test_fixture_files_by_extension(cli, etl, name, text):
    (etl / name).write_text(text)
    test = write(etl / "f.test.yaml", f"""\
        version: 1
        graph: orders_etl.yaml
        tests:
          - name: fixture
            inputs: {{raw: {{file: {name}}}}}
            expect: {{out: {{equals: [{{id: "1", user: a, amount: 2.0, country: DE}}]}}}}
        """)
    code, out, _ = cli("test", str(test))
    assert code == 0, out


def test_retry_backoffs_pass_on_the_virtual_clock(cli, tmp_path):
    write(tmp_path / "r.yaml", """\
        version: 2
        name: r
        nodes:
          src: {type: stdin}
          m:
            type: map
            from: src
            on_error: {action: retry, attempts: 3, backoff: 1m, then: dead_letter}
            with: {set: {n: "int(n)", at: "now()"}}
          out: {type: stdout, from: m}
          dead: {type: stdout, from: m.errors}
        """)
    test = write(tmp_path / "r.test.yaml", """\
        version: 1
        graph: r.yaml
        tests:
          - name: three one-minute backoffs
            inputs: {src: [{n: "1"}, {n: "x"}, {n: "2"}]}
            expect:
              out: {count: 2}
              dead: {count: 1, all: "event.n == 'x'"}
        """)
    started = time.monotonic()
    code, out, _ = cli("test", str(test))
    assert code == 0, out
    assert time.monotonic() - started < 5  # minutes of backoff, on the virtual clock


def test_every_counter_a_test_may_check_is_in_the_stats(etl):
    from adapters.cli.registry import default_registry
    from adapters.testing.harness import Harness
    from adapters.testing.test_file import COUNTERS, load_test_file
    test = write(etl / "c.test.yaml", """\
        version: 1
        graph: orders_etl.yaml
        tests:
          - name: c
            inputs: {raw: [{order_id: "1", user: "a", amount: "1", country: "de"}]}
            expect: {out: {count: 1}}
        """)
    loaded = load_test_file(test, default_registry())
    stats = Harness(loaded.graph.plan, default_registry()).run(loaded.tests[0]).stats
    for group, names in COUNTERS.items():
        for entry in stats[group].values():
            assert set(names) <= set(entry), (group, entry)
