"""Field paths written as text, for `get(o, 'a.b[0]')`: parsed once, checked at load time.

A path is field names separated by `.`, with list indexes (`[0]`, `[-1]`) and quoted keys
(`['odd key']`, `["a.b"]`) in brackets. Nothing here imports the rest of the engine: the
loader's checker (engine.library_checks) and the `get` function both use it.
"""

from typing import Final

PathKey = str | int

_PATH_CACHE: Final[dict[str, tuple[PathKey, ...]]] = {}
_PATH_CACHE_SIZE: Final = 1024  # paths are nearly always literals: a few distinct ones
_QUOTES: Final = "'\""


class PathError(ValueError):
    """A `get()` path that cannot be read; the message names a position, not the text."""


def _index(text: str, start: int) -> tuple[PathKey, int]:
    """The key inside `[...]` starting after the `[` at `start`; returns it and the position
    after the `]`."""
    end = text.find("]", start)
    if end < 0:
        raise PathError(f"'[' at character {start} is not closed")
    inside = text[start:end]
    if len(inside) >= 2 and inside[0] in _QUOTES and inside[-1] == inside[0]:
        return inside[1:-1], end + 1
    digits = inside[1:] if inside.startswith("-") else inside
    if not digits.isdigit() or not digits.isascii():
        raise PathError(f"'[...]' at character {start} needs a whole number or a quoted key")
    return int(inside), end + 1


def parse_path(text: str) -> tuple[PathKey, ...]:
    """`a.b[0]['odd key']` -> ('a', 'b', 0, 'odd key'). Raises PathError."""
    found = _PATH_CACHE.get(text)
    if found is not None:
        return found
    steps: list[PathKey] = []
    at = 0
    while at < len(text):
        if text[at] == "[":
            key, at = _index(text, at + 1)
            steps.append(key)
            continue
        if steps:
            if text[at] != ".":
                raise PathError(f"expected '.' or '[' at character {at + 1}")
            at += 1
        end = at
        while end < len(text) and text[end] not in ".[]":
            end += 1
        if end == at:
            raise PathError(f"expected a field name at character {at + 1}")
        steps.append(text[at:end])
        at = end
    if not steps:
        raise PathError("the path is empty")
    if len(_PATH_CACHE) >= _PATH_CACHE_SIZE:
        _PATH_CACHE.clear()
    result = tuple(steps)
    _PATH_CACHE[text] = result
    return result
