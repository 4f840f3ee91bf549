"""The functions expressions may call, and the guards behind `**`, `*`, `%` and lookups.

Everything here is plain typed Python. The expression compiler binds these functions into
the globals of every compiled expression, so a call in an expression is one ordinary call
at run time. Messages never contain event values: they end up in logs and dead-letter
records, and payloads may be private. Field names are fine: they come from the graph.
"""

import math
import operator
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from engine.node import Clock

# Resource guards: one expression must not be able to exhaust memory or CPU.
MAX_EXPONENT: Final = 10_000
MAX_INT_DIGITS: Final = 10_000
MAX_SEQUENCE_LENGTH: Final = 10_000_000
# An integer has at most this many bits when it has at most MAX_INT_DIGITS digits.
_MAX_INT_BITS: Final = math.ceil(MAX_INT_DIGITS * math.log2(10))

_SEQUENCES: Final = (str, list, tuple)
_FLAT: Final = frozenset({int, float, bool, type(None)})  # values that hold nothing
_UTC: Final = UTC


class ExprLimitError(ValueError):
    """An expression asked for a result too large to compute safely."""


class ExprValueError(ValueError):
    """A function got a value it cannot use; the message is safe to show (no payload)."""


# The user's words for the types of event values (YAML users think in text and numbers).
_TYPE_NAMES: Final[dict[type, str]] = {
    type(None): "None", bool: "bool", int: "number", float: "number", str: "text",
    list: "list", tuple: "list", dict: "mapping",
}


def type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _text(value: object, function: str) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"{function}() needs text, not {type_name(value)}")


# --- guarded operators -------------------------------------------------------------------


def power(base: object, exponent: object) -> object:
    """`base ** exponent`, refusing integer results too large to compute.

    The check uses the exponent and a logarithm of the base, so a refusal costs nothing;
    float powers cannot grow (they overflow to an error), so only integers are checked.
    """
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent > MAX_EXPONENT:
            raise ExprLimitError(f"** with an exponent above {MAX_EXPONENT:,} is refused (result too large)")
        if exponent * math.log10(abs(base)) > MAX_INT_DIGITS:
            raise ExprLimitError(f"** result would have more than {MAX_INT_DIGITS:,} digits")
    result = operator.pow(base, exponent)
    if isinstance(result, complex):
        # Python answers (-8) ** 0.5 with a complex number, which no event can carry.
        raise ExprValueError("** of a negative number to a fractional power has no real result")
    return result


def weight(value: object, budget: int) -> int:
    """Items and characters in `value`, nested ones included, counted until past `budget`."""
    total = 0
    stack: list[object] = [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, (str, list, tuple, dict)):
            total += len(item)
        if total > budget:
            break
        if isinstance(item, dict):
            stack.extend(item.items())
        elif isinstance(item, (list, tuple)) and not _FLAT.issuperset(set(map(type, item))):
            stack.extend(part for part in item if type(part) not in _FLAT)  # (a list of numbers: one C pass)
    return total


def _check_repeat(sequence: Any, count: int) -> None:
    """Nested items count: `[[0] * 10**7] * 10**7` holds 10**14, which no comparison ends."""
    nested = count > 1 and not isinstance(sequence, str)
    if count > 0 and (len(sequence) * count > MAX_SEQUENCE_LENGTH or (
            nested and weight(sequence, MAX_SEQUENCE_LENGTH // count) * count > MAX_SEQUENCE_LENGTH)):
        raise ExprLimitError(f"repeating with * would give more than {MAX_SEQUENCE_LENGTH:,} items")


def multiply(left: object, right: object) -> object:
    """`left * right`, refusing huge repetitions (`'a' * 10**9`) and huge integers.

    Only an integer can repeat a sequence, so the common float case costs one check.
    """
    if isinstance(left, int):
        if isinstance(right, int):
            if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise ExprLimitError(f"* result would have more than {MAX_INT_DIGITS:,} digits")
        elif isinstance(right, _SEQUENCES):
            _check_repeat(right, left)
    elif isinstance(right, int) and isinstance(left, _SEQUENCES):
        _check_repeat(left, right)
    return operator.mul(left, right)


def modulo(left: object, right: object) -> object:
    """`left % right` for numbers only.

    On text, Python's `%` is printf-style formatting, and a field holding
    `'%0999999999d'` would make `id % 10` allocate a gigabyte; the language has no
    string formatting, so text is refused.
    """
    if isinstance(left, str):
        raise TypeError("% needs numbers, not text (to build text use str(x) and +)")
    return operator.mod(left, right)


def item(container: Any, key: object) -> object:
    """`container[key]` for a key computed from the event.

    Python's KeyError would carry the key, which here is a payload value.
    """
    try:
        return container[key]
    except KeyError:
        raise KeyError() from None


# --- field paths for exists() and coalesce() ------------------------------------------------

_MISSING: Final = object()


def _walk(root: object, keys: tuple[object, ...]) -> object:
    value = root
    for key in keys:
        try:
            if isinstance(value, dict):
                value = value.get(key, _MISSING)
                if value is _MISSING:
                    return _MISSING
            elif isinstance(value, _SEQUENCES):
                sequence: Any = value  # the key's type is checked by Python, per event
                value = sequence[key]
            else:
                return _MISSING  # None, a number: nothing to walk into
        except (IndexError, TypeError):  # index out of range, key of the wrong type
            return _MISSING
    return value


def path_exists(root: object, keys: tuple[object, ...]) -> bool:
    """`exists(a.b[0])`: the path is present, even if its value is None."""
    return _walk(root, keys) is not _MISSING


def path_or_none(root: object, keys: tuple[object, ...]) -> object:
    """A field path as a `coalesce` argument: missing reads as None instead of failing."""
    value = _walk(root, keys)
    return None if value is _MISSING else value


# --- numeric ------------------------------------------------------------------------------


def to_int(value: object) -> int:
    convertible: Any = value  # Any: see round_number; a big int must not pass through a float
    if isinstance(value, (str, int, float)):
        try:
            return int(convertible)
        except ValueError:
            # Python's message repeats the text, which is a payload value.
            raise ExprValueError("int() needs a whole number, e.g. int('42')") from None
    raise TypeError(f"int() needs a number or text, not {type_name(value)}")


def to_float(value: object) -> float:
    if isinstance(value, (str, int, float)):
        try:
            return float(value)
        except ValueError:
            raise ExprValueError("float() needs a number, e.g. float('2.5')") from None
    raise TypeError(f"float() needs a number or text, not {type_name(value)}")


def round_number(value: object, digits: object = None) -> object:
    # Any, not `int | float`: mypyc would store such a union as a float and turn ints into floats.
    number: Any = value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"round() needs a number, not {type_name(value)}")
    if digits is None:
        return round(number)
    if not isinstance(digits, int):
        raise TypeError(f"round() digits must be a whole number, not {type_name(digits)}")
    if isinstance(value, int) and digits < 0 and -digits > value.bit_length():
        # The answer is 0, but CPython would first compute 10 ** -digits.
        return 0
    return round(number, digits)


def minimum(*values: Any) -> Any:
    """min(a, b, ...), or min(list) with one argument, like Python."""
    try:
        return min(values[0]) if len(values) == 1 else min(values)
    except ValueError:
        raise ExprValueError("min() of an empty list") from None


def maximum(*values: Any) -> Any:
    try:
        return max(values[0]) if len(values) == 1 else max(values)
    except ValueError:
        raise ExprValueError("max() of an empty list") from None


# --- text ---------------------------------------------------------------------------------


def to_text(value: object) -> str:
    try:
        return str(value)
    except ValueError:
        # Python refuses to print integers of more than ~4,300 digits.
        raise ExprLimitError("number too large to convert to text") from None


def lower(text: object) -> str:
    return _text(text, "lower").lower()


def upper(text: object) -> str:
    return _text(text, "upper").upper()


def strip(text: object, chars: object = None) -> str:
    if chars is None:
        return _text(text, "strip").strip()
    return _text(text, "strip").strip(_text(chars, "strip"))


def _affix(value: object, function: str) -> str | tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(_text(part, function) for part in value)
    return _text(value, function)


def startswith(text: object, prefix: object) -> bool:
    return _text(text, "startswith").startswith(_affix(prefix, "startswith"))


def endswith(text: object, suffix: object) -> bool:
    return _text(text, "endswith").endswith(_affix(suffix, "endswith"))


def contains(container: Any, part: object) -> bool:
    """`part in container`, for text, lists and mappings (keys)."""
    return part in container


def split(text: object, separator: object = None, limit: object = -1) -> list[str]:
    value = _text(text, "split")
    if separator is not None and not isinstance(separator, str):
        raise TypeError(f"split() separator must be text, not {type_name(separator)}")
    if not isinstance(limit, int):
        raise TypeError(f"split() max must be a whole number, not {type_name(limit)}")
    if separator == "":
        raise ExprValueError("split() separator is empty")
    return value.split(separator, limit)


def join(items: object, separator: object = "") -> str:
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"join() needs a list, not {type_name(items)}")
    glue = _text(separator, "join")
    if len(glue) * (len(items) - 1) > MAX_SEQUENCE_LENGTH:  # the separator repeated, like `*`
        raise ExprLimitError(f"join() would repeat its separator into more than {MAX_SEQUENCE_LENGTH:,} characters")
    return glue.join([part if isinstance(part, str) else to_text(part) for part in items])


# --- time ---------------------------------------------------------------------------------


def parse_time(text: object, pattern: object = None) -> float:
    """Epoch seconds from ISO 8601 text (or text in `pattern`); times without a zone are UTC."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)  # already epoch seconds
    value = _text(text, "parse_time").strip()
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(f"parse_time() format must be text, not {type_name(pattern)}")
    try:
        if pattern is None:
            if value.endswith(("Z", "z")):
                value = value[:-1] + "+00:00"
            moment = datetime.fromisoformat(value)
        else:
            moment = datetime.strptime(value, pattern)
    except (ValueError, re.error):  # re.error: a format naming one field twice (`%d%d`)
        if pattern is None:
            raise ExprValueError("parse_time() needs ISO 8601 text, e.g. 2026-11-21T10:00:00Z") from None
        raise ExprValueError("parse_time() text does not match the format") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    return moment.timestamp()


def format_time(moment: object, pattern: object = None) -> str:
    """Text for a time in epoch seconds (or ISO text): ISO 8601 in UTC, or `pattern` in UTC."""
    seconds: Any = parse_time(moment) if isinstance(moment, str) else moment
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"format_time() needs epoch seconds or ISO text, not {type_name(seconds)}")
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(f"format_time() format must be text, not {type_name(pattern)}")
    try:
        utc = datetime.fromtimestamp(seconds, _UTC)
    except (OverflowError, OSError, ValueError):
        raise ExprValueError("format_time() time is out of range") from None
    if pattern is None:
        return utc.replace(tzinfo=None).isoformat() + "Z"
    try:
        return utc.strftime(pattern)
    except ValueError:
        raise ExprValueError("format_time() format is invalid") from None


# --- null handling ------------------------------------------------------------------------


def coalesce(*values: object) -> object:
    """The first argument that is not None (missing field paths arrive as None)."""
    for value in values:
        if value is not None:
            return value
    return None


def is_present(value: object) -> bool:
    """exists() of something that is not a field path: the value is not None."""
    return value is not None


def runtime_functions(rng: random.Random, clock: Clock) -> dict[str, Callable[..., object]]:
    """Expression function name -> implementation; `now` and `rand` are bound to the node's
    clock and random generator (a seeded node is reproducible)."""
    # Imported here: these modules build on this one (its errors and guards).
    from engine.agent_functions import agent_functions
    from engine.encoding_functions import encoding_functions
    from engine.text_functions import text_functions

    table: dict[str, Callable[..., object]] = {**text_functions(), **encoding_functions(), **agent_functions()}
    return table | {
        "int": to_int, "float": to_float, "round": round_number, "abs": abs,
        "min": minimum, "max": maximum,
        "str": to_text, "lower": lower, "upper": upper, "strip": strip,
        "startswith": startswith, "endswith": endswith, "contains": contains,
        "split": split, "join": join, "len": len,
        "now": clock.now, "rand": rng.random, "parse_time": parse_time, "format_time": format_time,
        "coalesce": coalesce, "exists": is_present,
    }


# --- describing failures ------------------------------------------------------------------


def describe_error(exc: BaseException) -> str:
    """One line for a failed evaluation, without any payload value."""
    if isinstance(exc, (ExprLimitError, ExprValueError)):
        return str(exc)
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else None
        # Inline lookups carry the field name from the expression; computed keys carry none.
        return f"missing field '{key}'" if isinstance(key, str) else "missing key"
    if isinstance(exc, IndexError):
        return "index out of range"
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, OverflowError):
        return "number out of range"
    if isinstance(exc, TypeError):
        # Python's type errors name types, never values.
        message = str(exc).splitlines()[0] if str(exc) else "wrong type"
        return message[:200]
    if isinstance(exc, ValueError):
        text = str(exc)
        if text.startswith(("invalid literal for int()", "could not convert string to float")):
            return "invalid number"
        return "invalid value"
    if isinstance(exc, RecursionError):
        return "value nested too deeply"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"unexpected error ({type(exc).__name__})"
