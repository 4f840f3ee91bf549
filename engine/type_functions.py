"""Type tests and conversions in expressions: `type_of`, `is_number`, `is_string`, `to_bool`.

Names are JSON's view of an event's values (what a YAML or JSON user sees), not Python's:
`type_of(1)` is "int", `type_of({'a': 1})` is "object".
"""

from typing import Final

from engine.functions import ExprValueError, type_name

_TYPE_OF: Final[dict[type, str]] = {
    type(None): "null", bool: "bool", int: "int", float: "float", str: "string",
    list: "list", tuple: "list", dict: "object",
}

# Text to_bool accepts, compared without case and surrounding spaces.
TRUE_TEXTS: Final = frozenset({"true", "t", "yes", "y", "on", "1"})
FALSE_TEXTS: Final = frozenset({"false", "f", "no", "n", "off", "0"})


def type_of(value: object) -> str:
    return _TYPE_OF.get(type(value), type(value).__name__)


def is_number(value: object) -> bool:
    """True for an int or a float; a bool is not a number here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_string(value: object) -> bool:
    return isinstance(value, str)


def to_bool(value: object) -> bool:
    """A bool as is; a number is true unless zero; None is false; text by TRUE_TEXTS and
    FALSE_TEXTS; anything else is an error."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_TEXTS:
            return True
        if word in FALSE_TEXTS:
            return False
        raise ExprValueError("to_bool() needs text such as 'true', 'false', 'yes', 'no', '1' or '0'")
    raise TypeError(f"to_bool() needs a bool, number or text, not {type_name(value)}")
