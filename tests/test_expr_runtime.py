"""Per-event expressions: compiled once, evaluated as plain Python, guarded, payload-free errors."""

import ast
import builtins
import math
import random
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.compile_expr import CompiledExpr, ExprCompiler, function_scope, inline_python
from engine.expr import FUNCTIONS, check
from engine.expr_rewrite import SMALL_FACTOR
from engine.functions import ExprLimitError, ExprValueError, describe_error
from engine.node import ManualClock

# 2026-11-21T10:00:00Z: 20,778 days after 1970-01-01 (56 years with 14 leap days, then
# 324 days into 2026) times 86,400 seconds, plus ten hours.
T: float = 20_778 * 86_400 + 10 * 3_600.0
ISO: str = "2026-11-21T10:00:00Z"

EVENT: dict[str, object] = {
    "amount": 5,
    "price": 2.5,
    "name": "  Ann Lee ",
    "user": {"name": "ann", "email": None, "tags": ["a", "b"]},
    "items": [{"sku": "x1", "qty": 2}, {"sku": "y2", "qty": 3}],
    "tags": ["red", "green", "blue", "cyan"],
    "row": {"odd key": 7, "3": "three"},
    "empty": None,
    "ts": ISO,
    "csv": "a,b,,c",
    "k": "odd key",
    "n": 2,
}


def compiler(seed: int = 0, now: float = T) -> ExprCompiler:
    return ExprCompiler(random.Random(seed), ManualClock(now))


def run(source: str, event: dict[str, object] | None = None) -> object:
    assert check(source) == [], source  # only what the loader accepts reaches the compiler
    return compiler().value(source, "test").fn(EVENT if event is None else event)


def failure(source: str, event: dict[str, object] | None = None) -> Exception:
    with pytest.raises(Exception) as info:
        run(source, event)
    assert isinstance(info.value, Exception)
    return info.value


# --- functions, against hand-computed values ----------------------------------------------

VALUES = [
    # numeric
    ("int('42')", 42), ("int(12345678901234567890123)", 12345678901234567890123),
    ("round(12345678901234567890123, -3)", 12345678901234567890000), ("int(' -7 ')", -7), ("int(3.99)", 3),
    ("int(-3.99)", -3), ("int(True)", 1),
    ("float('2.5')", 2.5), ("float(3)", 3.0), ("round(2.675, 1)", 2.7), ("round(3.5)", 4), ("round(2.5)", 2),
    ("round(1234, -2)", 1200), ("round(5, -1000000000)", 0), ("abs(-3)", 3), ("abs(price - 4)", 1.5),
    ("min(3, 1, 2)", 1), ("max(3, 1, 2)", 3), ("min(tags)", "blue"), ("max([4, 9, 1])", 9),
    ("min(amount, price)", 2.5),
    # operators
    ("amount * 100", 500), ("price * 2", 5.0), ("amount / 2", 2.5), ("amount // 2", 2), ("-amount // 3 % 7", 5),
    ("amount % 3", 2), ("2 ** 10", 1024), ("2 ** -1", 0.5), ("'ab' * 3", "ababab"), ("[0] * 3", [0, 0, 0]),
    ("amount * amount", 25), ("1 + 2 * 3 ** 2", 19), ("(1 + 2) * 3", 9), ("2 ** 3 ** 2", 512),
    # string
    ("str(amount)", "5"), ("str(price)", "2.5"), ("str(None)", "None"), ("lower('AbC')", "abc"),
    ("upper(user.name)", "ANN"),
    ("strip(name)", "Ann Lee"), ("strip('xxhixx', 'x')", "hi"), ("startswith(name, '  A')", True),
    ("startswith(user.name, ['b', 'a'])", True), ("endswith(ts, 'Z')", True), ("endswith('abc', 'b')", False),
    ("contains(name, 'Lee')", True), ("contains(tags, 'blue')", True), ("contains(tags, 'pink')", False),
    ("contains(row, 'odd key')", True), ("split(csv, ',')", ["a", "b", "", "c"]), ("split(' a  b ')", ["a", "b"]),
    ("split(csv, ',', 1)", ["a", "b,,c"]), ("join(tags)", "redgreenbluecyan"),
    ("join(tags, '-')", "red-green-blue-cyan"),
    ("join([1, None, 'x'], ',')", "1,None,x"), ("len(tags)", 4), ("len(name)", 10), ("len(row)", 2),
    # access
    ("user.name", "ann"), ("items[0].sku", "x1"), ("items[-1]['qty']", 3), ("tags[1:3]", ["green", "blue"]),
    ("tags[::2]", ["red", "blue"]), ("row['odd key']", 7), ("row[k]", 7), ("tags[n]", "blue"), ("user.tags[-1]", "b"),
    ("{'a': 1}['a']", 1), ("{'total': amount * 2, 'who': [user.name]}", {"total": 10, "who": ["ann"]}),
    ("(amount, name)[0]", 5),
    # logic
    ("amount > 3 and price < 3", True), ("amount > 9 or 'fallback'", "fallback"), ("not empty", True),
    ("empty is None", True), ("user is not None", True), ("'big' if amount > 3 else 'small'", "big"),
    ("1 < amount <= 5", True), ("'green' in tags", True), ("'pink' not in tags", True),
    # time
    ("parse_time(ts)", T), ("parse_time('2026-11-21T11:30:00+01:30')", T), ("parse_time('2026-11-21T10:00:00')", T),
    ("parse_time('2026-11-21')", T - 10 * 3_600), ("parse_time(1795255200)", T), ("parse_time(0.5)", 0.5),
    ("parse_time('21/11/2026 10:00', '%d/%m/%Y %H:%M')", T),
    ("parse_time('2026-11-21 12:00 +0200', '%Y-%m-%d %H:%M %z')", T),
    ("format_time(1795255200)", ISO), ("format_time(0)", "1970-01-01T00:00:00Z"),
    ("format_time(1795255200.5)", "2026-11-21T10:00:00.500000Z"),
    ("format_time('2026-11-21T11:00:00+01:00')", ISO),
    ("format_time(1795255200, '%Y-%m-%d %H:%M %Z')", "2026-11-21 10:00 UTC"),
    ("now()", T), ("format_time(now())", ISO), ("now() - parse_time(ts)", 0.0),
    # null handling
    ("coalesce(empty, amount)", 5), ("coalesce(user.email, user.name)", "ann"), ("coalesce(empty, None)", None),
    ("coalesce(missing, user.nope, items[7].sku, 'default')", "default"), ("coalesce(empty.deeper, 0)", 0),
    ("coalesce(amount.deeper, 'not a mapping')", "not a mapping"), ("coalesce(tags[n], 'x')", "blue"),
    ("coalesce(lower(user.name), 'x')", "ann"),
    ("exists(amount)", True), ("exists(empty)", True), ("exists(user.email)", True), ("exists(missing)", False),
    ("exists(user.phone)", False), ("exists(empty.x)", False), ("exists(items[1].sku)", True),
    ("exists(items[2].sku)", False), ("exists(tags[1:3])", True), ("exists(name.first)", False),
    ("exists(tags[n if n else 0])", True), ("exists(items[n if n else 0].sku)", False),
    ("coalesce(items[n - 1 if n else 0].sku, 'x')", "y2"), ("exists(row[k])", True), ("exists(row[csv])", False),
    ("exists(None)", False), ("exists(amount + 1)", True),
]


@pytest.mark.parametrize(("source", "expected"), VALUES, ids=[source for source, _ in VALUES])
def test_value(source: str, expected: object) -> None:
    result = run(source)
    assert result == expected
    assert type(result) is type(expected)


def test_function_table_is_the_whitelist() -> None:
    table = function_scope(random.Random(0), ManualClock(), prefix="")
    assert sorted(table) == sorted(FUNCTIONS)


def test_multi_line_expression() -> None:
    assert run("amount * 2\n  + int(\n'3')") == 13


@pytest.mark.parametrize("t", [0.0, T, T + 0.25, 951_782_400.0, 4_102_444_800.0])
def test_time_round_trip(t: float) -> None:
    assert run("parse_time(format_time(t))", {"t": t}) == t


def test_now_follows_the_injected_clock() -> None:
    clock = ManualClock(100.0)
    expr = ExprCompiler(random.Random(0), clock).value("now()", "where")
    assert expr.fn({}) == 100.0
    clock.advance(2.5)
    assert expr.fn({}) == 102.5


def test_seeded_rand_is_reproducible() -> None:
    first = compiler(seed=7).value("rand()", "fields.r").fn
    second = compiler(seed=7).value("rand()", "fields.r").fn
    other = compiler(seed=8).value("rand()", "fields.r").fn
    a = [first({}) for _ in range(20)]
    assert a == [second({}) for _ in range(20)]
    assert a != [other({}) for _ in range(20)]
    assert all(isinstance(x, float) and 0.0 <= x < 1.0 for x in a)
    assert a[0] == random.Random(7).random()


# --- per-event errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "kind", "description"), [
    ("missing + 1", KeyError, "missing field 'missing'"),
    ("user.phone", KeyError, "missing field 'phone'"),
    ("items[0]['price']", KeyError, "missing field 'price'"),
    ("items[5]", IndexError, "index out of range"),
    ("row[3]", KeyError, "missing key"),
    ("amount / 0", ZeroDivisionError, "division by zero"),
    ("amount // (n - 2)", ZeroDivisionError, "division by zero"),
    ("amount % 0", ZeroDivisionError, "division by zero"),
    ("name + 1", TypeError, 'can only concatenate str (not "int") to str'),
    ("name < 1", TypeError, "'<' not supported between instances of 'str' and 'int'"),
    ("empty.x", TypeError, "'NoneType' object is not subscriptable"),
    ("lower(amount)", TypeError, "lower() needs text, not number"),
    ("name % 2", TypeError, "% needs numbers, not text (to build text use str(x) and +)"),
    ("int('abc')", ExprValueError, "int() needs a whole number, e.g. int('42')"),
    ("min([])", ExprValueError, "min() of an empty list"),
    ("split(csv, '')", ExprValueError, "split() separator is empty"),
    ("parse_time('tomorrow')", ExprValueError, "parse_time() needs ISO 8601 text, e.g. 2026-11-21T10:00:00Z"),
    ("format_time(1e20)", ExprValueError, "format_time() time is out of range"),
    ("(-8) ** 0.5", ExprValueError, "** of a negative number to a fractional power has no real result"),
    ("2.0 ** 5000", OverflowError, "number out of range"),
    ("int(float('inf'))", OverflowError, "number out of range"),
])
def test_per_event_errors(source: str, kind: type, description: str) -> None:
    exc = failure(source)
    assert isinstance(exc, kind)
    assert describe_error(exc) == description


PAYLOAD = "secret-value"
LEAKY = [
    "int(s)", "float(s)", "parse_time(s)", "parse_time(s, '%Y')", "format_time(s)", "row[s]", "items[s]",
    "s + 1", "s < 1", "s % 1", "lower(s) * s", "split(s, s[0:0])", "{s: 1}[s + 'x']", "round(s)",
    "s / 2", "len(s) + s", "abs(s)", "contains(1, s)", "s[99]",
]


@pytest.mark.parametrize("source", LEAKY)
def test_errors_never_contain_the_payload(source: str) -> None:
    description = describe_error(failure(source, {"s": PAYLOAD, "row": {}, "items": []}))
    assert "secret" not in description
    assert description and "\n" not in description


@pytest.mark.parametrize("make", [
    lambda: int(PAYLOAD), lambda: int(PAYLOAD, 16), lambda: float(PAYLOAD),
    lambda: datetime.strptime(PAYLOAD, "%Y"), lambda: datetime.fromisoformat(PAYLOAD),
])
def test_describe_plain_python_errors_without_payload(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert "secret" in str(info.value)  # Python itself echoes the value...
    assert "secret" not in describe_error(info.value)  # ...the description does not


def test_describe_python_int_error_says_invalid_number() -> None:
    with pytest.raises(ValueError) as info:
        int("abc")
    assert describe_error(info.value) == "invalid number"


# --- guards ---------------------------------------------------------------------------------

REFUSAL_PEAK_BYTES = 1024 * 1024  # compiling and refusing take under 100 kB; the smallest result here, 16 MB


@pytest.mark.parametrize("source", [
    "'a' * 10**9", "10 ** 10 ** 10", "[0] * 10**8", "10**8 * [0]", "(1, 2) * 10**7",
    "[0] * 10000 * 10000", "'ab' * 10000 * 10000", "2 ** 10001", "99 ** 6000", "(10**5000) * (10**5001)",
    "s * 10**6", "7 ** (amount * 10**4)",
    # a small literal factor is plain only when the other side holds no product
    "([0] * 2000 if amount else 0) * 10000", "[[0] * 2000][0] * 10000", "(0 if not amount else [0] * 10000) * 10000",
])
def test_guards_refuse_huge_results_before_building_them(source: str) -> None:
    """Measured in work, not seconds: the refusal comes before the result is built, so the
    call allocates far less than any of these results would hold (16 MB and up)."""
    tracemalloc.start()
    try:
        exc = failure(source, {"s": "0123456789abcdef", "amount": 5})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < REFUSAL_PEAK_BYTES, f"{peak:,} bytes allocated"
    assert isinstance(exc, ExprLimitError)
    assert "10,000" in describe_error(exc)


@pytest.mark.parametrize(("source", "expected"), [
    ("2 ** 10", 1024), ("'ab' * 3", "ababab"), ("[1] * 10_000_000 == [1] * 10_000_000", True),
    ("len('a' * 10**7)", 10_000_000), ("2 ** 10000 > 0", True), ("1 ** 10**9", 1), ("(-1) ** (10**9 + 1)", -1),
    ("0 ** 10**9", 0), ("2.0 ** 0.5", math.sqrt(2.0)), ("2 ** -10**9", 0.0), ("len(str(9 ** 4000))", 3817),
])
def test_guards_allow_reasonable_results(source: str, expected: object) -> None:
    assert run(source) == expected


def test_string_formatting_payload_cannot_allocate() -> None:
    # With Python's `%`, this field would make `id % 10` build a gigabyte of text.
    exc = failure("id % 10", {"id": "%0999999999d"})
    assert isinstance(exc, TypeError)


def uses(source: str, name: str) -> bool:
    code = compiler().value(source, "t").fn.__code__
    return name in code.co_names


@pytest.mark.parametrize(("source", "guarded"), [
    # A field may hold a list of any length: a literal factor does not bound `tags * 100`.
    ("amount * 100", True), ("100 * amount", True), ("amount * -3", True), ("amount * 2.5", False),
    (f"amount * {SMALL_FACTOR + 1}", True), ("amount * qty", True),
    ("amount * 100 * 100", True), ("[0] * 10", False), ("'ab' * 3", False), ("3 * 4", False),
    ("[[0] * 10] * 10", True), ("amount * True", True),
])
def test_multiply_is_plain_only_when_bounded(source: str, guarded: bool) -> None:
    assert uses(source, "_g_multiply") is guarded


@pytest.mark.parametrize(("source", "guarded"), [
    ("amount * 100", False), (f"{SMALL_FACTOR} * amount", False), (f"amount * {SMALL_FACTOR + 1}", True),
    ("tags * 100", True),
])
def test_fused_code_multiplies_a_field_it_knows_is_a_number_plainly(source: str, guarded: bool) -> None:
    assert ("_g_multiply" in inline_python(source, "t", "_f0_", numbers=frozenset({"amount"}))) is guarded


def test_a_small_literal_factor_does_not_let_an_events_list_blow_up() -> None:
    exc = failure("tags * 10000", {"tags": list(range(100_000))})
    assert isinstance(exc, ExprLimitError)


def test_power_and_modulo_are_always_guarded_unless_constant_left() -> None:
    assert uses("2 ** 3", "_g_power")
    assert uses("i % 2", "_g_modulo")
    assert not uses("7 % i", "_g_modulo")


# --- exists, coalesce, sandbox ------------------------------------------------------------------


def test_exists_and_coalesce_on_paths_through_none_and_missing() -> None:
    event: dict[str, object] = {"a": {"b": None}, "c": None}
    assert run("exists(a.b)", event) is True
    assert run("exists(a.b.c)", event) is False
    assert run("exists(c.d)", event) is False
    assert run("exists(z)", event) is False
    assert run("coalesce(a.b, c, z, a.b.c, 'fallback')", event) == "fallback"
    assert run("coalesce(a.b.c, z)", event) is None


def test_compiled_code_reaches_nothing_but_the_functions() -> None:
    fn = compiler().value("lower(name)", "t").fn
    assert all(name.startswith("_") for name in fn.__globals__)
    # Only the importer that datetime's C code needs, refusing everything else.
    assert list(fn.__globals__["__builtins__"]) == ["__import__"]
    importer = fn.__globals__["__builtins__"]["__import__"]
    assert importer("time") is time
    for name in ("os", "sys", "builtins", "subprocess"):
        with pytest.raises(ImportError):
            importer(name)
    # A field called like a builtin is still a field.
    assert run("len + 1", {"len": 1}) == 2


@pytest.mark.parametrize("source", [
    "__import__('os')", "x.__class__", "().__class__.__bases__", "name.lower()", "eval('1')",
    "[[y for y in x] for x in l]", "{x for x in y}", "lambda: 1", "a & b", "b'x'",
])
def test_compiler_refuses_what_the_checker_refuses(source: str) -> None:
    assert check(source) != []
    with pytest.raises(ValueError):
        compiler().value(source, "t")


# --- update, generator, aggregate_call ------------------------------------------------------------


def test_update_returns_a_new_event_computed_from_the_input() -> None:
    update = compiler().update({"total": "amount * price", "amount": "amount + 1", "double": "amount * 2"})
    event: dict[str, object] = {"amount": 4, "price": 2.5, "keep": [1]}
    before = dict(event)
    out = update(event)
    assert event == before  # input untouched
    assert out is not event
    assert out == {"amount": 5, "price": 2.5, "keep": [1], "total": 10.0, "double": 8}
    assert list(out) == ["amount", "price", "keep", "total", "double"]
    assert out["keep"] is event["keep"]  # shallow copy


def test_update_failure_leaves_input_untouched() -> None:
    update = compiler().update({"a": "1", "b": "missing"})
    event: dict[str, object] = {"x": 1}
    with pytest.raises(KeyError):
        update(event)
    assert event == {"x": 1}


def test_generator_reads_only_i_and_keeps_field_order() -> None:
    make = compiler(seed=7).generator({"id": "i", "even": "i % 2 == 0", "label": "'n' + str(i)", "r": "rand()"})
    again = compiler(seed=7).generator({"id": "i", "even": "i % 2 == 0", "label": "'n' + str(i)", "r": "rand()"})
    events = [make(i) for i in range(3)]
    assert [list(e) for e in events] == [["id", "even", "label", "r"]] * 3
    assert [(e["id"], e["even"], e["label"]) for e in events] == [(0, True, "n0"), (1, False, "n1"), (2, True, "n2")]
    assert events == [again(i) for i in range(3)]
    with pytest.raises(ValueError):
        compiler().generator({"x": "amount"})


def test_aggregate_call() -> None:
    name, argument = compiler().aggregate_call("sum(amount * 2)", "fields.total")
    assert name == "sum" and isinstance(argument, CompiledExpr)
    assert (argument.source, argument.label) == ("amount * 2", "fields.total")
    assert argument.fn({"amount": 4}) == 8
    assert compiler().aggregate_call("count()", "fields.n") == ("count", None)
    assert compiler().aggregate_call("collect(\n  lower(name))", "x")[1].fn({"name": "A"}) == "a"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        compiler().aggregate_call("amount + 1", "fields.bad")


def test_compiled_expr_keeps_source_and_label() -> None:
    expr = compiler().value("amount  > 1", "routes.big")
    assert (expr.source, expr.label) == ("amount  > 1", "routes.big")


# --- compiled once -------------------------------------------------------------------------------


def test_compiled_once_and_evaluated_without_the_ast(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = {"parse": 0, "code": 0}
    real_parse, real_compile = ast.parse, builtins.compile

    def counting_parse(*args, **kwargs):
        counts["parse"] += 1
        return real_parse(*args, **kwargs)

    def counting_compile(*args, **kwargs):
        # ast.parse compiles too (to a tree); count only trees compiled to code.
        counts["code"] += isinstance(args[0], ast.AST)
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting_parse)
    monkeypatch.setattr(builtins, "compile", counting_compile)
    c = compiler()
    expr = c.value("lower(name) + str(amount * 2) if exists(name) else coalesce(x, 'none')", "set.label")
    update = c.update({"a": "amount + 1", "b": "upper(name)", "c": "amount ** 2"})
    assert counts == {"parse": 1 + 3, "code": 2}  # one parse per expression, one compile per function

    def forbidden(*args, **kwargs):
        raise AssertionError("the AST or the compiler was used while evaluating")

    for module, name in [(ast, "parse"), (ast, "walk"), (ast, "literal_eval"), (ast.NodeVisitor, "visit"),
                         (ast.NodeTransformer, "generic_visit"), (builtins, "compile"), (builtins, "eval"),
                         (builtins, "exec")]:
        monkeypatch.setattr(module, name, forbidden)
    labels = [expr.fn({"name": "A", "amount": k}) for k in range(1000)]
    updated = [update({"name": "b", "amount": k}) for k in range(1000)]
    assert labels[999] == "a1998" and expr.fn({"x": None}) == "none"
    assert updated[999] == {"name": "b", "amount": 999, "a": 1000, "b": "B", "c": 998_001}


# --- properties ---------------------------------------------------------------------------------

FLOOR_MOD = compiler().value("a // b + a % b * 2", "property").fn


@given(st.integers(), st.integers().filter(lambda b: b != 0))
def test_floor_division_and_modulo_match_python(a: int, b: int) -> None:
    assert FLOOR_MOD({"a": a, "b": b}) == a // b + a % b * 2


@given(st.text(max_size=20), st.integers(min_value=-3, max_value=50))
def test_repetition_matches_python_below_the_limit(text: str, count: int) -> None:
    assert run("s * k", {"s": text, "k": count}) == text * count
