"""`engine test` speed: 200 graph tests over the shipped graphs, beside `engine run` of the same graphs.

Generates, in a temporary directory, one test file per shipped graph in graphs/ (the graph,
its data and fixtures copied beside it): the tests of graphs/*.test.yaml replicated under
distinct names (their stored snapshots too) until there are `--tests` of them, spread evenly
over the graphs. Then, in one process run, side by side:

  engine test DIR (in-process)   adapters.cli.main.run(["test", DIR]): one process, each graph
                                 loaded once per file; per test from the reported durations
  engine test DIR (subprocess)   the same as a user runs it: a fresh process, start-up included
  engine run, subprocess         the reference a user without `engine test` has: for each test,
                                 one `engine run` process of the graph on the test's events
  engine run, in-process         the same runs through `run_graph.cmd_run` (load, build, run),
                                 without the process start-up

`engine run` uses the graphs' real sources: a test's events are written to a CSV file its
`file.read` source is pointed at (ORDERS_CSV), or a `generate` source emits as many events
(ORDERS, READINGS); file outputs and durable state go to the temporary directory. Graphs that
`engine run` cannot run to an end (an HTTP listener, a followed file, an unbounded generator)
have no `engine run` reference; the output says which and why. The `engine test` rows run
every test; best of `--repeat` for those, each `engine run` once. A reported figure, not a
test: tests/test_bench_scripts.py only checks that the script runs, every test passes and
every run succeeds. Usage:

    .venv/bin/python bench/test_bench.py                 # 200 tests, best of 3
    .venv/bin/python bench/test_bench.py --quick         # 14 tests, one engine run per graph
    .venv/bin/python bench/test_bench.py --tests 500 --json out.json
"""

import argparse
import contextlib
import copy
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.cli.main import run as engine_main  # noqa: E402
from adapters.cli.registry import default_registry  # noqa: E402
from adapters.cli.run_graph import cmd_run  # noqa: E402
from adapters.testing.snapshots import render, snapshot_path  # noqa: E402
from adapters.testing.test_file import load_test_file  # noqa: E402
from engine import buildinfo  # noqa: E402

GRAPHS = ROOT / "graphs"
ENGINE = Path(sys.executable).parent / "engine"  # the console script of this environment
DEFAULT_TESTS, QUICK_TESTS = 200, 14


@dataclass(frozen=True)
class Reference:
    """How `engine run` runs a graph on a test's events with the graph's own source."""

    source: str  # the source node the test feeds
    feed: str  # "csv": the events written as a CSV file; "count": as many generated events
    variable: str  # the graph's ${VARIABLE} that points the source at them
    outputs: tuple[str, ...] = ()  # variables of output paths, sent to the temporary directory


REFERENCES = {
    "orders_etl": Reference("raw", "csv", "ORDERS_CSV", ("ETL_OUT", "ETL_REJECTS")),
    "durable_orders": Reference("raw", "csv", "ORDERS_CSV", ("DURABLE_OUT",)),  # a fresh state dir per run
    "quickstart": Reference("orders", "count", "ORDERS"),
    "sensor_scores": Reference("readings", "count", "READINGS"),
}
NOT_RUN = {
    "access_logs": "its file.read follows the access log (follow: true) until stopped",
    "alerts": "its generate source has a rate and no count: it runs until stopped",
    "http_bridge": "it listens for HTTP until stopped",
    "nats_orders": "its nats.read follows a JetStream stream until stopped (and needs a server)",
    "postgres_orders": "its postgres.read polls a table until stopped (and needs a server)",
    "tail_errors": "its file.read follows the log (follow: true) until stopped",
}


@dataclass
class Check:
    """One test as an `engine run`: its graph file and the environment that feeds it."""

    graph: str
    test: str
    path: Path
    env: dict[str, str]


@dataclass
class Row:
    what: str
    runs: int
    seconds: float
    note: str = ""

    @property
    def per_run_ms(self) -> float:
        return self.seconds / self.runs * 1000 if self.runs else float("nan")


@dataclass
class Measured:
    rows: list[Row] = field(default_factory=list)
    durations: dict[str, list[float]] = field(default_factory=dict)  # graph -> reported test seconds
    run_in_process: dict[str, list[float]] = field(default_factory=dict)  # graph -> seconds per engine run
    run_subprocess: dict[str, list[float]] = field(default_factory=dict)
    tests_ok: bool = True
    runs_ok: bool = True
    failures: list[str] = field(default_factory=list)


def spread(total: int, graphs: list[str]) -> dict[str, int]:
    """`total` tests over the graphs, as evenly as they go."""
    return {g: total // len(graphs) + (1 if i < total % len(graphs) else 0) for i, g in enumerate(graphs)}


def generate(folder: Path, total: int) -> dict[str, int]:
    """The graphs, their data and fixtures, and `total` tests in one test file per graph."""
    shutil.copytree(GRAPHS, folder, ignore=shutil.ignore_patterns("*.test.yaml", "*.test.toml", "__snapshots__"))
    yaml = YAML()  # round trip: the shipped files as written, comments and all
    yaml.width = 4096
    yaml.preserve_quotes = True
    shipped = sorted(GRAPHS.glob("*.test.yaml"))
    counts = spread(total, [p.name.removesuffix(".test.yaml") for p in shipped])
    for path in shipped:
        count = counts[path.name.removesuffix(".test.yaml")]
        if not count:
            continue
        data = yaml.load(path.read_text(encoding="utf-8"))
        originals = list(data["tests"])
        stored = json.loads(snapshot_path(str(path)).read_text()) if snapshot_path(str(path)).exists() else {}
        tests, snapshots = [], {}
        for k in range(count):
            original = originals[k % len(originals)]
            test = copy.deepcopy(original)
            copy_number = k // len(originals)
            if copy_number:
                test["name"] = f"{original['name']} #{copy_number}"
            tests.append(test)
            if original["name"] in stored:
                snapshots[test["name"]] = stored[original["name"]]
        data["tests"] = tests
        target = folder / path.name
        with target.open("w", encoding="utf-8") as stream:
            yaml.dump(data, stream)
        if snapshots:
            snapshot_path(str(target)).parent.mkdir(exist_ok=True)
            snapshot_path(str(target)).write_text(render(snapshots), encoding="utf-8")
    return counts


def checks(folder: Path, counts: dict[str, int]) -> list[Check]:
    """Every test of a graph `engine run` can run, as the file and environment of that run."""
    registry = default_registry()
    out: list[Check] = []
    for graph, count in counts.items():
        reference = REFERENCES.get(graph)
        if reference is None or not count:
            continue
        tf = load_test_file(folder / f"{graph}.test.yaml", registry)
        assert tf.ok and tf.graph is not None, [p.message for p in tf.problems]
        for index, test in enumerate(tf.tests):
            events = test.inputs.get(reference.source, [])
            work = folder / "runs" / f"{graph}-{index}"
            work.mkdir(parents=True)
            env = {name: str(work / f"{name.lower()}.jsonl") for name in reference.outputs}
            env["HEADRACE_STATE_DIR"] = str(work / "state")
            if reference.feed == "count":
                env[reference.variable] = str(len(events))
            else:
                env[reference.variable] = str(write_csv(work / "input.csv", events))
            out.append(Check(graph, test.name, Path(tf.graph.file).resolve(), env))
    return out


def write_csv(path: Path, events: list[dict[str, object]]) -> Path:
    header = list(dict.fromkeys(key for event in events for key in event))
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, header, restval="")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in event.items()} for event in events)
    return path


def fresh_state(check: Check) -> None:
    shutil.rmtree(check.env["HEADRACE_STATE_DIR"], ignore_errors=True)  # durable edges resume otherwise


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """stdout captured (what the command prints), stderr dropped (the nodes' warnings)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    captured = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        yield captured
        out.flush()
        captured.write(out.buffer.getvalue().decode("utf-8"))  # type: ignore[attr-defined]


def engine_command() -> list[str]:
    return [str(ENGINE)] if ENGINE.exists() else [sys.executable, "-m", "adapters.cli.main"]


def measure(folder: Path, tests: int, repeat: int, run_checks: list[Check], graph_of: dict[str, str],
            result: Measured) -> None:
    # engine test, in this process: best of `repeat`; per-test durations from that round's report
    best_seconds, best_report, first_seconds = float("inf"), {}, 0.0
    for _ in range(repeat):
        with quiet() as out:
            started = time.perf_counter()
            code = engine_main(["test", str(folder), "--format", "json"])
            seconds = time.perf_counter() - started
        report = json.loads(out.getvalue())
        if code != 0 or report["summary"]["failed"] or len(report["tests"]) != tests:
            result.tests_ok = False
            result.failures += [f"{t['file']}::{t['name']}: {t['failures']}" for t in report["tests"]
                                if t["outcome"] != "passed"] + [str(p) for p in report["problems"]]
        first_seconds = first_seconds or seconds
        if seconds < best_seconds:
            best_seconds, best_report = seconds, report
    result.durations = {}
    for t in best_report["tests"]:
        result.durations.setdefault(graph_of[Path(t["file"]).name], []).append(t["duration_s"])
    reported = [d for ds in result.durations.values() for d in ds]
    result.rows.append(Row("engine test DIR (in-process)", tests, best_seconds,
                           f"reported per test: mean {statistics.mean(reported) * 1000:.1f} ms, "
                           f"median {statistics.median(reported) * 1000:.1f} ms; first round {first_seconds:.2f} s"))

    # engine test, a fresh process as a user runs it
    best_seconds = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        # From the checkout's root, as a user runs it: a lookup table's path is relative to it.
        done = subprocess.run([*engine_command(), "test", str(folder)], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        best_seconds = min(best_seconds, time.perf_counter() - started)
        if done.returncode != 0:
            result.tests_ok = False
            result.failures.append(f"engine test exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    result.rows.append(Row("engine test DIR (subprocess)", tests, best_seconds, "start-up included"))

    if not run_checks:
        return
    # the tests engine run runs below, as engine test timed them (like for like)
    ran = {g: sum(1 for c in run_checks if c.graph == g) for g in REFERENCES}
    same = [d for g, n in ran.items() for d in result.durations.get(g, [])[:n]]
    result.rows.append(Row("engine test, the same tests (reported)", len(same), sum(same),
                           "graph loads and start-up excluded"))

    # engine run: a process per test
    total = 0.0
    for check in run_checks:
        fresh_state(check)
        started = time.perf_counter()
        done = subprocess.run([*engine_command(), "run", str(check.path)], cwd=Path(check.env["HEADRACE_STATE_DIR"]
                              ).parent, env={**os.environ, **check.env}, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        total += seconds
        result.run_subprocess.setdefault(check.graph, []).append(seconds)
        if done.returncode != 0:
            result.runs_ok = False
            result.failures.append(f"engine run {check.graph} ({check.test}) exited {done.returncode}: "
                                   f"{done.stderr.strip()[-500:]}")
    result.rows.append(Row("engine run, subprocess (one per test)", len(run_checks), total, "start-up included"))

    # engine run in this process: load, build, run; no start-up
    total = 0.0
    cwd = Path.cwd()
    for check in run_checks:
        fresh_state(check)
        os.chdir(Path(check.env["HEADRACE_STATE_DIR"]).parent)
        try:
            with environment(check.env), quiet():
                started = time.perf_counter()
                code = cmd_run(str(check.path), None)
                seconds = time.perf_counter() - started
        finally:
            os.chdir(cwd)
        total += seconds
        result.run_in_process.setdefault(check.graph, []).append(seconds)
        if code != 0:
            result.runs_ok = False
            result.failures.append(f"in-process engine run {check.graph} ({check.test}) exited {code}")
    result.rows.append(Row("engine run, in-process (cmd_run)", len(run_checks), total, "load + build + run"))


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for index, row in enumerate([header] + rows):
        print(" | ".join(c.ljust(w) if i == 0 or i == len(row) - 1 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if index == 0:
            print("-+-".join("-" * w for w in widths))


def median_ms(values: list[float] | None) -> str:
    return f"{statistics.median(values) * 1000:.1f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, help=f"tests in all, over the shipped graphs (default {DEFAULT_TESTS})")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_TESTS} tests, one round, one engine run per graph: checks, not numbers")
    parser.add_argument("--repeat", type=int, help="rounds of the engine test rows; the best counts (default 3)")
    parser.add_argument("--runs-per-graph", type=int,
                        help="engine runs per graph at most (default: one per test; 1 with --quick)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    tests = args.tests or (QUICK_TESTS if args.quick else DEFAULT_TESTS)
    repeat = args.repeat or (1 if args.quick else 3)
    per_graph = args.runs_per_graph or (1 if args.quick else None)
    result = Measured()
    with tempfile.TemporaryDirectory(prefix="headrace-test-bench-") as tmp:
        folder = Path(tmp) / "graphs"
        counts = generate(folder, tests)
        tests = sum(counts.values())
        graph_of = {f"{g}.test.yaml": g for g in counts}
        run_checks = checks(folder, counts)
        if per_graph is not None:
            run_checks = [c for c in run_checks
                          if [x for x in run_checks if x.graph == c.graph].index(c) < per_graph]
        measure(folder, tests, repeat, run_checks, graph_of, result)

    unknown = sorted(g for g in counts if g not in REFERENCES and g not in NOT_RUN)
    skipped = {**{g: NOT_RUN[g] for g in counts if g in NOT_RUN},
               **dict.fromkeys(unknown, "no finite engine run known to this bench")}
    print(f"Python {sys.version.split()[0]}, engine {buildinfo.mode()}; {tests} tests over {len(counts)} graphs; "
          f"engine test rows best of {repeat}; tests {'OK' if result.tests_ok else 'FAILED'}, "
          f"runs {'OK' if result.runs_ok else 'FAILED'}\n")
    base = result.rows[0].per_run_ms
    table(["what", "runs", "total s", "per run ms", "x engine test", "note"],
          [[r.what, str(r.runs), f"{r.seconds:.2f}", f"{r.per_run_ms:.1f}", f"{r.per_run_ms / base:.1f}x", r.note]
           for r in result.rows])
    print()
    table(["graph", "tests", "engine test median ms", "engine run in-process ms", "engine run subprocess ms",
           "note"],
          [[g, str(counts[g]), median_ms(result.durations.get(g)), median_ms(result.run_in_process.get(g)),
            median_ms(result.run_subprocess.get(g)),
            f"no engine run: skipped ({skipped[g]})" if g in skipped else REFERENCES[g].variable + " feeds "
            + REFERENCES[g].source] for g in counts if counts[g]])
    if skipped:
        print(f"\nengine run skipped for {', '.join(skipped)}: cannot be run to an end by `engine run`.")
    if args.json:
        args.json.write_text(json.dumps({
            "python": sys.version.split()[0], "engine": buildinfo.mode(), "tests": tests, "repeat": repeat,
            "tests_ok": result.tests_ok, "runs_ok": result.runs_ok,
            "rows": [{"what": r.what, "runs": r.runs, "seconds": r.seconds, "per_run_ms": r.per_run_ms,
                      "ratio": r.per_run_ms / base, "note": r.note} for r in result.rows],
            "graphs": {g: {"tests": counts[g], "test_seconds": result.durations.get(g, []),
                           "run_in_process_seconds": result.run_in_process.get(g, []),
                           "run_subprocess_seconds": result.run_subprocess.get(g, []),
                           "skipped": skipped.get(g, "")} for g in counts},
        }, indent=2) + "\n")
    if result.failures:
        print("\n" + "\n".join(result.failures[:20]), file=sys.stderr)
        raise SystemExit("some tests failed or some runs did not succeed")


if __name__ == "__main__":
    main()
