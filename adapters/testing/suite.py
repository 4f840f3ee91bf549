"""Finding graph test files, running their tests, and what each test came to."""

import fnmatch
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from adapters.testing.conditions import Failure, check, equals_diff
from adapters.testing.harness import Harness, TestRun
from adapters.testing.snapshots import Snapshots, read_snapshots, snapshot_path, write_snapshots
from adapters.testing.test_file import GraphTest, TestFile, load_test_file
from engine.node import Event
from engine.spec import SpecRegistry
from loader.api import TEST_SUFFIXES
from loader.problems import Problem

PASSED: Final = "passed"
FAILED: Final = "failed"


@dataclass
class TestResult:
    file: str
    name: str
    line: int
    outcome: str = PASSED
    failures: list[Failure] = field(default_factory=list)
    duration_s: float = 0.0
    snapshot: str = ""  # with --update: "written" or "updated" when the file changed for this test


@dataclass
class FileOutcome:
    file: TestFile
    results: list[TestResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # the test file's and its graph's
    notes: list[str] = field(default_factory=list)  # snapshot files written


def find_test_files(paths: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Test files in `paths` (directories searched recursively), and the paths that do not exist."""
    found: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.name.endswith(TEST_SUFFIXES) and p.is_file()
                                and not any(part.startswith(".") for part in p.relative_to(path).parts)))
        elif path.is_file():
            found.append(path)
        else:
            missing.append(raw)
    unique = list(dict.fromkeys(found))
    return unique, missing


def selector(pattern: str | None) -> Callable[[str], bool]:
    """`-k`: a case-insensitive part of the name, or a glob with `*` and `?`."""
    if not pattern:
        return lambda name: True
    wanted = pattern.lower()
    if any(c in wanted for c in "*?["):
        return lambda name: fnmatch.fnmatchcase(name.lower(), wanted)
    return lambda name: wanted in name.lower()


def stats_failures(test: GraphTest, run: TestRun) -> list[str]:
    out: list[str] = []
    for group, entries in test.stats.items():
        actual_group = run.stats.get(group)
        for name, counters in entries.items():
            actual = actual_group.get(name, {}) if isinstance(actual_group, dict) else {}
            for counter, want in counters.items():
                got = actual.get(counter) if isinstance(actual, dict) else None
                if got != want:
                    what = "node" if group == "nodes" else "edge"
                    out.append(f"{what} '{name}' {counter}: expected {want}, got {got}")
    return out


class FileRunner:
    """The tests of one file; its graph is loaded and its registry built once."""

    def __init__(self, tf: TestFile, registry: SpecRegistry, update: bool = False) -> None:
        self.tf = tf
        self.update = update
        assert tf.graph is not None and tf.graph.plan is not None
        self.harness = Harness(tf.graph.plan, registry)
        self.stored, self.snapshot_problem = read_snapshots(tf.file)
        self.fresh: Snapshots = {}

    def run(self, test: GraphTest) -> TestResult:
        result = TestResult(self.tf.file, test.name, test.line)
        started = time.perf_counter()
        run = self.harness.run(test)
        if run.failure:
            result.failures.append(Failure(test.line, 1, f"the graph failed: {run.failure}"))
        else:
            self._check(test, run, result)
        result.duration_s = time.perf_counter() - started
        result.outcome = FAILED if result.failures else PASSED
        return result

    def _check(self, test: GraphTest, run: TestRun, result: TestResult) -> None:
        for expectation in test.expect:
            actual = run.outputs.get(expectation.key, [])
            for condition in expectation.conditions:
                if condition.kind == "snapshot":
                    if condition.value is True:
                        self._snapshot(test, expectation.key, actual, condition.line, condition.column, result)
                    continue
                failure = check(condition, actual)
                if failure is not None:
                    failure.message = f"expect {expectation.key}: {failure.message}"
                    result.failures.append(failure)
        failed_stats = stats_failures(test, run)
        if failed_stats:
            result.failures.append(Failure(test.stats_line, 1, "stats: " + "; ".join(failed_stats)))

    def _snapshot(self, test: GraphTest, key: str, actual: list[Event], line: int, column: int,
                  result: TestResult) -> None:
        self.fresh.setdefault(test.name, {})[key] = actual
        stored = self.stored.get(test.name, {}).get(key)
        if self.update:
            if stored is None:
                result.snapshot = "written"
            elif equals_diff(stored, actual)[0]:
                result.snapshot = result.snapshot or "updated"
            return
        where = snapshot_path(self.tf.file)
        if self.snapshot_problem:
            result.failures.append(Failure(line, column, f"expect {key}: snapshot: {self.snapshot_problem}"))
        elif stored is None:
            result.failures.append(Failure(line, column, f"expect {key}: snapshot: no snapshot stored in {where}",
                                           ["run `engine test --update` to write it, then review and commit it"]))
        else:
            message, details = equals_diff(stored, actual)
            if message:
                result.failures.append(Failure(line, column, f"expect {key}: snapshot: {message} (as stored in "
                                               f"{where}; `engine test --update` rewrites it)", details))

    def save(self, ran: set[str]) -> str:
        """With --update: writes the snapshots of the tests that ran, keeping those of tests
        not run (a `-k` selection) and dropping those of tests the file no longer has."""
        names = {t.name for t in self.tf.tests}
        merged = {k: v for k, v in self.stored.items() if k in names and k not in ran}
        merged.update(self.fresh)
        if not merged and not snapshot_path(self.tf.file).exists():
            return ""
        return write_snapshots(self.tf.file, merged)


def run_files(paths: list[Path], registry: SpecRegistry, select: Callable[[str], bool],
              update: bool = False) -> list[FileOutcome]:
    outcomes: list[FileOutcome] = []
    for path in paths:
        tf = load_test_file(path, registry)
        outcome = FileOutcome(tf)
        outcomes.append(outcome)
        outcome.problems = list(tf.problems) + (list(tf.graph.problems) if tf.graph is not None else [])
        if not tf.ok:
            continue
        runner = FileRunner(tf, registry, update)
        chosen = [t for t in tf.tests if select(t.name)]
        outcome.results = [runner.run(test) for test in chosen]
        if update:
            before = snapshot_path(tf.file).read_text(encoding="utf-8") if snapshot_path(tf.file).exists() else None
            problem = runner.save({t.name for t in chosen})
            if problem:
                outcome.notes.append(problem)
            elif snapshot_path(tf.file).exists() and snapshot_path(tf.file).read_text(encoding="utf-8") != before:
                outcome.notes.append(f"snapshots written: {snapshot_path(tf.file)}")
    return outcomes
