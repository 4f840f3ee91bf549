"""The text functions of expressions: replace, regular expressions, padding, format.

Regular expressions run on RE2 (engine.text_patterns): linear time in the text whatever the
pattern. Every result that can grow past its input (a replacement, padding, a format) is
sized before it is built and refused past MAX_SEQUENCE_LENGTH characters, like `*` and
`join`. Messages name the function, never a value from the event: a pattern read from an
event is as private as the event.
"""

from collections.abc import Callable
from typing import Any, Final

from engine.functions import MAX_SEQUENCE_LENGTH, ExprLimitError, ExprValueError, to_text, type_name
from engine.text_patterns import (
    POSITIONAL,
    TemplateError,
    compile_pattern,
    named_groups,
    parse_format,
    parse_replacement,
)

_TOO_LONG: Final = f"would give more than {MAX_SEQUENCE_LENGTH:,} characters"


def _text(value: object, function: str) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"{function}() needs text, not {type_name(value)}")


def _count(value: object, function: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{function}() {what} must be a whole number, not {type_name(value)}")
    if value < 0:
        raise ExprValueError(f"{function}() {what} must not be negative")
    return value


def _pattern(pattern: object, function: str) -> Any:
    """A compiled pattern. Literal patterns were checked at load time, so a failure here
    comes from a pattern read from the event: RE2's reason would quote it, so it is left out."""
    try:
        return compile_pattern(_text(pattern, function))
    except TemplateError:
        raise ExprValueError(f"{function}() pattern is not a valid RE2 regular expression") from None


def replace(text: object, old: object, new: object) -> str:
    """Every occurrence of `old` replaced by `new`."""
    value, before, after = _text(text, "replace"), _text(old, "replace"), _text(new, "replace")
    if not before:
        raise ExprValueError("replace() text to replace is empty")
    growth = len(after) - len(before)
    if growth > 0 and len(value) + value.count(before) * growth > MAX_SEQUENCE_LENGTH:
        raise ExprLimitError(f"replace() {_TOO_LONG}")
    return value.replace(before, after)


def title(text: object) -> str:
    """Each whitespace-separated word with its first character upper case and the rest
    lower case; the whitespace is kept. (Python's str.title also starts a word after `'`,
    giving "They'Re".)"""
    value = _text(text, "title")
    out: list[str] = []
    start = 0  # where the current run (of spaces, or of a word) began
    for index, char in enumerate(value):
        if char.isspace() != value[start].isspace():
            out.append(_capitalized(value[start:index]))
            start = index
    out.append(_capitalized(value[start:]))
    return "".join(out)


def _capitalized(run: str) -> str:
    # A whole word at once: lower-casing per character would miss the final sigma (ς).
    return run if not run or run[0].isspace() else run.capitalize()


def _padding(text: object, width: object, fill: object, function: str) -> tuple[str, int, str]:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = to_text(text)  # pad_left(id, 8, '0') is the common case
    else:
        value = _text(text, function)
    size = _count(width, function, "width")
    if size > MAX_SEQUENCE_LENGTH:
        raise ExprLimitError(f"{function}() {_TOO_LONG}")
    pad = _text(fill, function)
    if len(pad) != 1:
        raise ExprValueError(f"{function}() fill must be exactly one character")
    return value, size, pad


def pad_left(text: object, width: object, fill: object = " ") -> str:
    value, size, pad = _padding(text, width, fill, "pad_left")
    return value.rjust(size, pad)


def pad_right(text: object, width: object, fill: object = " ") -> str:
    value, size, pad = _padding(text, width, fill, "pad_right")
    return value.ljust(size, pad)


def truncate(text: object, length: object) -> str:
    """The first `length` characters."""
    return _text(text, "truncate")[:_count(length, "truncate", "length")]


def format_text(template: object, *values: object) -> str:
    """`{}` placeholders take the arguments in order; `{name}` placeholders take the item
    `name` of the one mapping argument. Values are written as str() writes them."""
    try:
        parts = parse_format(_text(template, "format"))
    except TemplateError as exc:
        raise ExprValueError(str(exc)) from None
    placeholders = parts[1::2]
    named = bool(placeholders) and placeholders[0] != POSITIONAL
    if named:
        if len(values) != 1 or not isinstance(values[0], dict):
            raise TypeError("format() with {name} placeholders needs one mapping argument after the template")
        mapping: dict[Any, object] = values[0]
        filled: list[str] = []
        for name in placeholders:
            if name not in mapping:
                raise ExprValueError("format() mapping has no item for one of the template's {name} placeholders")
            filled.append(_written(mapping[name]))
    else:
        if len(values) != len(placeholders):
            raise ExprValueError(f"format() template has {len(placeholders)} {{}} placeholders "
                                 f"but {len(values)} values follow it")
        filled = [_written(value) for value in values]
    total = sum(len(part) for part in parts[0::2]) + sum(len(part) for part in filled)
    if total > MAX_SEQUENCE_LENGTH:
        raise ExprLimitError(f"format() {_TOO_LONG}")
    out: list[str] = [parts[0]]
    for index, value in enumerate(filled):
        out.append(value)
        out.append(parts[2 * index + 2])
    return "".join(out)


def _written(value: object) -> str:
    return value if isinstance(value, str) else to_text(value)


# --- regular expressions --------------------------------------------------------------------


_SURROGATE: Final = "() text holds a lone surrogate (\\ud800-\\udfff), which RE2 cannot match"


def _search(compiled: Any, text: str, function: str) -> Any:
    """The first match, or None. RE2 matches UTF-8, which a lone surrogate (from a `\\ud800`
    escape in JSON input) has no form in."""
    try:
        return compiled.search(text)
    except UnicodeEncodeError:
        raise ExprValueError(function + _SURROGATE) from None


def regex_match(text: object, pattern: object) -> bool:
    """Whether the pattern matches anywhere in the text (anchor it with ^ and $)."""
    compiled = _pattern(pattern, "regex_match")
    return _search(compiled, _text(text, "regex_match"), "regex_match") is not None


def _groups_of(compiled: Any, function: str) -> list[str]:
    names = named_groups(compiled)
    if not names:
        raise ExprValueError(f"{function}() pattern has no named groups; name them, e.g. (?P<status>\\d+)")
    return names


def regex_extract(text: object, pattern: object) -> dict[str, object] | None:
    """The named groups of the first match as a mapping (a group that took no part in the
    match is None), or None when nothing matches. Unnamed groups only group."""
    compiled = _pattern(pattern, "regex_extract")
    names = _groups_of(compiled, "regex_extract")
    found = _search(compiled, _text(text, "regex_extract"), "regex_extract")
    if found is None:
        return None
    return {name: found.group(name) for name in names}


def regex_extract_all(text: object, pattern: object) -> list[object]:
    """Every match, left to right without overlaps: the matched texts, or, when the pattern
    has named groups, a mapping of them per match."""
    compiled = _pattern(pattern, "regex_extract_all")
    names = named_groups(compiled)
    # Each match counts one, plus its characters, plus two per group of a mapping (a
    # comprehension counts a result the same way): an empty pattern with named groups
    # matches at every position of a long line, and a mapping per match weighs far more
    # than the character it came from.
    per_match = 1 + 2 * len(names)
    size = 0
    out: list[object] = []
    value = _text(text, "regex_extract_all")
    try:
        for found in compiled.finditer(value):
            size += per_match + found.end() - found.start()
            if size > MAX_SEQUENCE_LENGTH:
                raise ExprLimitError(f"regex_extract_all() would give more than {MAX_SEQUENCE_LENGTH:,} items")
            if names:
                out.append({name: found.group(name) for name in names})
            else:
                out.append(found.group(0))
    except UnicodeEncodeError:  # see _search
        raise ExprValueError("regex_extract_all" + _SURROGATE) from None
    return out


def regex_replace(text: object, pattern: object, replacement: object) -> str:
    """Every match replaced; `\\1` or `\\g<name>` in the replacement is that group's text
    (`\\0` the whole match), `\\\\` a backslash."""
    compiled = _pattern(pattern, "regex_replace")
    value = _text(text, "regex_replace")
    try:
        texts, groups = parse_replacement(_text(replacement, "regex_replace"))
    except TemplateError as exc:
        raise ExprValueError(f"regex_replace() {exc}") from None
    count: int = compiled.groups
    names: dict[str, int] = compiled.groupindex
    for group in groups:
        if (isinstance(group, int) and group > count) or (isinstance(group, str) and group not in names):
            raise ExprValueError("regex_replace() replacement refers to a group the pattern does not have")
    out: list[str] = []
    size = 0
    end = 0
    try:
        for found in compiled.finditer(value):
            start = found.start()
            pieces = [value[end:start], texts[0]]
            for index, group in enumerate(groups):
                pieces.append(found.group(group) or "")
                pieces.append(texts[index + 1])
            size += sum(len(piece) for piece in pieces)
            if size > MAX_SEQUENCE_LENGTH:
                raise ExprLimitError(f"regex_replace() {_TOO_LONG}")
            out.extend(pieces)
            end = found.end()
    except UnicodeEncodeError:  # see _search
        raise ExprValueError("regex_replace" + _SURROGATE) from None
    out.append(value[end:])
    return "".join(out)


def text_functions() -> dict[str, Callable[..., object]]:
    return {
        "replace": replace, "title": title, "pad_left": pad_left, "pad_right": pad_right,
        "truncate": truncate, "format": format_text,
        "regex_match": regex_match, "regex_extract": regex_extract,
        "regex_extract_all": regex_extract_all, "regex_replace": regex_replace,
    }
