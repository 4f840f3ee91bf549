"""Engine findings (engine/findings.py) as loader problems, and the node families' checks.

The engine places what it finds by key path; `as_problem` locates a finding in the document
and makes it the loader's one problem type. A family check (engine/spec.py NodeFamily)
sees the compiled plan, the graph exactly as it will run. Anything but findings from a
check is a bug in the check, raised as one: a check whose results were quietly dropped
would be a validator that checks nothing.
"""

from dataclasses import replace

from engine.findings import Finding, KeyPath
from engine.plan import GraphPlan
from engine.spec import SpecRegistry
from loader.check_expressions import locate_expression
from loader.document import Document
from loader.problems import ERROR, Problem, format_path


def family_problems(doc: Document, registry: SpecRegistry, plan: GraphPlan) -> list[Problem]:
    """The problems the checks of the families with nodes in `plan` find."""
    problems: list[Problem] = []
    for family in registry.families_in(plan):
        for check in family.checks:
            problems += as_problems(doc, check(plan), f"a check of node family '{family.name}'")
    return problems


def as_problems(doc: Document, findings: object, source: str, under: KeyPath = ()) -> list[Problem]:
    """What a check (`source` names it) returned, as located problems; each finding's path is
    inside `under` (a node type's checks place theirs inside the node's `with:`)."""
    if not isinstance(findings, list):
        raise TypeError(f"internal error: {source} returned {type(findings).__name__}, not a list of Findings")
    problems: list[Problem] = []
    for found in findings:
        if not isinstance(found, Finding):
            raise TypeError(f"internal error: {source} returned {type(found).__name__}, not a Finding")
        problems.append(as_problem(doc, replace(found, path=under + found.path) if under else found))
    return problems


def as_problem(doc: Document, found: Finding) -> Problem:
    """The finding, located in `doc` (inside the expression for an expression error)."""
    if found.expression_error is not None:
        pos = locate_expression(doc, found.path, found.expression_error)
    else:
        pos = doc.locate(found.path, at_key=found.at_key)
    return Problem(found.code, ERROR, doc.file, pos.line, pos.column, format_path(found.path),
                   found.message, found.hint)
