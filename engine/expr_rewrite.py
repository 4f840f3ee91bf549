"""The rewrite that turns a checked expression tree into plain Python, before it is compiled.

- a field name `amount` becomes `_event['amount']`, `user.name` becomes
  `_event['user']['name']`, so a field is always an item of the event, never an attribute;
- calls go to `engine.functions` through the function's globals (`lower` -> `_f_lower`);
- `**`, `%` and large repetitions with `*` go through guards that refuse huge results;
- field paths inside `exists()` and as `coalesce()` arguments become safe path lookups.

`engine.compile_expr` compiles the rewritten tree once, with `GUARDS` among its globals.
"""

import ast
from typing import Any, Final, cast

from engine import comprehensions, functions
from engine.expr import FUNCTIONS
from engine.functions import MAX_SEQUENCE_LENGTH

EVENT: Final = "_event"
INDEX: Final = "i"  # the only name in scope in generate fields
FUNCTION_PREFIX: Final = "_f_"
_POWER: Final = "_g_power"
_MULTIPLY: Final = "_g_multiply"
_MODULO: Final = "_g_modulo"
_ITEM: Final = "_g_item"
_PATH_EXISTS: Final = "_g_path_exists"
_PATH_OR_NONE: Final = "_g_path_or_none"
_SLICE: Final = "_g_slice"
_LISTED: Final = "_g_listed"
_ITEMS: Final = "_g_items"
# `n * 100` stays a plain multiply when `n` is known to be a number, or is text or a list
# written in the expression: with a small literal factor its growth is bounded.
SMALL_FACTOR: Final = 10_000

_CONSTANT_TYPES: Final = (str, int, float, bool, type(None))
_PLAIN_BINARY: Final = (ast.Add, ast.Sub, ast.Div, ast.FloorDiv)
# Node kinds copied as they are (their children are still rewritten).
_KEPT: Final = (
    ast.BoolOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.List, ast.Tuple, ast.Dict, ast.Slice,
    ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Load,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
)
_REWRITTEN: Final = (ast.Name, ast.Attribute, ast.Subscript, ast.Call, ast.BinOp, ast.Constant, ast.ListComp)


def load_name(identifier: str) -> ast.Name:
    return ast.Name(id=identifier, ctx=ast.Load())


def _call(function: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    return ast.copy_location(ast.Call(func=load_name(function), args=args, keywords=[]), like)


def _number_literal(node: ast.expr) -> ast.Constant | None:
    """The number in `3`, `-2.5`, `+7` (its sign does not matter here); None for anything
    else, booleans included."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _number_literal(node.operand)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node
    return None


def _contains_multiply(node: ast.expr) -> bool:
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult) for n in ast.walk(node))


def _bounded_literal(node: ast.expr, factor: int) -> bool:
    """Text, a list or a tuple written in the expression, that `factor` repeats to at most
    MAX_SEQUENCE_LENGTH items (its own items may be anything: repeating copies no item)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return len(node.value) * factor <= MAX_SEQUENCE_LENGTH
    if isinstance(node, (ast.List, ast.Tuple)) and not _contains_multiply(node):
        return len(node.elts) * factor <= MAX_SEQUENCE_LENGTH
    return False


class ExprRewriter(ast.NodeTransformer):
    """Rewrites a checked expression tree into plain Python over `_event` (or locals).

    The loader's checker already refused everything outside the language; refusing again
    here keeps the compiler safe on its own, at compile time only.
    """

    def __init__(self, local_names: tuple[str, ...], event_fields: bool, prefix: str = FUNCTION_PREFIX,
                 numbers: frozenset[str] = frozenset()) -> None:
        self.local_names = local_names  # names that are parameters, not event fields
        self.event_fields = event_fields  # False in generate: no event to read from
        self.prefix = prefix  # what function names start with in the generated code
        self.numbers = numbers  # names certain to hold an int or a float here
        self.loop_names: tuple[str, ...] = ()  # comprehension variables: items, never fields

    def visit(self, node: ast.AST) -> Any:
        if not isinstance(node, _REWRITTEN) and not isinstance(node, _KEPT):
            raise ValueError(f"{type(node).__name__} is not allowed in expressions")
        return super().visit(node)

    def rewrite(self, node: ast.expr) -> ast.expr:
        return cast(ast.expr, self.visit(node))

    def generic_visit(self, node: ast.AST) -> ast.AST:
        """A rewritten copy: the input tree stays as parsed, because the guard decisions in
        `visit_BinOp` and `path` look at original subtrees (NodeTransformer's own
        generic_visit would change them in place)."""
        fields: dict[str, object] = {}
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                fields[name] = [self.visit(part) if isinstance(part, ast.AST) else part for part in value]
            else:
                fields[name] = self.visit(value) if isinstance(value, ast.AST) else value
        return ast.copy_location(type(node)(**fields), node)

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        if not isinstance(node.value, _CONSTANT_TYPES):
            raise ValueError(f"{type(node.value).__name__} literals are not allowed")
        return node

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id.startswith("_"):
            raise ValueError(f"name '{node.id}' starts with an underscore")
        if node.id in self.local_names:
            return load_name(node.id)
        if not self.event_fields:
            raise ValueError(f"unknown name '{node.id}'; available here: {', '.join(self.local_names)}")
        field = ast.Subscript(value=load_name(EVENT), slice=ast.Constant(value=node.id), ctx=ast.Load())
        return ast.copy_location(field, node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        # `user.name` is the `name` item of the `user` mapping, never a Python attribute.
        if node.attr.startswith("_"):
            raise ValueError(f"field '{node.attr}' starts with an underscore")
        item = ast.Subscript(value=self.rewrite(node.value), slice=ast.Constant(value=node.attr), ctx=ast.Load())
        return ast.copy_location(item, node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        inline = isinstance(node.slice, ast.Slice) or _is_literal_key(node.slice)
        container = self.rewrite(node.value)
        index = self.rewrite(node.slice)
        if inline:
            return ast.copy_location(ast.Subscript(value=container, slice=index, ctx=ast.Load()), node)
        # A key computed from the event goes through a lookup that does not echo it.
        return _call(_ITEM, [container, index], node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        op = node.op
        if not isinstance(op, (ast.Pow, ast.Mult, ast.Mod) + _PLAIN_BINARY):
            raise ValueError(f"the {type(op).__name__} operator is not allowed in expressions")
        # Decided on the operands as written, before they are rewritten.
        guard = ""
        if isinstance(op, ast.Pow):
            guard = _POWER
        elif isinstance(op, ast.Mult) and not self.plain_multiply(node.left, node.right):
            guard = _MULTIPLY
        elif isinstance(op, ast.Mod) and _number_literal(node.left) is None and not self.is_number(node.left):
            guard = _MODULO
        left, right = self.rewrite(node.left), self.rewrite(node.right)
        if guard:
            return _call(guard, [left, right], node)
        return ast.copy_location(ast.BinOp(left=left, op=type(op)(), right=right), node)

    def visit_Call(self, node: ast.Call) -> ast.expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ValueError("only the listed functions can be called")
        if node.keywords:
            raise ValueError(f"{node.func.id}() takes no keyword arguments")
        function = node.func.id
        if function == "exists" and len(node.args) == 1:
            path = self.path(node.args[0])
            if path is not None:
                return _call(_PATH_EXISTS, list(path), node)
        if function == "coalesce":
            args = [self.path_or_value(arg) for arg in node.args]
        else:
            args = [self.rewrite(arg) for arg in node.args]
        return _call(self.prefix + function, args, node)

    def visit_ListComp(self, node: ast.ListComp) -> ast.expr:
        """`[e for x in items if c]` -> `_g_listed(e for x in _g_items(items) if c)`: the
        result is counted against the limit as it grows (engine/comprehensions.py)."""
        generator = node.generators[0]
        target = generator.target
        if (len(node.generators) != 1 or generator.is_async or self.loop_names
                or not isinstance(target, ast.Name) or target.id.startswith("_")):
            raise ValueError("only [expr for name in list if cond], not nested, is allowed")
        items = _call(_ITEMS, [self.rewrite(generator.iter)], generator.iter)
        outer = self.local_names
        # Inside, the name is the item (a local), even where a field or `i` has that name.
        self.local_names, self.loop_names = outer + (target.id,), (target.id,)
        try:
            element = self.rewrite(node.elt)
            conditions = [self.rewrite(condition) for condition in generator.ifs]
        finally:
            self.local_names, self.loop_names = outer, ()
        loop = ast.comprehension(target=ast.Name(id=target.id, ctx=ast.Store()), iter=items,
                                 ifs=conditions, is_async=0)
        return _call(_LISTED, [ast.copy_location(ast.GeneratorExp(elt=element, generators=[loop]), node)], node)

    def plain_multiply(self, left: ast.expr, right: ast.expr) -> bool:
        """True when `left * right` cannot blow up, so it needs no guard.

        A float literal factor makes repetition a TypeError. A small integer literal bounds
        the growth of a number, or of text or a list written in the expression; an event
        field may hold a list of any length, so `tags * 100` is checked (unless fused code
        knows the field holds a number).
        """
        for literal, other in ((left, right), (right, left)):
            constant = _number_literal(literal)
            value: object = None if constant is None else constant.value
            if isinstance(value, float):
                return True
            if isinstance(value, int) and abs(value) <= SMALL_FACTOR and (
                    _number_literal(other) is not None or self.is_number(other)
                    or _bounded_literal(other, abs(value))):
                return True
        return False

    def is_number(self, node: ast.expr) -> bool:
        """A name certain to hold a number (generate's index `i`, or a field fused code
        knows), so `x % n` cannot format text."""
        if not isinstance(node, ast.Name) or node.id in self.loop_names:
            return False  # an item of a comprehension may be anything, whatever field has its name
        return node.id in self.numbers or (node.id == INDEX and INDEX in self.local_names)

    def path_or_value(self, node: ast.expr) -> ast.expr:
        path = self.path(node)
        return self.rewrite(node) if path is None else _call(_PATH_OR_NONE, list(path), node)

    def path(self, node: ast.expr) -> tuple[ast.expr, ast.expr] | None:
        """(root, keys) for a field path such as `a.b[0]`, or None for other expressions.

        The keys become a tuple literal (a constant when every key is one), walked per
        event by `functions.path_exists` / `path_or_none` without raising.
        """
        steps: list[ast.Attribute | ast.Subscript] = []  # outermost first
        current = node
        while isinstance(current, (ast.Attribute, ast.Subscript)):
            steps.append(current)
            current = current.value
        if not isinstance(current, ast.Name) or current.id.startswith("_"):
            return None
        keys: list[ast.expr] = []
        if current.id in self.local_names:
            root: ast.expr = load_name(current.id)
        elif self.event_fields:
            root = load_name(EVENT)
            keys.append(ast.Constant(value=current.id))
        else:
            return None
        for step in reversed(steps):
            if isinstance(step, ast.Attribute):
                if step.attr.startswith("_"):  # as visit_Attribute: refused here too, not only by the checker
                    raise ValueError(f"field '{step.attr}' starts with an underscore")
                keys.append(ast.Constant(value=step.attr))
            else:
                keys.append(self.key(step.slice))
        return root, ast.Tuple(elts=keys, ctx=ast.Load())

    def key(self, index: ast.expr) -> ast.expr:
        if isinstance(index, ast.Slice):
            bounds = [ast.Constant(value=None) if part is None else self.rewrite(part)
                      for part in (index.lower, index.upper, index.step)]
            return _call(_SLICE, bounds, index)
        return self.rewrite(index)


def _is_literal_key(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) or _number_literal(node) is not None


# What the guard names in rewritten code are bound to: the globals of every compiled expression.
GUARDS: Final[dict[str, object]] = {
    _POWER: functions.power,
    _MULTIPLY: functions.multiply,
    _MODULO: functions.modulo,
    _ITEM: functions.item,
    _PATH_EXISTS: functions.path_exists,
    _PATH_OR_NONE: functions.path_or_none,
    _SLICE: slice,
    _LISTED: comprehensions.listed,
    _ITEMS: comprehensions.items_of,
}
