"""Validation of GPU segments, for `engine validate` and every load: the GPU family's check
(adapters/gpu/family.py), which the loader runs over the plan it compiled.

Segments are found with the runtime's rule over the same plan and typed exactly as they
will run, so a graph that validates builds; only the device (float64 support, an OpenCL
device for `opencl.kernel`) is left for run time, since it belongs to the machine, not the
file. Findings are placed by key path; the loader turns them into located problems.
"""

from typing import Final

from adapters.gpu.program import ProgramError, build_program
from adapters.gpu.specs import membership, typed_members
from engine.chain import NOT_MEMBER, find_chains
from engine.durations import duration_ms
from engine.errors import RETRY
from engine.findings import Finding
from engine.plan import GraphPlan

EXPRESSION_CODE: Final = "HR048"
SEGMENT_CODE: Final = "HR049"


def check_segments(plan: GraphPlan) -> list[Finding]:
    findings: list[Finding] = []
    for node in plan.nodes:
        if membership(node) != NOT_MEMBER and node.on_error.action == RETRY:
            findings.append(Finding(SEGMENT_CODE, ("nodes", node.name, "on_error"),
                                    "on_error: retry is not available on opencl.* nodes (a kernel runs a whole batch)",
                                    "use drop, dead_letter or stop"))
    nodes = {node.name: node for node in plan.nodes}
    for segment in find_chains(plan, membership):
        try:
            build_program(typed_members((name, nodes[name].type, nodes[name].params()) for name in segment),
                          duration_ms)
        except ProgramError as exc:
            findings.append(_finding(segment[exc.member], exc))
    return findings


def _finding(member: str, exc: ProgramError) -> Finding:
    path = ("nodes", member, "with") + exc.path if exc.path else ("nodes", member)
    if exc.error is not None:
        return Finding(EXPRESSION_CODE, path, exc.message, exc.hint, expression_error=exc.error)
    return Finding(SEGMENT_CODE, path, exc.message, exc.hint, at_key=True)
