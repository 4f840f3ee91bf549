"""Lists and mappings in expressions: `keys`, `values`, `merge`, `get`, `sorted`, `unique`,
`flatten`, `sum_of`, `min_of`, `max_of`.

Every result is at most as large as its inputs, except `flatten`, which is checked against
MAX_SEQUENCE_LENGTH before it builds anything. Equality in `unique` is JSON equality (the
canonical JSON of `engine.stable_hash`): `1` and `1.0` are one value, `1` and `true` two,
and lists and mappings are compared by content.
"""

from typing import Any, Final

from engine.field_paths import PathError, PathKey, parse_path
from engine.functions import MAX_SEQUENCE_LENGTH, ExprLimitError, ExprValueError, type_name
from engine.stable_hash import canonical_text

_MISSING: Final = object()


def _list(value: object, function: str) -> list[Any] | tuple[Any, ...]:
    if isinstance(value, (list, tuple)):
        return value
    raise TypeError(f"{function}() needs a list, not {type_name(value)}")


def _mapping(value: object, function: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise TypeError(f"{function}() needs a mapping, not {type_name(value)}")


def keys(mapping: object) -> list[str]:
    return list(_mapping(mapping, "keys"))


def values(mapping: object) -> list[object]:
    return list(_mapping(mapping, "values").values())


# --- get(o, 'a.b[0]', default) -----------------------------------------------------------


def _path_of(path: object) -> tuple[PathKey, ...]:
    if isinstance(path, str):
        try:
            return parse_path(path)
        except PathError as exc:
            raise ExprValueError(f"get() path is invalid: {exc}") from None
    if isinstance(path, (list, tuple)):
        out: list[PathKey] = []
        for key in path:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"get() path keys must be text or whole numbers, not {type_name(key)}")
            out.append(key)
        return tuple(out)
    raise TypeError(f"get() path must be text such as 'a.b[0]' or a list of keys, not {type_name(path)}")


def get(root: object, path: object, default: object = None) -> object:
    """The value at `path` inside `root`, or `default` when a step is missing (a value that
    is present and None is returned as None)."""
    value = root
    for key in _path_of(path):
        if isinstance(value, dict) and isinstance(key, str):
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return default
        elif isinstance(value, (list, tuple)) and isinstance(key, int):
            if not -len(value) <= key < len(value):
                return default
            value = value[key]
        else:
            return default
    return value


# --- lists --------------------------------------------------------------------------------


def sorted_list(items: object) -> list[object]:
    try:
        return sorted(_list(items, "sorted"))
    except TypeError:
        raise TypeError("sorted() needs values that compare: all numbers, or all text") from None


def _unique_key(item: object) -> tuple[int, str] | str:
    # Text, the common case, is its own key; anything else its canonical JSON, tagged so
    # that the text '1' and the number 1 stay apart.
    return item if isinstance(item, str) else (0, canonical_text(item))


def unique(items: object) -> list[object]:
    """The items without repeats, each where it first appears."""
    seen: set[tuple[int, str] | str] = set()
    out: list[object] = []
    for item in _list(items, "unique"):
        key = _unique_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def flatten(items: object) -> list[object]:
    """One level: the items of each inner list in place of that list; other items as they are."""
    sequence = _list(items, "flatten")
    total = 0
    for item in sequence:
        total += len(item) if isinstance(item, (list, tuple)) else 1
    if total > MAX_SEQUENCE_LENGTH:
        raise ExprLimitError(f"flatten() would give more than {MAX_SEQUENCE_LENGTH:,} items")
    out: list[object] = []
    for item in sequence:
        if isinstance(item, (list, tuple)):
            out.extend(item)
        else:
            out.append(item)
    return out


def _numbers(items: object, function: str) -> list[Any] | tuple[Any, ...]:
    sequence = _list(items, function)
    for item in sequence:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise TypeError(f"{function}() needs a list of numbers, found {type_name(item)}")
    return sequence


def sum_of(items: object) -> object:
    """The sum of a list of numbers; 0 for an empty list."""
    numbers: Any = _numbers(items, "sum_of")
    return sum(numbers)


def min_of(items: object) -> object:
    """The smallest of a list of numbers or of texts; None for an empty list."""
    return _extreme(items, "min_of", False)


def max_of(items: object) -> object:
    return _extreme(items, "max_of", True)


def _extreme(items: object, function: str, largest: bool) -> object:
    sequence: Any = _list(items, function)
    if not sequence:
        return None
    try:
        return max(sequence) if largest else min(sequence)
    except TypeError:
        raise TypeError(f"{function}() needs values that compare: all numbers, or all text") from None


def merge(base: object, *updates: object) -> dict[str, object]:
    """merge(a, b, ...): a new mapping with `base`'s fields, then each update's (later ones
    win); one level, not deep."""
    out = dict(_mapping(base, "merge"))
    for update in updates:
        out.update(_mapping(update, "merge"))
    return out
