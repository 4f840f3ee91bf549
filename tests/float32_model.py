"""What docs/gpu.md promises for float32 segments, as a model the tests check results against.

A float32 segment rounds every operation's result to float32, within the error bounds below
(in ulps, units in the last place of the result); a plain `map` computes the same expression
in float64. An expression here is a tree of tuples, rendered to the expression language by
`render`; `evaluate` carries, for every value, an interval that holds both the float64 result
and every float32 result those bounds allow, so a segment's output outside it breaks the
promise. Where the interval cannot tell the two apart (a filter or an `if` on a value that
could round either way, an overflow of float32 only, an integer past int32) the event is
`Uncertain` and left out; where both must fail the event it `Fails`.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# docs/gpu.md: + - * and // % are correctly rounded (half an ulp); the rest within OpenCL's
# limits for its full profile, which NumPy's float32 functions stay within.
ULPS: dict[str, float] = {"+": 0.5, "-": 0.5, "*": 0.5, "%": 0.5, "/": 3, "sqrt": 3, "exp": 4, "log": 4, "log2": 4,
                          "log10": 4, "sin": 4, "cos": 4, "atan": 5, "tanh": 5, "pow": 16}
FLOAT32_MAX = float(np.finfo(np.float32).max)
TINY = 2.0 ** -126  # the smallest normal float32
INT32_LIMIT = 2 ** 31 - 1

Expr = tuple  # ("col", name) ("num", text) ("bin", op, x, y) ("fn", name, x) ("pow", x, e)
#               ("if", x, y, cond) ("clamp", x, hi) ("max", x, y)
Cond = tuple  # ("cmp", x, op, y) ("bool", op, c, d) ("not", c)


class Uncertain(Exception):
    """float64 and an allowed float32 result could differ in kind for this event."""


class Fails(Exception):
    """The event fails on every backend (division by zero, a math domain error)."""


@dataclass(frozen=True)
class V:
    lo: float
    hi: float
    exact: bool  # lo == hi, and float64 and float32 both compute exactly this
    integer: bool = False  # may be an int32 column in the segment (wraps past its range)

    def holds(self, value: object) -> bool:
        return isinstance(value, (int, float)) and self.lo <= value <= self.hi


def is_float32(x: float | Fraction) -> bool:
    return bool(Fraction(float(np.float32(float(x)))) == Fraction(x))


def value_of(x: float | int, integer: bool) -> V:
    """An event field or a literal: float32 rounds it on the way in."""
    if is_float32(x):
        return V(float(x), float(x), True, integer)
    rounded = float(np.float32(x))
    return V(min(x, rounded), max(x, rounded), False, integer)


def rounded(lo: float, hi: float, ulps: float, integer: bool = False) -> V:
    """The exact results lie in [lo, hi]; widen by the float32 rounding allowed (and a float64 ulp)."""
    slack = (ulps * 2.0 ** -23 + 2.0 ** -50) * max(abs(lo), abs(hi)) + max(ulps, 1) * 2.0 ** -149  # -149: subnormal ulp
    lo, hi = lo - slack, hi + slack
    if 0 < lo < TINY:  # a device may flush a float32 below TINY to zero
        lo = 0.0
    if -TINY < hi < 0:
        hi = 0.0
    return checked(V(lo, hi, False, integer))


def checked(v: V) -> V:
    if max(abs(v.lo), abs(v.hi)) > FLOAT32_MAX or (v.integer and max(abs(v.lo), abs(v.hi)) >= INT32_LIMIT):
        raise Uncertain("beyond float32 or int32")
    return v


def exact_or_rounded(result: Fraction, ulps: float, integer: bool) -> V:
    if is_float32(result):
        return checked(V(float(result), float(result), True, integer))
    return rounded(float(result), float(result), ulps, integer)


def corners(fn, x: V, y: V) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    values = [fn(a, b) for a in (x.lo, x.hi) for b in (y.lo, y.hi)]
    return min(values), max(values)


def nonzero(y: V) -> None:
    if y.exact and y.lo == 0:
        raise Fails("division by zero")
    if y.lo <= 0 <= y.hi:
        raise Uncertain("a divisor near zero")


def binary(op: str, x: V, y: V) -> V:
    integer = x.integer and y.integer
    if op in "+-*":
        fn = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}[op]
        if x.exact and y.exact:
            return exact_or_rounded(fn(Fraction(x.lo), Fraction(y.lo)), ULPS[op], integer)
        return rounded(*corners(fn, x, y), ULPS[op], integer)
    nonzero(y)
    if op == "/":
        return rounded(*corners(lambda a, b: a / b, x, y), ULPS["/"])
    if x.exact and y.exact:
        q = math.floor(Fraction(x.lo) / Fraction(y.lo))
        return exact_or_rounded(Fraction(q) if op == "//" else Fraction(x.lo) - q * Fraction(y.lo), ULPS["%"], integer)
    q_lo, q_hi = corners(lambda a, b: a / b, x, y)
    k_lo, k_hi = math.floor(q_lo - abs(q_lo) * 2.0 ** -50), math.floor(q_hi + abs(q_hi) * 2.0 ** -50)
    if op == "//":
        return checked(V(min(k_lo, k_hi), max(k_lo, k_hi), False, integer))
    if k_lo != k_hi:
        raise Uncertain("x % y near a multiple of y")
    return rounded(*corners(lambda a, b: a - k_lo * b, x, y), 1, integer)


def monotone(fn, x: V, ulps: float) -> V:  # type: ignore[no-untyped-def]
    try:
        a, b = fn(x.lo), fn(x.hi)
    except OverflowError:
        raise Uncertain("beyond float64") from None
    return rounded(min(a, b), max(a, b), ulps)


def function(name: str, x: V) -> V:
    if name in ("floor", "ceil", "round"):
        fn = {"floor": math.floor, "ceil": math.ceil, "round": round}[name]
        return V(fn(x.lo), fn(x.hi), x.exact, x.integer)
    if name == "abs":
        lo, hi = (x.lo, x.hi) if x.lo >= 0 else (-x.hi, -x.lo) if x.hi <= 0 else (0.0, max(-x.lo, x.hi))
        return checked(V(lo, hi, x.exact, x.integer))
    if name in ("sqrt", "log", "log2", "log10"):
        if x.hi < 0 or (name != "sqrt" and x.hi <= 0):
            raise Fails(f"{name} outside its domain")
        if x.lo < 0 or (name != "sqrt" and x.lo <= 0):
            raise Uncertain(f"{name} at its domain's edge")
        return monotone(getattr(math, name), x, ULPS[name])
    if name in ("sin", "cos"):
        if x.hi - x.lo >= 2 * math.pi:
            return rounded(-1.0, 1.0, 0)
        fn = getattr(math, name)
        values = [fn(x.lo), fn(x.hi)]
        first = math.pi / 2 if name == "sin" else 0.0  # extremes at first + k*pi
        k = math.ceil((x.lo - first) / math.pi)
        while first + k * math.pi <= x.hi:
            values.append(fn(first + k * math.pi))
            k += 1
        return rounded(min(values), max(values), ULPS[name])
    return monotone(getattr(math, name), x, ULPS[name])  # exp, atan, tanh


def power(x: V, e: V) -> V:
    def pw(a: float, b: float) -> float:
        try:
            return math.pow(a, b)
        except OverflowError:
            raise Uncertain("beyond float64") from None
        except (ValueError, ZeroDivisionError):
            raise Fails("pow domain") from None

    if x.lo > 0:
        return rounded(*corners(pw, x, e), ULPS["pow"])
    if not e.exact:
        raise Uncertain("pow of a non-positive base")
    if x.exact:
        return rounded(pw(x.lo, e.lo), pw(x.lo, e.lo), ULPS["pow"])
    if e.lo != int(e.lo):
        if x.hi < 0:
            raise Fails("pow of a negative")
        raise Uncertain("pow near zero")
    if e.lo < 0 and x.lo <= 0 <= x.hi:
        raise Uncertain("pow(0, negative)")
    values = [pw(x.lo, e.lo), pw(x.hi, e.lo)] + ([0.0] if x.lo < 0 < x.hi else [])
    return rounded(min(values), max(values), ULPS["pow"])


def evaluate(expr: Expr, event: dict[str, V]) -> V:
    kind = expr[0]
    if kind == "col":
        return event[expr[1]]
    if kind == "num":
        number = int(expr[1]) if expr[1].lstrip("-").isdigit() else float(expr[1])
        return value_of(number, isinstance(number, int))
    if kind == "bin":
        return binary(expr[1], evaluate(expr[2], event), evaluate(expr[3], event))
    if kind == "fn":
        return function(expr[1], evaluate(expr[2], event))
    if kind == "pow":
        return power(evaluate(expr[1], event), evaluate(expr[2], event))
    if kind == "if":
        return evaluate(expr[1] if decide(expr[3], event) else expr[2], event)
    if kind == "max":
        x, y = evaluate(expr[1], event), evaluate(expr[2], event)
        return V(max(x.lo, y.lo), max(x.hi, y.hi), x.exact and y.exact, x.integer and y.integer)
    assert kind == "clamp"
    x, hi = evaluate(expr[1], event), evaluate(expr[2], event)
    low = value_of(-10, True)
    return V(min(max(x.lo, low.lo), hi.lo), min(max(x.hi, low.hi), hi.hi), x.exact and hi.exact,
             x.integer and hi.integer)


def decide(cond: Cond, event: dict[str, V]) -> bool:
    kind = cond[0]
    if kind == "not":
        return not decide(cond[1], event)
    if kind == "bool":
        first = decide(cond[2], event)
        if first == (cond[1] == "or"):
            return first
        return decide(cond[3], event)
    x, op, y = evaluate(cond[1], event), cond[2], evaluate(cond[3], event)
    if x.exact and y.exact:
        return bool({"<": x.lo < y.lo, "<=": x.lo <= y.lo, ">": x.lo > y.lo, ">=": x.lo >= y.lo,
                     "==": x.lo == y.lo, "!=": x.lo != y.lo}[op])
    if op in ("<", "<=") and (x.hi < y.lo or x.lo > y.hi):
        return x.hi < y.lo
    if op in (">", ">=") and (x.lo > y.hi or x.hi < y.lo):
        return x.lo > y.hi
    if op in ("==", "!=") and (x.hi < y.lo or x.lo > y.hi):
        return op == "!="
    raise Uncertain("a comparison that rounding could flip")


def render(expr: Expr) -> str:
    kind = expr[0]
    if kind in ("col", "num"):
        return str(expr[1])
    if kind == "bin":
        return f"({render(expr[2])} {expr[1]} {render(expr[3])})"
    if kind == "fn":
        return f"{expr[1]}({render(expr[2])})"
    if kind == "pow":
        return f"pow({render(expr[1])}, {render(expr[2])})"
    if kind == "if":
        return f"({render(expr[1])} if {render_cond(expr[3])} else {render(expr[2])})"
    if kind == "max":
        return f"max({render(expr[1])}, {render(expr[2])})"
    return f"clamp({render(expr[1])}, -10, {render(expr[2])})"


def render_cond(cond: Cond) -> str:
    if cond[0] == "not":
        return f"not ({render_cond(cond[1])})"
    if cond[0] == "bool":
        return f"({render_cond(cond[2])} {cond[1]} {render_cond(cond[3])})"
    return f"{render(cond[1])} {cond[2]} {render(cond[3])}"


def expected(steps: list[tuple[str, object]], event: dict[str, V]) -> dict[str, V] | None:
    """The event out of a chain of ("map", {field: expr}) and ("filter", cond) steps, or None
    when a filter drops it; raises Fails or Uncertain."""
    for kind, arg in steps:
        if kind == "filter":
            assert isinstance(arg, tuple)
            if not decide(arg, event):
                return None
        else:
            assert isinstance(arg, dict)
            event = {**event, **{name: evaluate(e, event) for name, e in arg.items()}}
    return event
