"""Validation of GPU segments, for `engine validate` and every load: the loader calls
`check_segments` with its checked graph (SpecRegistry.graph_checks).

Segments are found with the runtime's rule and typed exactly as they will run, so a graph
that validates builds; only the device (float64 support, an OpenCL device for
`opencl.kernel`) is left for run time, since it belongs to the machine, not the file.
"""

from typing import Final

from adapters.gpu.program import REDUCE, ProgramError, build_program
from adapters.gpu.segments import Link, find_segments, plain
from adapters.gpu.specs import FAMILY
from engine.durations import duration_ms
from engine.plan import DEFAULT_POLICY, DEFAULT_STORAGE
from loader.check_expressions import locate_expression
from loader.document import Document
from loader.problems import ERROR, Problem, format_path
from loader.semantic import CheckedGraph

EXPRESSION_CODE: Final = "HR048"
SEGMENT_CODE: Final = "HR049"


def _plain(options: dict[str, object]) -> bool:
    return plain(options.get("policy", DEFAULT_POLICY), options.get("storage", DEFAULT_STORAGE))


def check_segments(graph: object, doc: object) -> list[object]:
    assert isinstance(graph, CheckedGraph) and isinstance(doc, Document)
    members = {name for name, node in graph.nodes.items() if node.spec.segment == FAMILY}
    if not members:
        return []
    problems: list[object] = []
    for name in sorted(members):
        on_error = graph.nodes[name].on_error
        action = on_error.get("action") if isinstance(on_error, dict) else on_error
        if action == "retry":
            path = ("nodes", name, "on_error")
            pos = doc.locate(path)
            problems.append(Problem(SEGMENT_CODE, ERROR, doc.file, pos.line, pos.column, format_path(path),
                                    "on_error: retry is not available on opencl.* nodes (a kernel runs a whole batch)",
                                    "use drop, dead_letter or stop"))
    inputs = {name: [Link(i.node, i.port, _plain(i.options)) for i in node.inputs] for name, node in graph.nodes.items()}
    ends = {name for name in members if graph.nodes[name].spec.name == REDUCE}
    for segment in find_segments(list(graph.nodes), members, inputs, ends):
        chain = [(name, graph.nodes[name].spec.name, graph.nodes[name].params) for name in segment]
        try:
            build_program(chain, duration_ms)
        except ProgramError as exc:
            problems.append(_problem(doc, segment[exc.member], exc))
    return problems


def _problem(doc: Document, member: str, exc: ProgramError) -> Problem:
    path = ("nodes", member, "with") + exc.path if exc.path else ("nodes", member)
    if exc.error is not None:
        pos = locate_expression(doc, path, exc.error)
        code = EXPRESSION_CODE
    else:
        pos = doc.locate(path, at_key=True)
        code = SEGMENT_CODE
    return Problem(code, ERROR, doc.file, pos.line, pos.column, format_path(path), exc.message, exc.hint)
