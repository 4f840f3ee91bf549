"""Typed `with:` parameters: the readers every node type's `parse` is written with.

A spec's `parse` (engine/spec.py) turns a node's `with:` mapping into the type's frozen
parameter class, once, when the runtime builds the node (and when the loader runs the
spec's checks). Factories read that object and never the mapping.

The readers never raise. The runtime gets plans whose parameters the schema accepted, and
the loader also runs a spec's checks on a file whose schema problems it has just listed:
there, a value of the wrong kind reads as if it were missing, and the schema's problem is
the one the user sees.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

Raw = dict[str, object]
Pairs = tuple[tuple[str, str], ...]  # a mapping of names to texts, in the order written

T = TypeVar("T")

NO_PAIRS: Final[Pairs] = ()


@dataclass(frozen=True)
class NoParams:
    """The parameters of a type that takes none (`null`)."""


NO_PARAMS: Final = NoParams()


def no_params(raw: Raw) -> NoParams:
    return NO_PARAMS


def expect(params: object, kind: type[T]) -> T:
    """`params` as the parameter class a factory or check was written for. Anything else
    is an engine bug (a context built without the spec's `parse`): it fails loudly."""
    if not isinstance(params, kind):
        raise TypeError(f"expected {kind.__name__} parameters, got {type(params).__name__} "
                        "(build them with the node type's spec.parse)")
    return params


def text_of(raw: Raw, key: str, default: str = "") -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else default


def written(raw: Raw, key: str) -> str | None:
    """The value as text when the key is written at all (whatever its kind), else None:
    for checks that care whether a key is there."""
    if key not in raw:
        return None
    value = raw[key]
    return value if isinstance(value, str) else str(value)


def whole_number(value: object) -> int | None:
    """`value` as a whole number, or None when it is not one. JSON Schema counts `7.0` as an
    integer, so a float with no fraction is one too; a boolean is not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def whole(raw: Mapping[str, object], key: str, default: int) -> int:
    value = whole_number(raw.get(key))
    return default if value is None else value


def optional_whole(raw: Raw, key: str) -> int | None:
    return whole_number(raw.get(key))


def number(raw: Raw, key: str, default: float) -> float:
    value = raw.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def flag(raw: Raw, key: str, default: bool = False) -> bool:
    value = raw.get(key)
    return value if isinstance(value, bool) else default


def pairs(raw: Raw, key: str) -> Pairs:
    """A mapping of names to texts (`set:`, `routes:`, `fields:`), in the order written."""
    value = raw.get(key)
    if not isinstance(value, dict):
        return NO_PAIRS
    return tuple((str(k), str(v)) for k, v in value.items())


def texts(raw: Raw, key: str) -> tuple[str, ...]:
    value = raw.get(key)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def names(raw: Raw, key: str) -> tuple[str, ...]:
    """One field name or a list of them (`by:`, `key:`)."""
    value = raw.get(key)
    if isinstance(value, str):
        return (value,)
    return texts(raw, key)


def mapping(raw: Raw, key: str) -> Raw | None:
    value = raw.get(key)
    return value if isinstance(value, dict) else None
