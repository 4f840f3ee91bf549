"""What the pytest fixtures call: a repository's problems, a graph's plan, a graph run
with given inputs and captured outputs (docs/testing.md, "pytest")."""

import os
from collections.abc import Mapping
from pathlib import Path

from adapters.cli.registry import default_registry
from adapters.testing.harness import Harness
from adapters.testing.test_file import DEFAULT_START, Expectation, GraphTest, parse_start_time
from engine.ids import DEFAULT_PORT, port_id
from engine.node import Event
from engine.spec import SINK, SOURCE
from loader.api import LoadResult, load_directory, load_file
from loader.problems import has_errors
from loader.report import render_text


class GraphProblems(AssertionError):
    """The graph does not load; the message is `engine validate`'s text."""


def _shown(path: Path) -> str:
    """A path as `engine validate` run from the current directory would name it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def validate(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[dict[str, object]]:
    """The problems of a graph file or a directory of them, as `engine validate --format json`
    prints them, with paths relative to the current directory."""
    target = Path(path)
    results = load_directory(target, default_registry(), env) if target.is_dir() else [
        load_file(target, default_registry(), env)]
    problems = [p.to_dict() for r in results for p in r.problems]
    for problem in problems:
        problem["file"] = _shown(Path(str(problem["file"])))
    return problems


def _loaded(path: str | os.PathLike[str], env: Mapping[str, str] | None) -> LoadResult:
    result = load_file(Path(path), default_registry(), dict(env or {}))
    if result.plan is None or has_errors(result.problems):
        raise GraphProblems(render_text(result.problems, {result.file: result.text}))
    return result


def plan(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The canonical plan (`engine plan`), interpolated with `env` only."""
    loaded = _loaded(path, env)
    assert loaded.plan is not None
    return loaded.plan.to_dict()


def run(path: str | os.PathLike[str], inputs: Mapping[str, list[Event]] | None = None,
        env: Mapping[str, str] | None = None, start_time: str = DEFAULT_START) -> dict[str, list[Event]]:
    """Runs the graph as `engine test` does: `inputs` feed its sources (the others emit
    nothing), sinks are captured. Returns what every sink received (by its name) and what
    every other node emitted on each port (`node` for `out`, else `node.port`)."""
    loaded = _loaded(path, env)
    graph = loaded.plan
    assert graph is not None
    registry = default_registry()
    kinds = {n.name: getattr(registry.get(n.type), "kind", "") for n in graph.nodes}
    for name in inputs or {}:
        if kinds.get(name) != SOURCE:
            sources = ", ".join(sorted(n for n, k in kinds.items() if k == SOURCE))
            raise ValueError(f"inputs name '{name}', which is not a source of graph '{graph.name}' "
                             f"(sources: {sources})")
    expect = []
    for node in graph.nodes:
        if kinds[node.name] == SINK:
            expect.append(Expectation(node.name, node.name, DEFAULT_PORT, True, [], 0))
            continue
        for port in node.outputs:
            key = node.name if port == DEFAULT_PORT else port_id(node.name, port)
            expect.append(Expectation(key, node.name, port, False, [], 0))
    test = GraphTest("headrace_run", 0, {k: list(v) for k, v in (inputs or {}).items()}, expect, {}, 0,
                     parse_start_time(start_time))
    outcome = Harness(graph, registry).run(test)
    if outcome.failure:
        raise RuntimeError(f"the graph failed: {outcome.failure}")
    return outcome.outputs
