"""The expression whitelist: what users write is accepted, known sandbox escapes are not."""

import pytest

from engine import expr
from loader import load_text

ACCEPTED = [
    "int(amount * 100)",
    "kind == 'buy' and amount > 10",
    "'a' if x else 'b'",
    "user.name",
    "items[0]",
    "items[-1]['sku']",
    "lower(strip(name))",
    "coalesce(country, 'unknown')",
    "exists(user.email)",
    "not (a or b)",
    "kind in ['buy', 'sell']",
    "x is None",
    "round(price, 2)",
    "min(a, b, c)",
    "len(split(path, '/'))",
    "format_time(parse_time(ts), '%Y-%m-%d')",
    "now()",
    "-amount // 3 % 7",
    "{'a': 1}['a']",
    "items[1:3]",
]

# Known ways out of Python "sandboxes" built on eval; every one must be refused at load time.
ESCAPES = [
    "().__class__.__bases__[0].__subclasses__()",
    "''.__class__.__mro__[1].__subclasses__()",
    "__import__('os').system('id')",
    "__builtins__",
    "__builtins__['eval']('1')",
    "eval('1+1')",
    "exec('import os')",
    "compile('1', 'x', 'eval')",
    "open('/etc/passwd')",
    "getattr(x, '__class__')",
    "globals()",
    "locals()",
    "vars()",
    "type(x)",
    "breakpoint()",
    "(lambda: 1)()",
    "[c for c in ().__class__.__bases__]",
    "{k: v for k, v in x}",
    "(y := 1)",
    "f'{x.__class__}'",
    "'{0.__class__}'.format(x)",
    "x.format_map(y)",
    "x.__globals__",
    "x.gi_frame",  # allowed as a field name, but a call on it is not:
    "x.gi_frame.f_back()",
    "str.__dict__",
    "x._private",
    "_hidden",
    "lower.__self__",
    "(*x,)",
    "print(x)",
    "help()",
    "memoryview(b'x')",
    "b'bytes'",
    "x @ y",
    "~x",
    "1 << 1000000",
]
ESCAPES.remove("x.gi_frame")  # plain field access on the event is fine


@pytest.mark.parametrize("source", ACCEPTED)
def test_accepted(source):
    assert expr.check(source) == []


@pytest.mark.parametrize("source", ESCAPES)
def test_escape_refused(source):
    errors = expr.check(source)
    assert errors, source
    assert all(e.kind != expr.SYNTAX for e in errors) or source.startswith(("(*", "b'"))


@pytest.mark.parametrize("source", ESCAPES)
def test_escape_refused_in_a_graph_with_its_place(source, registry):
    text = (f"version: 1\nnodes:\n  a: {{type: file.read, with: {{path: x}}}}\n  b:\n    type: filter\n"
            f"    from: a\n    with:\n      where: {source!r}\n  c: {{type: 'null', from: b}}\n")
    result = load_text("g.yaml", text, registry)
    assert result.plan is None
    assert all(p.line == 8 and p.path == "nodes.b.with.where" for p in result.problems)
    assert {p.code for p in result.problems} <= {"HR040", "HR041", "HR042", "HR044"}


def test_error_columns_point_into_the_value(registry):
    text = 'version: 1\nnodes:\n  a: {type: file.read, with: {path: x}}\n'
    text += '  b: {type: filter, from: a, with: {where: "amount > 1 and lowr(x)"}}\n'
    text += "  c: {type: 'null', from: b}\n"
    [problem] = load_text("g.yaml", text, registry).problems
    assert (problem.code, problem.line, problem.column) == ("HR042", 4, 60)
    assert text.splitlines()[3][problem.column - 1:].startswith("lowr(")
    assert problem.hint == "did you mean 'lower'?"


def test_plain_scalar_column(registry):
    text = ("version: 1\nnodes:\n  a: {type: file.read, with: {path: x}}\n  b:\n    type: filter\n    from: a\n"
            "    with:\n      where: x.__class__\n  c: {type: 'null', from: b}\n")
    [problem] = load_text("g.yaml", text, registry).problems
    assert (problem.code, problem.line, problem.column) == ("HR044", 8, 16)


def test_argument_count_is_checked():
    [error] = expr.check("lower(a, b)")
    assert error.kind == expr.WRONG_ARGUMENT_COUNT
    assert error.message == "lower() takes 1 argument, got 2"


def test_aggregate_shape():
    assert expr.check("count()", aggregate=True) == []
    assert expr.check("sum(amount * 2)", aggregate=True) == []
    assert [e.kind for e in expr.check("sum(a) + 1", aggregate=True)] == [expr.AGGREGATE_SHAPE]
    assert [e.kind for e in expr.check("median(a)", aggregate=True)] == [expr.UNKNOWN_AGGREGATE]
    assert [e.kind for e in expr.check("sum(sum(a))", aggregate=True)] == [expr.AGGREGATE_SHAPE]
    assert [e.kind for e in expr.check("sum(a)")] == [expr.AGGREGATE_SHAPE]


def test_generate_scope_is_only_the_index():
    assert expr.check("i * 2", scope=("i",)) == []
    [error] = expr.check("j * 2", scope=("i",))
    assert error.kind == expr.UNKNOWN_NAME


@pytest.mark.parametrize("source", ["", "   ", "(" * 500 + ")" * 500, "x" * 5000, "a +", "1 +* 2", "\x00"])
def test_malformed_sources_give_errors_not_exceptions(source):
    errors = expr.check(source)
    assert errors and errors[0].kind in (expr.SYNTAX, expr.FORBIDDEN)


def test_columns_count_characters_not_bytes(registry):
    text = ("version: 1\nnodes:\n  a: {type: file.read, with: {path: x}}\n"
            "  b: {type: filter, from: a, with: {where: \"city == 'Zürich' and lowr(name)\"}}\n"
            "  c: {type: 'null', from: b}\n")
    [problem] = load_text("g.yaml", text, registry).problems
    assert text.splitlines()[problem.line - 1][problem.column - 1:].startswith("lowr(")


def test_block_scalar_expression_spans_lines_and_errors_point_inside(registry):
    ok = ("version: 1\nnodes:\n  a: {type: file.read, with: {path: x}}\n  b:\n    type: filter\n    from: a\n"
          "    with:\n      where: |\n        amount > 0 and\n          kind == 'buy'\n  c: {type: 'null', from: b}\n")
    assert load_text("g.yaml", ok, registry).problems == []
    broken = ok.replace("kind == 'buy'", "kind == = 'buy'")
    [problem] = load_text("g.yaml", broken, registry).problems
    assert (problem.code, problem.line, problem.column) == ("HR040", 10, 19)


def test_toml_multiline_string_error_points_inside(registry):
    text = ('version = 1\n[nodes.a]\ntype = "file.read"\nwith = { path = "x" }\n[nodes.b]\ntype = "filter"\n'
            'from = "a"\n[nodes.b.with]\nwhere = """\namount > 0 and\nlowr(kind) == \'buy\'"""\n'
            '[nodes.c]\ntype = "null"\nfrom = "b"\n')
    [problem] = load_text("g.toml", text, registry).problems
    assert (problem.code, problem.line, problem.column) == ("HR042", 11, 1)


def test_single_equals_gets_a_hint():
    [error] = expr.check("kind = 'buy'")
    assert error.kind == expr.SYNTAX and error.hint == "compare with ==, not ="
    assert error.column == 5


def test_wrapped_aggregate_is_a_shape_problem():
    [error] = expr.check("round(avg(x), 2)", aggregate=True)
    assert error.kind == expr.AGGREGATE_SHAPE
    assert "map node after" in error.hint


def test_operator_is_named_and_located():
    [error] = expr.check("a  & b")
    assert error.message == "the '&' operator is not allowed in expressions"
    assert error.column == 3
