"""Expressions in GPU segments: the shared language, typed down to what a kernel can do.

The parser and whitelist are the engine's (`engine.expr`); this module walks the accepted
tree once more and produces a small typed tree (`Node`) in which every operand already has
the type its operation computes in (explicit `Cast`s), so the OpenCL and NumPy emitters
only translate. What a kernel cannot do (text, lists, nested fields, `is`, `in`, most text
and time functions) is an `ExprError` with its place in the expression, which the loader
reports with the file's line and column.
"""

import ast
from dataclasses import dataclass
from typing import Final

from adapters.gpu.dtypes import BOOL, INT_RANGE, Defaults, Kind, as_float, common, concrete, is_float, numeric
from engine import expr

NOT_IN_KERNEL: Final = "not_in_kernel"
UNKNOWN_COLUMN: Final = "unknown_column"

# Function -> how its result type follows from its arguments.
FLOAT_ONE: Final = frozenset({"sqrt", "exp", "log", "log2", "log10", "sin", "cos", "tan", "asin", "acos",
                              "atan", "tanh"})
FLOAT_TWO: Final = frozenset({"pow", "atan2", "hypot"})
SAME_ONE: Final = frozenset({"abs", "floor", "ceil", "round"})
SAME_MANY: Final = frozenset({"min", "max", "clamp"})
CONVERT: Final = frozenset({"int", "float"})
KERNEL_FUNCTIONS: Final = FLOAT_ONE | FLOAT_TWO | SAME_ONE | SAME_MANY | CONVERT
# Results that can be undefined (NaN, infinite): checked, an error for the event.
CHECKED: Final = frozenset({"sqrt", "exp", "log", "log2", "log10", "asin", "acos", "pow", "hypot", "tan"})

_ARITH: Final[dict[type, str]] = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div",
                                  ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Pow: "pow"}
_COMPARE: Final[dict[type, str]] = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le",
                                    ast.Gt: "gt", ast.GtE: "ge"}


@dataclass(frozen=True)
class Col:
    name: str
    dtype: str


@dataclass(frozen=True)
class Const:
    value: object  # bool, int or float
    dtype: str


@dataclass(frozen=True)
class Cast:
    x: "Node"
    dtype: str


@dataclass(frozen=True)
class Unary:
    op: str  # "neg" | "not"
    x: "Node"
    dtype: str


@dataclass(frozen=True)
class Binary:
    """Arithmetic; both operands have `dtype`. `pow` is always float."""

    op: str  # add sub mul div floordiv mod pow
    a: "Node"
    b: "Node"
    dtype: str


@dataclass(frozen=True)
class Compare:
    op: str  # eq ne lt le gt ge; both operands have the same type
    a: "Node"
    b: "Node"
    dtype: str = BOOL


@dataclass(frozen=True)
class Logic:
    op: str  # "and" | "or", short-circuit: `b` is evaluated only where it decides
    a: "Node"
    b: "Node"
    dtype: str = BOOL


@dataclass(frozen=True)
class Select:
    cond: "Node"  # bool
    a: "Node"
    b: "Node"
    dtype: str


@dataclass(frozen=True)
class Call:
    fn: str  # one of KERNEL_FUNCTIONS except int/float (those become Cast)
    args: tuple["Node", ...]  # each already of the type the function computes in
    dtype: str


Node = Col | Const | Cast | Unary | Binary | Compare | Logic | Select | Call


class KernelExprError(Exception):
    def __init__(self, error: expr.ExprError) -> None:
        super().__init__(error.message)
        self.error = error


class _Typer:
    def __init__(self, source: str, columns: dict[str, str], defaults: Defaults, head: str) -> None:
        self.where = expr._Source(source)
        self.columns = columns
        self.defaults = defaults
        self.head = head
        self.literals: dict[int, ast.AST] = {}  # id of a literal's Const -> where it is written

    def fail(self, node: ast.AST, kind: str, message: str, hint: str) -> KernelExprError:
        line, column = self.where.at_byte(expr._node_offset(node))
        return KernelExprError(expr.ExprError(kind, message, hint, line, column))

    def cast(self, typed: tuple[Node, Kind], kind: Kind) -> Node:
        node, _ = typed
        # Literal-only arithmetic computes in the segment's default types too, so a float32
        # segment never needs float64 on the device.
        want = concrete(kind, self.defaults)
        if isinstance(node, Const):
            value = _convert(node.value, want)
            bounds = INT_RANGE.get(want)
            if isinstance(value, int) and bounds is not None and not bounds[0] <= value <= bounds[1]:
                where = self.literals.get(id(node))
                raise KernelExprError(expr.ExprError(
                    NOT_IN_KERNEL, f"the literal {value} is out of range for {want}",
                    "declare the column it meets as int64, or use a smaller number",
                    *(self.where.at_byte(expr._node_offset(where)) if where is not None else (0, 0))))
            return Const(value, want)
        if node.dtype == want:
            return node
        return Cast(node, want)

    def visit(self, node: ast.expr) -> tuple[Node, Kind]:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            dtype = self.columns.get(node.id)
            if dtype is None:
                names = sorted(self.columns)
                hint = expr.suggest(node.id, names) or (
                    f"declare it in `columns` of '{self.head}', the segment's first node"
                    + (f" (columns here: {', '.join(names)})" if names else ""))
                raise self.fail(node, UNKNOWN_COLUMN, f"'{node.id}' is not a column of this segment", hint)
            return Col(node.id, dtype), Kind(dtype)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return self.arithmetic(_ARITH[type(node.op)], node.left, node.right)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            result = self.condition(node.values[0])
            for value in node.values[1:]:
                result = Logic(op, result, self.condition(value))
            return result, Kind(BOOL)
        if isinstance(node, ast.IfExp):
            cond = self.condition(node.test)
            a, b = self.visit(node.body), self.visit(node.orelse)
            kind = Kind(BOOL) if a[1].dtype == BOOL and b[1].dtype == BOOL else common(a[1], b[1], self.defaults)
            return Select(cond, self.cast(a, kind), self.cast(b, kind), kind.dtype), kind
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call(node, node.func.id)
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            raise self.fail(node, NOT_IN_KERNEL, "nested fields are not available in a GPU segment",
                            "copy the value to a top-level field with a `map` node before the segment")
        raise self.fail(node, NOT_IN_KERNEL, f"{_what(node)} is not available in a GPU segment",
                        "segments compute numbers and conditions; do this in a `map` node")

    def constant(self, node: ast.Constant) -> tuple[Node, Kind]:
        value = node.value
        if isinstance(value, bool):
            return Const(value, BOOL), Kind(BOOL)
        if isinstance(value, int):
            if abs(value) >= 2 ** 63:
                raise self.fail(node, NOT_IN_KERNEL, "integer literal out of range for int64", "use a smaller number")
            literal = Const(value, "int64")
            self.literals[id(literal)] = node
            return literal, Kind("int64", weak=True)
        if isinstance(value, float):
            return Const(value, "float64"), Kind("float64", weak=True)
        raise self.fail(node, NOT_IN_KERNEL, f"{_what(node)} is not available in a GPU segment",
                        "segments compute numbers and conditions only")

    def arithmetic(self, op: str, left: ast.expr, right: ast.expr) -> tuple[Node, Kind]:
        a, b = self.visit(left), self.visit(right)
        kind = common(a[1], b[1], self.defaults)
        if op in ("div", "pow"):
            kind = as_float(kind, self.defaults)
        return Binary(op, self.cast(a, kind), self.cast(b, kind), kind.dtype), kind

    def unary(self, node: ast.UnaryOp) -> tuple[Node, Kind]:
        if isinstance(node.op, ast.Not):
            return Unary("not", self.condition(node.operand), BOOL), Kind(BOOL)
        operand = self.visit(node.operand)
        literal = operand[0]
        if isinstance(literal, Const) and operand[1].weak and isinstance(node.op, ast.USub):
            # `-5` is one literal: negated before it takes a type, so -2147483648 fits int32.
            negated = Const(-_number(literal.value), literal.dtype)
            self.literals[id(negated)] = node
            return negated, operand[1]
        kind = numeric(operand[1], self.defaults)
        value = self.cast(operand, kind)
        if isinstance(node.op, ast.UAdd):
            return value, kind
        if isinstance(value, Const) and not isinstance(value.value, bool):
            return Const(-_number(value.value), value.dtype), kind
        return Unary("neg", value, kind.dtype), kind

    def compare(self, node: ast.Compare) -> tuple[Node, Kind]:
        result: Node | None = None
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            name = _COMPARE.get(type(op))
            if name is None:
                raise self.fail(node, NOT_IN_KERNEL,
                                "`in`, `not in`, `is` and `is not` are not available in a GPU segment",
                                "compare numbers with == != < <= > >=")
            a, b = self.visit(left), self.visit(right)
            kind = Kind(BOOL) if a[1].dtype == BOOL and b[1].dtype == BOOL else common(a[1], b[1], self.defaults)
            pair = Compare(name, self.cast(a, kind), self.cast(b, kind))
            result = pair if result is None else Logic("and", result, pair)
            left = right
        assert result is not None
        return result, Kind(BOOL)

    def condition(self, node: ast.expr) -> Node:
        """A true/false operand: a number counts as true when it is not zero, as in Python."""
        value, kind = self.visit(node)
        if kind.dtype == BOOL:
            return value
        number = numeric(kind, self.defaults)
        zero = self.cast((Const(0, "int64"), Kind("int64", True)), number)
        return Compare("ne", self.cast((value, kind), number), zero)

    def call(self, node: ast.Call, fn: str) -> tuple[Node, Kind]:
        if fn not in KERNEL_FUNCTIONS:
            raise self.fail(node, NOT_IN_KERNEL, f"{fn}() is not available in a GPU segment",
                            "kernels offer: " + ", ".join(sorted(KERNEL_FUNCTIONS)))
        args = [self.visit(a) for a in node.args]
        if fn == "round" and len(args) != 1:
            raise self.fail(node, NOT_IN_KERNEL, "round() with digits is not available in a GPU segment",
                            "write round(x * 100) / 100")
        if fn in ("min", "max") and len(args) < 2:
            raise self.fail(node, NOT_IN_KERNEL, f"{fn}() of a list is not available in a GPU segment",
                            f"compare values: {fn}(a, b)")
        if fn in CONVERT:
            # int(x) truncates toward zero, as Python does; float(x) is the default float.
            kind = Kind(self.defaults.int_type if fn == "int" else self.defaults.float_type)
            value = self.cast(args[0], numeric(args[0][1], self.defaults))
            return (value if value.dtype == kind.dtype else Cast(value, kind.dtype)), kind
        kind = numeric(args[0][1], self.defaults)
        for _, other in args[1:]:
            kind = common(kind, other, self.defaults)
        if fn in FLOAT_ONE or fn in FLOAT_TWO:
            kind = as_float(kind, self.defaults)
        kind = Kind(concrete(kind, self.defaults))
        return Call(fn, tuple(self.cast(a, kind) for a in args), kind.dtype), kind




def _number(value: object) -> int | float:
    return value if isinstance(value, (int, float)) else 0


def _convert(value: object, dtype: str) -> object:
    if dtype == BOOL:
        return bool(value)
    if is_float(dtype):
        return float(_number(value))
    return int(_number(value))


def _what(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        return "text" if isinstance(node.value, str) else "None" if node.value is None else "this literal"
    names = {ast.List: "a list", ast.Tuple: "a list", ast.Dict: "a mapping", ast.Slice: "a slice",
             ast.ListComp: "a list comprehension"}
    return names.get(type(node), f"'{type(node).__name__}'")


def type_expression(source: str, columns: dict[str, str], defaults: Defaults, head: str) -> Node:
    """The typed tree of an expression the engine's checker accepted, with its result
    stored in a concrete type. Raises KernelExprError."""
    tree, error = expr.parse(source)
    if error is not None or tree is None:
        raise KernelExprError(error or expr.ExprError(expr.SYNTAX, "invalid expression", "", 0, 0))
    typer = _Typer(source, columns, defaults, head)
    value, kind = typer.visit(tree.body)
    return typer.cast((value, kind), Kind(concrete(kind, defaults)))


def walk(node: Node) -> list[Node]:
    """Every node of a typed tree, parents first."""
    out: list[Node] = [node]
    if isinstance(node, (Cast, Unary)):
        out.extend(walk(node.x))
    elif isinstance(node, (Binary, Compare, Logic)):
        out.extend(walk(node.a) + walk(node.b))
    elif isinstance(node, Select):
        out.extend(walk(node.cond) + walk(node.a) + walk(node.b))
    elif isinstance(node, Call):
        for arg in node.args:
            out.extend(walk(arg))
    return out
