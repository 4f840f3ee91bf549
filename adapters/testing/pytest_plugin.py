"""The pytest plugin of the `headrace` distribution (entry point `pytest11`).

- Collects graph test files (`*.test.yaml`, `*.test.yml`, `*.test.toml` whose top level has
  `version`, `graph` and `tests`) as one item per test, so `pytest` runs them with its own
  reporting, `-k`, xdist and JUnit. Other files with those names are left alone.
- Offers the fixtures `headrace_validate`, `headrace_plan` and `headrace_run`.

Importing this module imports nothing of Headrace: a project that has no graph tests pays
for a suffix check per collected file and nothing else.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from adapters.testing.suite import FileRunner
    from adapters.testing.test_file import GraphTest, TestFile

SUFFIXES: Final = (".test.yaml", ".test.yml", ".test.toml")
_TOP_KEY: Final = re.compile(r"^(version|graph|tests)\s*[:=]", re.MULTILINE)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("headrace", "Headrace graph tests")
    group.addoption("--headrace-update", action="store_true", default=False,
                    help="write or refresh the snapshots of graph tests (as `engine test --update`)")


def is_headrace_test_file(path: Path) -> bool:
    """A test file of ours: the three top-level keys, found without parsing (cheap)."""
    if not path.name.endswith(SUFFIXES):
        return False
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return {m.group(1) for m in _TOP_KEY.finditer(text)} == {"version", "graph", "tests"}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> "GraphTestFile | None":
    if is_headrace_test_file(file_path):
        collected: GraphTestFile = GraphTestFile.from_parent(parent, path=file_path)
        return collected
    return None


class GraphTestFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from adapters.cli.registry import default_registry
        from adapters.testing.suite import FileRunner
        from adapters.testing.test_file import load_test_file

        registry = default_registry()
        loaded = load_test_file(self.path, registry)
        if not loaded.ok:
            yield FileProblems.from_parent(self, name="problems", loaded=loaded)
            return
        runner = FileRunner(loaded, registry, bool(self.config.getoption("headrace_update")))
        for test in loaded.tests:
            yield GraphTestItem.from_parent(self, name=test.name, test=test, runner=runner)


class GraphTestFailed(Exception):
    pass


class GraphTestItem(pytest.Item):
    def __init__(self, *, test: "GraphTest", runner: "FileRunner", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test = test
        self.runner = runner

    def runtest(self) -> None:
        result = self.runner.run(self.test)
        if self.runner.update:
            problem = self.runner.save({self.test.name})
            if problem:
                raise GraphTestFailed(problem)
        if result.failures:
            lines: list[str] = []
            for f in result.failures:
                lines.append(f"{result.file}:{f.line}: {f.message}")
                lines.extend(f"    {d}" for d in f.details)
            raise GraphTestFailed("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GraphTestFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.test.line - 1, f"graph test: {self.name}"


class FileProblems(pytest.Item):
    """A test file (or its graph) that does not load: one failing item with the problems."""

    def __init__(self, *, loaded: "TestFile", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = loaded

    def runtest(self) -> None:
        from loader.report import render_text

        problems = list(self.loaded.problems) + (list(self.loaded.graph.problems) if self.loaded.graph else [])
        sources = {self.loaded.file: self.loaded.text}
        if self.loaded.graph is not None:
            sources[self.loaded.graph.file] = self.loaded.graph.text
        raise GraphTestFailed(render_text(problems, sources))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "graph test file problems"


@pytest.fixture
def headrace_validate() -> Callable[..., list[dict[str, object]]]:
    """`headrace_validate(path)`: the problems of a graph file or directory, as
    `engine validate --format json` prints them, paths relative to the current directory."""
    from adapters.testing.api import validate

    return validate


@pytest.fixture
def headrace_plan() -> Callable[..., dict[str, object]]:
    """`headrace_plan(path, env=None)`: the canonical plan, as `engine plan` prints it."""
    from adapters.testing.api import plan

    return plan


@pytest.fixture
def headrace_run() -> Callable[..., dict[str, list[dict[str, object]]]]:
    """`headrace_run(path, inputs={...}, env={...})`: the graph run as a graph test runs it;
    what each sink received and each other node emitted, per sink/port."""
    from adapters.testing.api import run

    return run
