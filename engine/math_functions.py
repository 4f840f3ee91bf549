"""The math functions of expressions: what OpenCL kernels offer, on every backend.

`sqrt`, `log`, `pow` and friends give the same answers in a `map` as in an `opencl.map`.
A result that is not a finite number (the square root of a negative, the log of zero, an
overflow) is an error for the event, which is also how the segment kernels treat it.
"""

import math
from collections.abc import Callable
from typing import Any, Final

from engine.functions import ExprValueError, type_name

_MATH_ONE: Final[dict[str, Callable[[float], float]]] = {
    "sqrt": math.sqrt, "exp": math.exp, "log": math.log, "log2": math.log2, "log10": math.log10,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
    "atan": math.atan, "tanh": math.tanh,
}


def _real(value: object, function: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{function}() needs a number, not {type_name(value)}")
    return float(value)


class _MathOne:
    """sqrt(x), log(x), ...: a number in, a float out; undefined results are errors, as the
    segment kernels treat a result that is not a finite number."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fn = _MATH_ONE[name]

    def __call__(self, value: object) -> float:
        x = _real(value, self.name)
        try:
            result = self.fn(x)
        except ValueError:
            raise ExprValueError(f"{self.name}() is undefined for this value (math domain error)") from None
        if not math.isfinite(result):
            raise ExprValueError(f"{self.name}() result is not a finite number")
        return result


def power_function(base: object, exponent: object) -> float:
    """pow(a, b): always a float, like the kernels' pow."""
    a, b = _real(base, "pow"), _real(exponent, "pow")
    try:
        result = math.pow(a, b)
    except ValueError:
        raise ExprValueError("pow() is undefined for these values (math domain error)") from None
    if not math.isfinite(result):
        raise ExprValueError("pow() result is not a finite number")
    return result


def floor_number(value: object) -> object:
    number = _number(value, "floor")
    return number if isinstance(number, int) else math.floor(number)


def ceil_number(value: object) -> object:
    number = _number(value, "ceil")
    return number if isinstance(number, int) else math.ceil(number)


def _number(value: object, function: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{function}() needs a number, not {type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprValueError(f"{function}() needs a finite number")
    return value


def clamp(value: object, low: object, high: object) -> Any:
    """clamp(x, lo, hi): min(max(x, lo), hi), as the kernels compute it."""
    x, lo, hi = _number(value, "clamp"), _number(low, "clamp"), _number(high, "clamp")
    return min(max(x, lo), hi)


def arc_tangent2(y: object, x: object) -> float:
    return math.atan2(_real(y, "atan2"), _real(x, "atan2"))


def hypotenuse(x: object, y: object) -> float:
    result = math.hypot(_real(x, "hypot"), _real(y, "hypot"))
    if not math.isfinite(result):
        raise ExprValueError("hypot() result is not a finite number")
    return result


def math_functions() -> dict[str, Callable[..., object]]:
    out: dict[str, Callable[..., object]] = {name: _MathOne(name) for name in _MATH_ONE}
    out.update({"pow": power_function, "floor": floor_number, "ceil": ceil_number, "clamp": clamp,
                "atan2": arc_tangent2, "hypot": hypotenuse})
    return out
