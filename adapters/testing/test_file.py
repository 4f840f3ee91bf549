"""Reading one graph test file: its schema, its graph, and every name it uses checked
against that graph, each problem placed at `file:line:col` like a graph file's."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Final

from adapters.testing.fixtures import FixtureError, read_fixture
from engine import expr
from engine.durations import duration_ms
from engine.ids import DEFAULT_PORT, split_port_ref
from engine.node import Event
from engine.plan import GraphPlan
from engine.spec import SINK, SOURCE, SpecRegistry
from loader.api import LoadResult, load_file, read_graph_text
from loader.check_expressions import CODES as EXPRESSION_CODES
from loader.check_expressions import locate_expression
from loader.check_schema import document_problems
from loader.document import Document, KeyPath
from loader.problems import ERROR, Problem, format_path, has_errors
from loader.read_toml import read_toml
from loader.read_yaml import read_yaml
from loader.test_schema import CONDITIONS, graph_test_schema

DEFAULT_START: Final = "2024-01-01T00:00:00Z"
# The counters of `engine run --stats-file` a test's `stats:` may check.
COUNTERS: Final = {"nodes": ("in", "out", "errors"),
                   "edges": ("enqueued", "dropped", "coalesced", "depth", "high_water", "capacity")}
# Counters only some node types keep (Transform.counters: a throttle's `dropped`, a join's `held`).
TYPE_COUNTERS: Final = ("dropped", "delayed", "held", "unmatched")


@dataclass
class Condition:
    kind: str  # one of CONDITIONS
    value: object
    line: int
    column: int


@dataclass
class Expectation:
    key: str  # as written: `node` or `node.port`
    node: str
    port: str
    sink: bool  # a sink's key checks what it received
    conditions: list[Condition]
    line: int


@dataclass
class GraphTest:
    name: str
    line: int
    inputs: dict[str, list[Event]]
    expect: list[Expectation]
    stats: dict[str, dict[str, dict[str, int]]]
    stats_line: int
    start_time: float
    every: dict[str, float] = field(default_factory=dict)  # paced inputs: seconds between events


@dataclass
class TestFile:
    file: str
    text: str = ""
    graph: LoadResult | None = None
    tests: list[GraphTest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_errors(self.problems) and self.graph is not None and self.graph.ok


class _Checker:
    def __init__(self, doc: Document, plan: GraphPlan, registry: SpecRegistry) -> None:
        self.doc = doc
        self.plan = plan
        specs = {n.name: registry.get(n.type) for n in plan.nodes}
        self.kinds = {name: spec.kind if spec is not None else "" for name, spec in specs.items()}
        self.problems: list[Problem] = []
        self.every: dict[str, float] = {}  # of the test being read

    def problem(self, code: str, path: KeyPath, message: str, hint: str, at_key: bool = True) -> None:
        pos = self.doc.locate(path, at_key=at_key)
        self.problems.append(Problem(code, ERROR, self.doc.file, pos.line, pos.column, format_path(path),
                                     message, hint))

    def node_hint(self, name: str, candidates: list[str]) -> str:
        return expr.suggest(name, candidates) or "nodes of this graph: " + ", ".join(candidates)

    def inputs(self, path: KeyPath, raw: dict[str, object]) -> dict[str, list[Event]]:
        sources = sorted(n for n, kind in self.kinds.items() if kind == SOURCE)
        out: dict[str, list[Event]] = {}
        for name, given in raw.items():
            where = path + (name,)
            if name not in self.kinds:
                self.problem("HR090", where, f"inputs name '{name}', which is not a node of graph "
                             f"'{self.plan.name}'", self.node_hint(name, sources))
                continue
            if self.kinds[name] != SOURCE:
                self.problem("HR090", where, f"inputs name '{name}', which is not a source: only sources "
                             "are fed in a test", "sources of this graph: " + ", ".join(sources))
                continue
            if isinstance(given, list):
                out[name] = [e for e in given if isinstance(e, dict)]
                continue
            if not isinstance(given, dict):
                continue
            if isinstance(given.get("file"), str):
                out[name] = self.fixture(where + ("file",), str(given["file"]))
            elif isinstance(given.get("events"), list):
                out[name] = [e for e in given["events"] if isinstance(e, dict)]
            every = duration_ms(given.get("every"))
            if every:
                self.every[name] = every / 1000
        return out

    def fixture(self, path: KeyPath, relative: str) -> list[Event]:
        fixture = Path(self.doc.file).parent / relative
        try:
            return read_fixture(fixture)
        except FixtureError as exc:
            where = f"{fixture}:{exc.line}: " if exc.line else ""
            hint = ("the path is relative to the test file; check it exists" if not exc.line else
                    "a fixture holds one event per line (JSON Lines), CSV rows with a header, or text lines")
            self.problem("HR091", path, f"fixture {relative}: {where}{exc.message}", hint, at_key=False)
            return []

    def expectation(self, path: KeyPath, key: str, raw: dict[str, object]) -> Expectation | None:
        node, port = split_port_ref(key)
        names = sorted(self.kinds)
        if node not in self.kinds:
            self.problem("HR090", path, f"expect names '{node}', which is not a node of graph '{self.plan.name}'",
                         self.node_hint(node, names))
            return None
        sink = self.kinds[node] == SINK
        ports = self.plan.node(node).outputs
        if (not sink and port not in ports) or (sink and port not in (DEFAULT_PORT,) + ports):
            offered = ", ".join(ports) if ports else "none (a sink: write its name alone for what it received)"
            self.problem("HR090", path, f"node '{node}' has no port '{port}'", f"its ports: {offered}")
            return None
        conditions: list[Condition] = []
        for kind in CONDITIONS:
            if kind not in raw:
                continue
            pos = self.doc.locate(path + (kind,), at_key=True)
            conditions.append(Condition(kind, raw[kind], pos.line, pos.column))
            if kind in ("all", "any") and isinstance(raw[kind], str):
                self.expression(path + (kind,), str(raw[kind]))
        return Expectation(key, node, port, sink, conditions, self.doc.locate(path, at_key=True).line)

    def expression(self, path: KeyPath, source: str) -> None:
        for error in expr.check(source):
            if error.kind == expr.UNKNOWN_NAME:
                continue  # any name is a field; a missing one reads as null
            pos = locate_expression(self.doc, path, error)
            self.problems.append(Problem(EXPRESSION_CODES[error.kind], ERROR, self.doc.file, pos.line, pos.column,
                                         format_path(path), error.message, error.hint))

    def stats(self, path: KeyPath, raw: dict[str, object]) -> dict[str, dict[str, dict[str, int]]]:
        known = {"nodes": sorted(self.kinds), "edges": sorted(e.id for e in self.plan.edges)}
        out: dict[str, dict[str, dict[str, int]]] = {}
        for group, entries in raw.items():
            if not isinstance(entries, dict):
                continue
            for name, counters in entries.items():
                where = path + (group, name)
                if name not in known[group]:
                    what = "node" if group == "nodes" else "edge"
                    self.problem("HR090", where, f"stats name {what} '{name}', which graph '{self.plan.name}' "
                                 "does not have", self.node_hint(name, known[group]))
                    continue
                for counter in counters if isinstance(counters, dict) else {}:
                    offered = COUNTERS[group] + (TYPE_COUNTERS if group == "nodes" else ())
                    if counter not in offered:
                        self.problem("HR090", where + (counter,), f"unknown counter '{counter}'",
                                     "counters: " + ", ".join(offered))
                out.setdefault(group, {})[name] = {str(k): int(str(v)) for k, v in counters.items()}
        return out


_EVENT_HINT: Final = 'an event is a mapping of fields, e.g. {id: "1", amount: 2.5}'
_FORMAT_HINT: Final = "the test-file format: docs/testing.md (schema/tests.v1.json)"


def _hinted(problem: Problem) -> Problem:
    """Schema problems the generic wording leaves without a hint get one about test files."""
    if problem.hint:
        return problem
    events = any(part in problem.path for part in ("inputs", "equals", "contains", "events"))
    return replace(problem, hint=_EVENT_HINT if events else _FORMAT_HINT)


def parse_start_time(text: object) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return -1.0


def load_test_file(path: Path, registry: SpecRegistry) -> TestFile:
    result = TestFile(file=str(path))
    text, problem = read_graph_text(path)
    if problem is not None or text is None:
        result.problems = [problem] if problem else []
        return result
    result.text = text = text.removeprefix("\ufeff")
    doc, problems = (read_toml if result.file.endswith(".toml") else read_yaml)(result.file, text)
    result.problems = problems
    if has_errors(problems):
        return result
    if not isinstance(doc.data, dict):
        pos = doc.locate(())
        result.problems.append(Problem("HR004", ERROR, doc.file, pos.line, pos.column, "",
                                       "the top level of a test file must be a mapping",
                                       "start with `version: 1`, `graph:` and a `tests:` list"))
        return result
    result.problems.extend(_hinted(p) for p in document_problems(doc, graph_test_schema()))
    if has_errors(result.problems):
        return result
    data = doc.data
    graph_path = path.parent / str(data["graph"])
    if not graph_path.is_file():
        pos = doc.locate(("graph",))
        result.problems.append(Problem("HR092", ERROR, doc.file, pos.line, pos.column, "graph",
                                       f"the graph file {data['graph']} does not exist (looked for {graph_path})",
                                       "`graph:` is relative to the test file"))
        return result
    env = {str(k): str(v) for k, v in dict(data.get("env") or {}).items()}
    result.graph = load_file(graph_path, registry, env)
    if not result.graph.ok or result.graph.plan is None:
        return result
    checker = _Checker(doc, result.graph.plan, registry)
    seen: dict[str, int] = {}
    for index, raw in enumerate(data["tests"]):
        base: KeyPath = ("tests", index)
        name = str(raw["name"])
        line = doc.locate(base + ("name",)).line
        if name in seen:
            checker.problem("HR093", base + ("name",), f"a second test named '{name}' (the first is on line "
                            f"{seen[name]})", "give every test in a file its own name", at_key=False)
        seen.setdefault(name, line)
        checker.every = {}
        inputs = checker.inputs(base + ("inputs",), dict(raw.get("inputs") or {}))
        expect = [checker.expectation(base + ("expect", key), str(key), dict(conds))
                  for key, conds in dict(raw["expect"]).items()]
        stats = checker.stats(base + ("stats",), dict(raw.get("stats") or {}))
        start = parse_start_time(raw.get("start_time", DEFAULT_START))
        if start < 0:
            checker.problem("HR025", base + ("start_time",), f"start_time {raw['start_time']!r} is not a time",
                            "write RFC 3339, e.g. 2024-06-01T12:00:00Z", at_key=False)
        result.tests.append(GraphTest(name, line, inputs, [e for e in expect if e is not None], stats,
                                      doc.locate(base + ("stats",), at_key=True).line, start, checker.every))
    result.problems.extend(checker.problems)
    return result
