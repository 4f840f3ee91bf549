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
    expr.WRONG_ARGUMENT_COUNT: "HR043",
    expr.PRIVATE_NAME: "HR044",
    expr.UNKNOWN_AGGREGATE: "HR045",
    expr.AGGREGATE_SHAPE: "HR046",
    expr.UNKNOWN_NAME: "HR047",
    expr.INVALID_ARGUMENT: "HR053",
}


def locate_expression(doc: Document, path: KeyPath, error: expr.ExprError) -> Pos:
    """The place in the file of an error at (line, column) inside an expression value."""
    pos = doc.locate(path)
    line = doc.source_line(pos.line)
    rest = line[pos.column - 1:]
    if rest[:1] in ("|", ">"):
        # YAML block scalar: the text starts on the next line, after its indentation.
        first = doc.source_line(pos.line + 1)
        indent = len(first) - len(first.lstrip())
        return _clamp(doc, Pos(pos.line + 1 + error.line, indent + 1 + error.column), pos)
    opener = next((q for q in ('"""', "'''", '"', "'") if rest.startswith(q)), "")
    start = pos.column + len(opener)
    if opener in ('"""', "'''") and not rest[len(opener):].strip():
        # TOML multi-line string whose text starts on the next line.
        return _clamp(doc, Pos(pos.line + 1 + error.line, 1 + error.column), pos)
    if error.line > 0 and opener in ('"', "'"):
        # One quoted line: its line breaks were escapes (`\n`), so they are not the file's.
        return pos
    if error.line > 0:
        return _clamp(doc, Pos(pos.line + error.line, 1 + error.column), pos)
    return _clamp(doc, Pos(pos.line, start + error.column), pos)


def _clamp(doc: Document, found: Pos, fallback: Pos) -> Pos:
    """Folded scalars lose their line breaks; never point past the end of a line or file."""
    if found.line > len(doc.text.splitlines()) or found.column > len(doc.source_line(found.line)) + 1:
        return fallback
    return found


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
            if path in doc.unresolved:
                continue  # its interpolation failed and was reported
            for error in expr.check(source, rule.scope, rule.aggregate):
                pos = locate_expression(doc, path, error)
                problems.append(Problem(CODES[error.kind], ERROR, doc.file, pos.line, pos.column,
                                        format_path(path), error.message, error.hint))
    return problems
