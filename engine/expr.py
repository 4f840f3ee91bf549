"""The expression language: one parser and one whitelist shared by every backend.

Expressions are a Python-like subset parsed with Python's own `ast` module (so the
grammar and precedence are exactly Python's), then checked against a whitelist of node
kinds and functions. Nothing here evaluates anything: the per-event backends compile the
checked tree once. Field access (`user.name`, `items[0]`) always means a lookup in the
event, never a Python attribute, so there is no object to escape through.
"""

import ast
import difflib
import warnings
from dataclasses import dataclass
from typing import Final

from engine.literal_checks import NOT_LITERAL, literal_problems

MAX_SOURCE_LENGTH: Final = 4096
MAX_DEPTH: Final = 64

# name -> (min args, max args); -1 means any number.
FUNCTIONS: Final[dict[str, tuple[int, int]]] = {
    # numeric
    "int": (1, 1), "float": (1, 1), "round": (1, 2), "abs": (1, 1),
    "min": (1, -1), "max": (1, -1),
    # math: the functions OpenCL kernels offer, so an expression runs in `map` and `opencl.map`
    "sqrt": (1, 1), "exp": (1, 1), "log": (1, 1), "log2": (1, 1), "log10": (1, 1),
    "pow": (2, 2), "floor": (1, 1), "ceil": (1, 1), "clamp": (3, 3),
    "sin": (1, 1), "cos": (1, 1), "tan": (1, 1), "asin": (1, 1), "acos": (1, 1),
    "atan": (1, 1), "atan2": (2, 2), "tanh": (1, 1), "hypot": (2, 2),
    # string
    "str": (1, 1), "lower": (1, 1), "upper": (1, 1), "strip": (1, 2),
    "startswith": (2, 2), "endswith": (2, 2), "contains": (2, 2),
    "split": (1, 3), "join": (1, 2), "len": (1, 1),
    # text (engine/text_functions.py)
    "replace": (3, 3), "title": (1, 1), "pad_left": (2, 3), "pad_right": (2, 3), "truncate": (2, 2),
    "format": (1, -1), "regex_match": (2, 2), "regex_extract": (2, 2), "regex_extract_all": (2, 2),
    "regex_replace": (3, 3),
    # parsing and encoding (engine/encoding_functions.py)
    "parse_json": (1, 1), "to_json": (1, 1), "parse_kv": (1, 3), "parse_csv_line": (1, 2),
    "parse_url": (1, 1), "base64_encode": (1, 1), "base64_decode": (1, 1),
    "url_encode": (1, 1), "url_decode": (1, 1), "parse_user_agent": (1, 1),
    # time
    "now": (0, 0), "rand": (0, 0), "parse_time": (1, 2), "format_time": (1, 3),
    "to_unix_ms": (1, 1), "from_unix_ms": (1, 1), "truncate_time": (2, 2),
    # null handling
    "coalesce": (1, -1), "exists": (1, 1),
    # hashing and ids
    "sha256": (1, 1), "sha1": (1, 1), "md5": (1, 1), "stable_hash": (1, 1), "uuid4": (0, 0),
    # types
    "type_of": (1, 1), "is_number": (1, 1), "is_string": (1, 1), "to_bool": (1, 1),
    # collections
    "keys": (1, 1), "values": (1, 1), "merge": (2, -1), "get": (2, 3), "sorted": (1, 1),
    "unique": (1, 1), "flatten": (1, 1), "sum_of": (1, 1), "min_of": (1, 1), "max_of": (1, 1),
}

AGGREGATES: Final[dict[str, tuple[int, int]]] = {
    "count": (0, 0), "sum": (1, 1), "min": (1, 1), "max": (1, 1), "avg": (1, 1),
    "first": (1, 1), "last": (1, 1), "collect": (1, 1),
}

# Error kinds; the loader maps each to a stable problem code.
SYNTAX: Final = "syntax"
FORBIDDEN: Final = "forbidden"
UNKNOWN_FUNCTION: Final = "unknown_function"
WRONG_ARGUMENT_COUNT: Final = "wrong_argument_count"
PRIVATE_NAME: Final = "private_name"
UNKNOWN_NAME: Final = "unknown_name"
UNKNOWN_AGGREGATE: Final = "unknown_aggregate"
AGGREGATE_SHAPE: Final = "aggregate_shape"
INVALID_ARGUMENT: Final = "invalid_argument"  # a literal argument no event can make work

_OPERATORS: Final = (
    ast.And, ast.Or, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.Not, ast.USub, ast.UAdd, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
    ast.In, ast.NotIn, ast.Is, ast.IsNot, ast.Load,
)
_STRUCTURE: Final = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call,
    ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.List, ast.Tuple,
    ast.Dict,
)
_ALLOWED: Final = _OPERATORS + _STRUCTURE
_CONSTANT_TYPES: Final = (str, int, float, bool, type(None))

_OPERATOR_SYMBOLS: Final[dict[type, str]] = {
    ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
    ast.MatMult: "@", ast.Invert: "~",
}

_ALLOWED_HINT: Final = "only operators, literals, field names and listed functions are allowed"
_RESERVED_HINT: Final = "names starting with '_' are reserved"

# What users reach for, and what to write instead.
_FORBIDDEN_HINTS: Final[dict[type, str]] = {
    ast.Lambda: "lambdas are not available; write the expression directly",
    ast.SetComp: "only list comprehensions are available: [x for x in items]",
    ast.DictComp: "only list comprehensions are available: [x for x in items]",
    ast.GeneratorExp: "only list comprehensions are available: [x for x in items]",
    ast.NamedExpr: "assignment is not available; use `set:` in a map node",
    ast.JoinedStr: "f-strings are not available; use str(x) and +",
    ast.Await: "await is not available",
    ast.Yield: "yield is not available",
    ast.Starred: "unpacking with * is not available",
    ast.Set: "set literals are not available; use a list: x in ['a', 'b']",
    ast.BitAnd: "bitwise operators are not available; use `and`",
    ast.BitOr: "bitwise operators are not available; use `or`",
    ast.BitXor: "bitwise operators are not available",
    ast.Invert: "bitwise operators are not available; use `not`",
    ast.LShift: "bit shifts are not available",
    ast.RShift: "bit shifts are not available",
    ast.MatMult: "the @ operator is not available",
}


@dataclass(frozen=True)
class ExprError:
    kind: str
    message: str
    hint: str
    line: int  # 0-based line within the expression source
    column: int  # 0-based column within that line


def suggest(name: str, candidates: list[str]) -> str:
    """A `did you mean` hint, or an empty string when nothing is close."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


class _Source:
    """Maps parser offsets back to (line, column) in the expression as written.

    Multi-line expressions (YAML block scalars, TOML multi-line strings) are parsed as
    one line, so newlines need no parentheses; Python reports UTF-8 byte offsets, and
    users count characters.
    """

    def __init__(self, written: str) -> None:
        self.written = written.replace("\r\n", "\n")
        flat = self.written.replace("\n", " ")
        self.lead = len(flat) - len(flat.lstrip())
        self.text = flat.strip()
        self.encoded = self.text.encode()

    def position(self, char_offset: int) -> tuple[int, int]:
        offset = min(max(char_offset, 0), len(self.text)) + self.lead
        line = self.written.count("\n", 0, offset)
        return line, offset - (self.written.rfind("\n", 0, offset) + 1)

    def at_byte(self, byte_offset: int) -> tuple[int, int]:
        return self.position(len(self.encoded[:byte_offset].decode(errors="ignore")))


def _node_offset(node: ast.AST) -> int:
    if isinstance(node, ast.Attribute) and node.end_col_offset is not None:
        # Point at the offending field name, not at the start of the whole access.
        return node.end_col_offset - len(node.attr.encode())
    return int(getattr(node, "col_offset", 0))


def parse(source: str) -> tuple[ast.Expression | None, ExprError | None]:
    if len(source) > MAX_SOURCE_LENGTH:
        return None, ExprError(
            SYNTAX, f"expression is longer than {MAX_SOURCE_LENGTH} characters",
            "split the logic over several map fields", 0, 0,
        )
    if not source.strip():
        return None, ExprError(SYNTAX, "expression is empty", "write an expression, e.g. amount > 0", 0, 0)
    where = _Source(source)
    try:
        # Python warns about text it still accepts (`'\d'`, an invalid escape, stays a
        # backslash and a d): nothing for a graph's author to act on, at every load.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(where.text, mode="eval")
    except SyntaxError as exc:
        line, column = where.position((exc.offset or 1) - 1)
        message = (exc.msg or "invalid syntax").split(" (")[0]
        hint = "expressions use Python syntax, e.g. int(amount * 100)"
        at = (exc.offset or 1) - 1
        single_equals = where.text[at:at + 2].startswith("=") and where.text[at:at + 2] != "==" and (
            where.text[:at].rstrip()[-1:] not in ("<", ">", "!", "=", ""))
        if "'=='" in message or single_equals:
            message, hint = "invalid syntax", "compare with ==, not ="
        return None, ExprError(SYNTAX, f"invalid expression: {message}", hint, line, column)
    except (ValueError, RecursionError, MemoryError):
        message = "invalid expression: too deeply nested or malformed"
        return None, ExprError(SYNTAX, message, "simplify the expression", 0, 0)
    return tree, None


class _Checker:
    def __init__(self, scope: tuple[str, ...], aggregate: bool, where: _Source) -> None:
        self.scope = scope
        self.where = where
        self.aggregate = aggregate
        self.errors: list[ExprError] = []
        self.loop_names: tuple[str, ...] = ()  # comprehension variables in scope here

    def _add(self, node: ast.AST, kind: str, message: str, hint: str) -> None:
        line, column = self.where.at_byte(_node_offset(node))
        self.errors.append(ExprError(kind, message, hint, line, column))

    def check(self, tree: ast.Expression) -> None:
        body = tree.body
        if self.aggregate:
            self._check_aggregate(body)
        else:
            self._visit(body, 0)

    def _check_aggregate(self, body: ast.expr) -> None:
        names = sorted(AGGREGATES)
        if not (isinstance(body, ast.Call) and isinstance(body.func, ast.Name)):
            self._add(
                body, AGGREGATE_SHAPE, "an aggregate field must be one aggregate call",
                "write one of: " + ", ".join(n + "(x)" if AGGREGATES[n][0] else n + "()" for n in names),
            )
            return
        fn = body.func.id
        if fn in FUNCTIONS and fn not in AGGREGATES:
            self._add(
                body, AGGREGATE_SHAPE, f"an aggregate field must be one aggregate call, not {fn}(...)",
                f"aggregate here, then apply {fn}() in a map node after this one")
            return
        if fn not in AGGREGATES:
            hint = suggest(fn, names) or "aggregate functions: " + ", ".join(names)
            self._add(body, UNKNOWN_AGGREGATE, f"unknown aggregate function '{fn}'", hint)
            return
        self._check_call_shape(body, fn, AGGREGATES[fn])
        for arg in body.args:
            self._visit(arg, 1)

    def _check_call_shape(self, node: ast.Call, fn: str, arity: tuple[int, int]) -> None:
        if node.keywords:
            self._add(node, FORBIDDEN, f"{fn}() takes no keyword arguments", "pass arguments by position")
        n = len(node.args)
        low, high = arity
        if n < low or (high >= 0 and n > high):
            if low == high:
                expected = f"{low} argument" + ("" if low == 1 else "s")
            elif high < 0:
                expected = f"at least {low} argument" + ("" if low == 1 else "s")
            else:
                expected = f"{low} to {high} arguments"
            self._add(node, WRONG_ARGUMENT_COUNT, f"{fn}() takes {expected}, got {n}", f"check the call to {fn}()")

    def _visit(self, node: ast.AST, depth: int) -> None:
        if depth > MAX_DEPTH:
            self._add(node, FORBIDDEN, "expression is nested too deeply", "simplify the expression")
            return
        if isinstance(node, ast.ListComp):
            self._check_comprehension(node, depth)
            return
        if not isinstance(node, _ALLOWED):
            hint = _FORBIDDEN_HINTS.get(type(node), _ALLOWED_HINT)
            self._add(node, FORBIDDEN, f"{_describe(node)} is not allowed in expressions", hint)
            return
        if isinstance(node, ast.Constant) and not isinstance(node.value, _CONSTANT_TYPES):
            hint = "use strings, numbers, True, False or None"
            self._add(node, FORBIDDEN, f"{type(node.value).__name__} literals are not allowed", hint)
            return
        if isinstance(node, ast.Name):
            self._check_name(node)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            message = f"field '{node.attr}' starts with an underscore, which is not allowed"
            self._add(node, PRIVATE_NAME, message, _RESERVED_HINT)
            return
        elif isinstance(node, ast.Call) and not self._check_call(node):
            return
        if isinstance(node, ast.BinOp) and not isinstance(node.op, _ALLOWED):
            self.errors.append(self._operator_error(node))
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.Call) and (child is node.func or isinstance(child, ast.keyword)):
                continue
            self._visit(child, depth + 1)

    def _operator_error(self, node: ast.BinOp) -> ExprError:
        symbol = _OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)
        hint = _FORBIDDEN_HINTS.get(type(node.op), "use the listed operators")
        # The operator has no position of its own: find it between its operands.
        start = node.left.end_col_offset or 0
        gap = self.where.encoded[start:node.right.col_offset].decode(errors="ignore")
        line, column = self.where.at_byte(start + len(gap[:len(gap) - len(gap.lstrip())].encode()))
        return ExprError(FORBIDDEN, f"the '{symbol}' operator is not allowed in expressions", hint, line, column)

    def _check_comprehension(self, node: ast.ListComp, depth: int) -> None:
        """`[expr for x in items if cond]`: one `for`, one loop name, any conditions. Inside,
        `x` is the item, not a field. A comprehension in another's element or condition
        (a loop in a loop, quadratic work) is refused; one in the list it loops over is not."""
        if self.loop_names:
            self._add(node, FORBIDDEN, "a comprehension inside another comprehension is not allowed",
                      "compute the inner list in an earlier map field, or use an explode node")
            return
        generator = node.generators[0]
        if len(node.generators) > 1 or generator.is_async:
            self._add(node.generators[1].target if len(node.generators) > 1 else node, FORBIDDEN,
                      "a comprehension takes exactly one 'for'", "write [expr for x in items if cond]")
            return
        target = generator.target
        if not isinstance(target, ast.Name):
            self._add(target, FORBIDDEN, "a comprehension loops with one name",
                      "write [x[0] for x in pairs] instead of unpacking")
            return
        self._visit(generator.iter, depth + 1)
        if target.id.startswith("_"):
            self._check_name(target)
            return
        self.loop_names = (target.id,)
        for part in [node.elt, *generator.ifs]:
            self._visit(part, depth + 1)
        self.loop_names = ()

    def _check_name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            message = f"name '{node.id}' starts with an underscore, which is not allowed"
            self._add(node, PRIVATE_NAME, message, _RESERVED_HINT)
        elif node.id in self.loop_names:
            return  # the comprehension's item, not an event field
        elif self.scope and node.id not in self.scope:
            hint = suggest(node.id, list(self.scope)) or "available here: " + ", ".join(self.scope)
            self._add(node, UNKNOWN_NAME, f"unknown name '{node.id}'", hint)

    def _check_call(self, node: ast.Call) -> bool:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                hint = f"write {node.func.attr}(x) instead of x.{node.func.attr}()"
                if node.func.attr.startswith("_"):
                    hint = _RESERVED_HINT
                self._add(node, FORBIDDEN, "method calls are not allowed", hint)
            else:
                hint = "call a listed function, e.g. lower(name)"
                self._add(node, FORBIDDEN, "only named functions can be called", hint)
            return False
        fn = node.func.id
        if fn in AGGREGATES and fn not in FUNCTIONS:
            hint = "aggregate functions belong in an aggregate node's fields"
            self._add(node, AGGREGATE_SHAPE, f"{fn}() is an aggregate function and cannot be used here", hint)
            return False
        if fn not in FUNCTIONS:
            hint = suggest(fn, sorted(FUNCTIONS)) or "see docs/expressions.md for the function list"
            self._add(node, UNKNOWN_FUNCTION, f"unknown function '{fn}'", hint)
            return False
        self._check_call_shape(node, fn, FUNCTIONS[fn])
        literals = [arg.value if isinstance(arg, ast.Constant) else NOT_LITERAL for arg in node.args]
        for index, message, hint in literal_problems(fn, literals):
            self._add(node.args[index], INVALID_ARGUMENT, message, hint)
        return True


def _describe(node: ast.AST) -> str:
    names: dict[type, str] = {
        ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension",
        ast.NamedExpr: "assignment (:=)", ast.JoinedStr: "an f-string", ast.Starred: "unpacking",
        ast.Set: "a set literal", ast.Await: "await", ast.Yield: "yield", ast.Invert: "the '~' operator",
    }
    return names.get(type(node), f"'{type(node).__name__}'")


def check(source: str, scope: tuple[str, ...] = (), aggregate: bool = False) -> list[ExprError]:
    """Every problem with an expression; an empty list means it is accepted."""
    tree, error = parse(source)
    if error is not None or tree is None:
        return [error] if error is not None else []
    checker = _Checker(scope, aggregate, _Source(source))
    checker.check(tree)
    return checker.errors
