"""Expression checks for every parameter a node spec marks as an expression."""

from typing import Final

from engine import expr
from engine.spec import EACH_VALUE, ExprParam, NodeSpec
from loader.document import Document, KeyPath, Pos
from loader.problems import ERROR, Problem, format_path

CODES: Final = {
    expr.SYNTAX: "HR040",
    expr.FORBIDDEN: "HR041",
    expr.UNKNOWN_FUNCTION: "HR042",
    expr.ARITY: "HR043",
    expr.PRIVATE_NAME: "HR044",
    expr.UNKNOWN_AGGREGATE: "HR045",
    expr.AGGREGATE_SHAPE: "HR046",
    expr.UNKNOWN_NAME: "HR047",
}


def _content_start(doc: Document, pos: Pos) -> tuple[Pos, bool]:
    """Where an expression's text begins, and whether it is on the value's own line."""
    line = doc.source_line(pos.line)
    rest = line[pos.column - 1:]
    for opener in ('"""', "'''", '"', "'"):
        if rest.startswith(opener):
            return Pos(pos.line, pos.column + len(opener)), True
    if rest[:1] in ("|", ">"):
        return pos, False
    return pos, True


def _locate(doc: Document, path: KeyPath, error: expr.ExprError) -> Pos:
    start, inline = _content_start(doc, doc.locate(path))
    if not inline or error.line > 0:
        return start
    return Pos(start.line, start.column + error.column)


def _expressions(params: dict[str, object], rule: ExprParam) -> list[tuple[KeyPath, str]]:
    value = params.get(rule.param)
    if rule.layout == EACH_VALUE:
        if not isinstance(value, dict):
            return []
        return [((rule.param, key), v) for key, v in value.items() if isinstance(v, str)]
    return [((rule.param,), value)] if isinstance(value, str) else []


def expression_problems(doc: Document, node_path: KeyPath, spec: NodeSpec,
                        params: dict[str, object]) -> list[Problem]:
    problems: list[Problem] = []
    for rule in spec.expressions:
        for relative, source in _expressions(params, rule):
            path = node_path + ("with",) + relative
            for error in expr.check(source, rule.scope, rule.aggregate):
                pos = _locate(doc, path, error)
                problems.append(Problem(CODES[error.kind], ERROR, doc.file, pos.line, pos.column,
                                        format_path(path), error.message, error.hint))
    return problems
