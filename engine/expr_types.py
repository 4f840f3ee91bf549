"""The type an expression's value is certain to have, when it succeeds.

Fused code uses it to skip checks the value cannot fail: a `sum()` of a field set by
`int(...)` needs no number check. "Certain" means the exact class (a bool is not an int
here); anything not provably one type is UNKNOWN.
"""

import ast
from typing import Final

from engine.expr import parse

UNKNOWN: Final = ""
INT: Final = "int"
FLOAT: Final = "float"
STR: Final = "str"
NUMBERS: Final = frozenset({INT, FLOAT})

_RESULT_OF_CALL: Final[dict[str, str]] = {
    "int": INT, "float": FLOAT, "len": INT, "str": STR, "lower": STR, "upper": STR, "strip": STR,
}
_ARITHMETIC: Final = (ast.Add, ast.Sub, ast.Mult, ast.Mod, ast.FloorDiv)


def type_of(source: str, fields: dict[str, str], index: bool = False) -> str:
    """The certain type of `source`; `fields` gives the known type of event fields (in
    generate, `index` says the name `i` is the event index, an int)."""
    tree, _ = parse(source)
    if tree is None:
        return UNKNOWN
    return _infer(tree.body, fields, index)


def _infer(node: ast.expr, fields: dict[str, str], index: bool) -> str:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or value is None:
            return UNKNOWN
        return {int: INT, float: FLOAT, str: STR}.get(type(value), UNKNOWN)
    if isinstance(node, ast.Name):
        if index:
            return INT if node.id == "i" else UNKNOWN
        return fields.get(node.id, UNKNOWN)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _RESULT_OF_CALL.get(node.func.id, UNKNOWN)
    if isinstance(node, ast.IfExp):
        body, orelse = _infer(node.body, fields, index), _infer(node.orelse, fields, index)
        return body if body == orelse else UNKNOWN
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _infer(node.operand, fields, index)
        return operand if operand in NUMBERS else UNKNOWN
    if isinstance(node, ast.BinOp):
        left, right = _infer(node.left, fields, index), _infer(node.right, fields, index)
        if left not in NUMBERS or right not in NUMBERS:
            return STR if isinstance(node.op, ast.Add) and left == right == STR else UNKNOWN
        if isinstance(node.op, ast.Div):
            return FLOAT
        if isinstance(node.op, _ARITHMETIC):
            return INT if left == right == INT else FLOAT
    return UNKNOWN
