"""Per-event expressions: every checked expression becomes one Python function, compiled once.

The tree from `engine.expr.parse` is rewritten by `engine.expr_rewrite` (fields become items
of `_event`, calls go to whitelisted functions, risky operators to guards), then compiled with
`compile()` a single time.

The globals hold only those functions, and builtins with no name an expression could use,
so the compiled code reaches nothing else. Evaluating an event is then one call of an ordinary
Python function; no tree is walked per event.
"""

import ast
import random
import sys
import warnings
from collections.abc import Callable
from typing import cast

from engine import functions
from engine.agent_functions import load_rules
from engine.expr import AGGREGATES, parse
from engine.expr_builtins import expression_builtins
from engine.expr_rewrite import EVENT, FUNCTION_PREFIX, GUARDS, INDEX, ExprRewriter, load_name
from engine.library_functions import library_functions
from engine.math_functions import math_functions
from engine.node import Clock, Event
from engine.time_functions import zone_names


class CompiledExpr:
    """One compiled expression: `fn(event)` evaluates it against one event."""

    source: str
    label: str
    fn: Callable[[Event], object]

    def __init__(self, source: str, label: str, fn: Callable[[Event], object]) -> None:
        self.source = source  # the expression as written
        self.label = label  # where it comes from, e.g. "set.total", "where", "routes.big"
        self.fn = fn

    def __repr__(self) -> str:
        return f"CompiledExpr({self.label}: {self.source!r})"


def _lambda(parameter: str, body: ast.expr) -> ast.Expression:
    arguments = ast.arguments(
        posonlyargs=[], args=[ast.arg(arg=parameter)], vararg=None,
        kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[],
    )
    return ast.Expression(body=ast.Lambda(args=arguments, body=body))


def _flat(source: str) -> str:
    """The text `engine.expr.parse` parses: newlines are spaces, so offsets match it."""
    return source.replace("\r\n", "\n").replace("\n", " ").strip()


def interned(scope: dict[str, object]) -> dict[str, object]:
    """The same globals with interned names. Generated code looks its globals up by
    interned names; keys built at run time (or by compiled code) that are equal but not
    the same objects make every lookup compare the text, which costs ~10% of a fused loop."""
    return {sys.intern(name): value for name, value in scope.items()}


def guard_scope() -> dict[str, object]:
    """The globals every piece of generated code shares: empty builtins and the guards."""
    # Generated code names only `_event`, `i` and these entries, so builtins are never
    # looked up by it; see `expr_builtins.expression_builtins` for the one entry.
    return {"__builtins__": expression_builtins(), **GUARDS}


def function_scope(rng: random.Random, clock: Clock, prefix: str = FUNCTION_PREFIX) -> dict[str, object]:
    """The expression functions as globals named `prefix + name`, bound to one node's
    clock and random source."""
    table = functions.runtime_functions(rng, clock)
    table.update(math_functions())
    table.update(library_functions(rng))
    return {prefix + name: fn for name, fn in table.items()}


def _parse_body(source: str, label: str) -> ast.expr:
    if "parse_user_agent" in source:
        # Its rules load here, where imports are allowed, not on the first event (whose
        # frame's builtins refuse imports): a process that never checked the graph (an
        # actor running a stage instance) compiles the expression all the same.
        load_rules()
    if "format_time" in source:
        zone_names()  # the same, for the names of time zones
    tree, error = parse(source)
    if tree is None:
        raise ValueError(f"{label}: {error.message if error is not None else 'invalid expression'}")
    return tree.body


class _Forward(ast.NodeTransformer):
    """`_event['x']` -> a local that already holds field `x` (set earlier in the same loop)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if (isinstance(node.value, ast.Name) and node.value.id == EVENT and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str) and node.slice.value in self.fields):
            return ast.copy_location(load_name(self.fields[node.slice.value]), node)
        return self.generic_visit(node)


def inline_python(source: str, label: str, prefix: str, index: bool = False,
                  fields: dict[str, str] | None = None, numbers: frozenset[str] = frozenset()) -> str:
    """A checked expression as Python source for generated code: fields are items of
    `_event` (in generate, the only name is the index `i`), calls go to `prefix + name`.
    `fields` maps fields whose value a local already holds to that local; `numbers` are
    fields certain to hold numbers."""
    rewriter = ExprRewriter((INDEX,), False, prefix) if index else ExprRewriter((), True, prefix, numbers)
    tree = rewriter.rewrite(_parse_body(source, label))
    if fields:
        tree = cast(ast.expr, _Forward(fields).visit(tree))
    return ast.unparse(tree)


def aggregate_parts(source: str, label: str) -> tuple[str, str | None]:
    """`sum(amount * 2)` -> ("sum", "amount * 2"); `count()` -> ("count", None)."""
    call = _parse_body(source, label)
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in AGGREGATES):
        raise ValueError(f"{label}: an aggregate field must be one aggregate call")
    if not call.args:
        return call.func.id, None
    argument = call.args[0]
    return call.func.id, ast.get_source_segment(_flat(source), argument) or ast.unparse(argument)


def calls_any(source: str, names: frozenset[str]) -> bool:
    """Whether the expression calls one of `names` (e.g. `rand`, whose draws must not repeat)."""
    tree, _ = parse(source)
    if tree is None:
        return False
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
               for n in ast.walk(tree))


class ExprCompiler:
    """Compiles one node's expressions; `now()` and `rand()` use this node's clock and rng."""

    def __init__(self, rng: random.Random, clock: Clock) -> None:
        scope = guard_scope()
        scope.update(function_scope(rng, clock))
        self.scope = interned(scope)

    def value(self, source: str, label: str) -> CompiledExpr:
        body = ExprRewriter((), True).rewrite(self._parse(source, label))
        fn = cast(Callable[[Event], object], self._function(EVENT, body, label))
        return CompiledExpr(source, label, fn)

    def update(self, fields: dict[str, str]) -> Callable[[Event], Event]:
        """One function returning `{**event, field: value, ...}`: a new dict, every value
        computed from the input event, the input never changed."""
        rewriter = ExprRewriter((), True)
        keys: list[ast.expr | None] = [None]  # None: unpack the input event first
        values: list[ast.expr] = [load_name(EVENT)]
        for name, source in fields.items():
            keys.append(ast.Constant(value=name))
            values.append(rewriter.rewrite(self._parse(source, f"set.{name}")))
        body = ast.Dict(keys=keys, values=values)
        return cast(Callable[[Event], Event], self._function(EVENT, body, "set"))

    def generator(self, fields: dict[str, str]) -> Callable[[int], Event]:
        """One function of the event index `i` returning a new event with `fields` in order."""
        rewriter = ExprRewriter((INDEX,), False)
        keys: list[ast.expr | None] = []
        values: list[ast.expr] = []
        for name, source in fields.items():
            keys.append(ast.Constant(value=name))
            values.append(rewriter.rewrite(self._parse(source, f"fields.{name}")))
        body = ast.Dict(keys=keys, values=values)
        return cast(Callable[[int], Event], self._function(INDEX, body, "fields"))

    def aggregate_call(self, source: str, label: str) -> tuple[str, CompiledExpr | None]:
        """`sum(amount * 2)` -> ("sum", amount * 2 compiled); `count()` -> ("count", None)."""
        call = self._parse(source, label)
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in AGGREGATES):
            raise ValueError(f"{label}: an aggregate field must be one aggregate call")
        if call.keywords or len(call.args) > 1:
            raise ValueError(f"{label}: {call.func.id}() takes at most one positional argument")
        if not call.args:
            return call.func.id, None
        argument = call.args[0]
        written = ast.get_source_segment(_flat(source), argument) or ast.unparse(argument)
        body = ExprRewriter((), True).rewrite(argument)
        fn = cast(Callable[[Event], object], self._function(EVENT, body, label))
        return call.func.id, CompiledExpr(written, label, fn)

    def _parse(self, source: str, label: str) -> ast.expr:
        return _parse_body(source, label)

    def _function(self, parameter: str, body: ast.expr, label: str) -> object:
        tree = ast.fix_missing_locations(_lambda(parameter, body))
        # Python's compiler warns about valid expressions it finds suspicious (`x is 'a'`,
        # `[1, 2][0.5]`): not the user's business at run time, and an error under -W error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(tree, f"<expression {label}>", "eval", dont_inherit=True)
        # Evaluating the compiled lambda only creates the function; its globals are the
        # whitelisted functions and empty builtins.
        return eval(code, self.scope)
