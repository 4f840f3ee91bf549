"""Generated expressions and events for tests/test_fuzz_expr.py.

Expressions come from the language's grammar (every operator, function and literal kind),
from what it refuses (lambdas, comprehensions, dunders, method calls, bitwise operators,
keyword arguments, f-strings, unknown functions), from known ways out of `eval` sandboxes,
from results too large to build, from deep nesting, and from character edits of the
shipped graphs' expressions. Each case comes from its own `random.Random`, so it replays
alone from the seed a failure prints.
"""

import random
import re
from typing import Final

from engine.expr import AGGREGATES, FUNCTIONS
from tests.conftest import ROOT

FIELDS: Final = ["a", "b", "n", "s", "xs", "user", "items", "none", "flag", "f", "big", "text", "ts", "i", "tags"]
DANGEROUS_NAMES: Final = [
    "__import__", "__builtins__", "__class__", "__globals__", "__dict__", "__code__", "__subclasses__", "__mro__",
    "_event", "_f_lower", "_g_item", "_g_power", "eval", "exec", "open", "getattr", "setattr", "type", "vars",
    "globals", "locals", "compile", "breakpoint", "input", "print", "object", "os", "sys", "builtins", "self",
    "lambda", "import", "True", "None", "__self__", "f_back", "gi_frame", "tb_frame", "func_globals",
]
ESCAPES: Final = [
    "().__class__.__bases__[0].__subclasses__()", "[].__class__.__mro__[1].__subclasses__()", "x.__class__",
    "__import__('os').system('true')", "_event.__class__", "lower.__globals__", "lower.__self__", "rand.__self__",
    "now.__self__.__class__", "_f_lower.__globals__['__builtins__']", "getattr(x, '__class__')", "type(x)",
    "vars()", "globals()", "locals()", "eval('1')", "exec('1')", "open('/etc/passwd')", "breakpoint()",
    "lower.__call__", "lower('a').__class__", "(lambda: 1)()", "[c for c in ().__class__.__bases__]",
    "f'{x.__class__}'", "'{0.__class__}'.format(x)", "'%s' % x", "x['__class__']", "x[__class__]",
    "user._secret", "_", "__", "a.__dict__", "split.__doc__", "str.__mro__", "len.__self__", "int.__subclasses__()",
    "(x := 1)", "*xs", "{1, 2}", "b'x'", "1j", "...", "await x", "(yield)", "lower(s=1)", "lower(*xs)",
    "lower(**user)", "a if b else c.__class__", "coalesce(x.__class__)", "exists(x.__class__)",
    "exists(x[0].__class__)", "_g_item(user, 'name')", "_g_slice(1, 2, 3)", "__builtins__['eval']",
    "parse_time.__globals__", "i.__class__", "True.__class__", "None.__class__", "'a'.__class__",
    "xs.__len__()", "xs.append(1)", "user.get('name')", "items.pop()", "().__reduce_ex__(2)",
]
HUGE: Final = [
    "10 ** 10 ** 10", "2 ** 10001", "9 ** 9 ** 9", "'a' * 10 ** 9", "[0] * 10 ** 8", "(1, 2) * 10 ** 7",
    "[[0] * 10 ** 7] * 10 ** 7", "[[0] * 10 ** 6] * 100", "['x' * 10 ** 6] * 10 ** 6", "[[[0] * 1000] * 1000] * 1000",
    "join([0] * 10 ** 7, 'x' * 10 ** 7)", "join(['a'] * 10 ** 6, 'ab' * 100)", "str([[0] * 10 ** 7] * 10 ** 7)",
    "len(str([[0] * 1000] * 1000))", "'ab' * 10000 * 10000", "[0] * 10000 * 10000", "10 ** 5000 * 10 ** 5001",
    "xs * 10 ** 8", "s * 10 ** 7", "[xs] * 10 ** 7", "[s] * 10 ** 7 == [s] * 10 ** 7", "user * 10 ** 9",
    "split('a,' * 10 ** 6, ',')", "len(split(' ' * 10 ** 7))", "upper('\u00df' * 10 ** 6)", "int('9' * 5000)",
    "str(10 ** 9999)", "round(10 ** 9999, -9999)", "round(5, -10 ** 9)", "round(1.5, 10 ** 9)",
    "format_time(0, '%Y' * 10 ** 5)", "parse_time('1', '%d%d')", "parse_time('1', '%d' * 1000)",
    "contains('a' * 10 ** 6, 'a' * 10 ** 5 + 'b')", "'a' * 10 ** 6 in 'a' * 10 ** 7", "min([[0] * 10 ** 6] * 10)",
    "[[0] * 10 ** 7] * 10 ** 7 == [[0] * 10 ** 7] * 10 ** 7", "max(xs * 1000)", "2.0 ** 10 ** 10",
    "(10 ** 9999) // 7 ** 5000", "10 ** 9999 % 10 ** 5000", "-(10 ** 9999)", "abs(-(10 ** 9999))",
    "float(10 ** 9999)", "int(1e308 * 10)", "sqrt(-1)", "log(0)", "pow(10, 400)", "exp(1000)", "strip(s * 10 ** 6)",
    "i * i * i * i * i * i * i * i * i * i * i * i * i * i * i * i * i * i * i * i", "2 ** 2 ** 2 ** 2 ** 2",
]
OPERATORS: Final = ["+", "-", "*", "/", "//", "%", "**", "&", "|", "^", "<<", ">>", "@"]
COMPARISONS: Final = ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"]
STRINGS: Final = [
    "''", "'a'", "'abc'", "'%d'", "'%0999999999d'", "'{}'", "'\\u00e9'", "'\\N{SNOWMAN}'", "'\\x00'", "'\\ud800'",
    "'\U0001f680'", "'\u202e'", "'2026-11-21T10:00:00Z'", "'1'", "'1.5'", "'nan'", "'inf'", "'-0'", "'\\\\'",
    "\"a'b\"", "'''x'''", "r'\\d'", "'\\d'", "'x' 'y'", "'%Y-%m-%d'", "'%'", "'%Q'", "','", "' '", "'__class__'",
]
NUMBERS: Final = [
    "0", "1", "-1", "2", "7", "10", "100", "10000", "10001", "0.5", "1e308", "1e-308", "5e-324", "1e309", "-0.0",
    "0x10", "0o17", "0b101", "1_000", "10 ** 300", "9" * 50, "1" * 5000, "True", "False", "None", "007",
]

_SHIPPED_EXPRESSIONS: Final = re.compile(r"(?:where|set|fields)[^\n]*?[:=]\s*(?:\{)?([^\n]*)")


def shipped_expressions() -> list[str]:
    """Expression-looking strings from the shipped graphs (quoted values of where/set/fields)."""
    found: set[str] = set()
    for path in sorted((ROOT / "graphs").rglob("*.yaml")):
        for quoted in re.findall(r'"([^"\n]{2,80})"', path.read_text()):
            found.add(quoted)
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().partition(": ")
            if sep and key.isidentifier() and value and not value.startswith(("{", "[", "#", "'", '"')):
                found.add(value)
    return sorted(found)


SHIPPED: Final = shipped_expressions()


def atom(rng: random.Random) -> str:
    kind = rng.randrange(10)
    if kind < 4:
        return rng.choice(FIELDS)
    if kind < 6:
        return rng.choice(NUMBERS)
    if kind < 8:
        return rng.choice(STRINGS)
    if kind == 8:
        return rng.choice(DANGEROUS_NAMES)
    return rng.choice(["[]", "()", "{}", "[1, 2, 3]", "(1,)", "{'k': 1}", "[xs, xs]", "{'a': [1, {'b': None}]}"])


def expression(rng: random.Random, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.25:
        return atom(rng)
    sub = lambda: expression(rng, depth - 1)  # noqa: E731
    kind = rng.randrange(18)
    if kind < 3:
        return f"({sub()} {rng.choice(OPERATORS[:7])} {sub()})"
    if kind == 3:
        return f"({sub()} {rng.choice(OPERATORS)} {sub()})"
    if kind == 4:
        return f"({sub()} {rng.choice(COMPARISONS)} {sub()})" if rng.random() < 0.8 else f"{sub()} < {sub()} < {sub()}"
    if kind == 5:
        return f"({sub()} {rng.choice(['and', 'or'])} {sub()})"
    if kind == 6:
        return f"({rng.choice(['-', '+', 'not ', '~'])}{sub()})"
    if kind == 7:
        return f"({sub()} if {sub()} else {sub()})"
    if kind in (8, 9, 10):
        name = rng.choice(sorted(FUNCTIONS)) if rng.random() < 0.85 else rng.choice(sorted(AGGREGATES) + ["eval"])
        low, high = FUNCTIONS.get(name, (0, 3))
        count = rng.randint(low, high if high >= 0 else low + 3) if rng.random() < 0.85 else rng.randint(0, 4)
        return f"{name}({', '.join(sub() for _ in range(count))})"
    if kind == 11:
        index = rng.choice([sub(), "0", "-1", "'name'", "10 ** 30", f"{sub()}:{sub()}", "::-1", "1:2:0", "::"])
        return f"{sub()}[{index}]"
    if kind == 12:
        return f"{sub()}.{rng.choice(FIELDS + DANGEROUS_NAMES)}"
    if kind == 13:
        inner = ", ".join(sub() for _ in range(rng.randint(0, 3)))
        return rng.choice([f"[{inner}]", f"({inner},)", "{" + ", ".join(f"{sub()}: {sub()}" for _ in range(2)) + "}"])
    if kind == 14:
        return rng.choice(ESCAPES)
    if kind == 15:
        return rng.choice(HUGE)
    if kind == 16:
        nest = rng.choice([10, 63, 64, 65, 100, 1000])
        shape = rng.randrange(5)
        if shape == 0:
            return "(" * nest + sub() + ")" * nest
        if shape == 1:
            return "not " * nest + sub()
        if shape == 2:
            return "-" * nest + sub()
        if shape == 3:
            return "x" + ".y" * nest
        return "lower(" * nest + "s" + ")" * nest
    return rng.choice(SHIPPED) if SHIPPED else atom(rng)


def edited(rng: random.Random, source: str) -> str:
    """A few character edits: what a typo or a paste does to an expression."""
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(source))
        junk = rng.choice(["(", ")", "[", "]", "'", '"', ".", ",", ":", "=", "_", "__", "\\", "\n", "#", "*", "**",
                           "lambda", " if ", "not", "\u00e9", "\x00", "{", "}", "@", "$", "`", "%"])
        source = source[:at] + junk + source[at + rng.choice([0, 0, 1]):]
    return source


def case(seed: int, shard: int, index: int) -> str:
    rng = random.Random(f"{seed}:expr:{shard}:{index}")
    source = expression(rng, rng.choice([1, 2, 3, 4, 6]))
    if rng.random() < 0.15:
        source = edited(rng, source)
    return source


def events(seed: int) -> list[dict[str, object]]:
    """The events every expression runs on: the fields it names, with values of every kind,
    some large (the guards must hold whatever an event holds)."""
    rng = random.Random(f"{seed}:events")
    base: dict[str, object] = {
        "a": 5, "b": 2.5, "n": 3, "s": "abc", "xs": [1, 2, 3], "user": {"name": "ann", "tags": ["x"]},
        "items": [{"q": 1}, {"q": 2}], "none": None, "flag": True, "f": float("nan"), "big": 10 ** 300,
        "text": "%0999999999d", "ts": "2026-11-21T10:00:00Z", "i": 7, "tags": ["red", "green"],
    }
    odd: list[object] = [None, True, 0, -1, 1e308, float("inf"), "", "\u00e9\u202e", [], {}, [[[]]], {"a": {"b": {}}},
                         "x" * 100_000, list(range(100_000)), [{"k": [1] * 10}] * 1000, 10 ** 4000, "%s%d"]
    shuffled = {key: rng.choice(odd) for key in base}
    sparse = {key: value for key, value in base.items() if rng.random() < 0.5}
    return [base, shuffled, sparse, {}]
