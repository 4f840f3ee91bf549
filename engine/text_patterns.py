"""Regular expressions and templates that expressions take as text, compiled once.

Patterns run on RE2 (the `google-re2` package), whose matching time is linear in the input
whatever the pattern: a user's `(a+)+$` cannot backtrack for hours on a crafted log line.
RE2 has no backreferences and no lookaround; such a pattern is refused with a message that
says so. Compiled patterns, replacement templates and `format()` templates are kept in
small bounded caches: a pattern written in the expression is compiled on its first use and
found again on every later event; one read from events cannot grow memory without bound.

Nothing here imports the rest of the engine: the loader's checker (engine.literal_checks)
calls these parsers at load time, and the expression functions call them per event.
"""

from typing import Any, Final

import re2

MAX_PATTERN_LENGTH: Final = 4096  # the longest expression there is, so any literal fits
_CACHE_SIZE: Final = 128

# A parsed replacement: the texts between group references, and the references.
Replacement = tuple[tuple[str, ...], tuple[str | int, ...]]


class TemplateError(ValueError):
    """A pattern or template that cannot be used; the message quotes no payload."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    return options


_OPTIONS: Final = _options()
_PATTERNS: Final[dict[str, Any]] = {}
_REPLACEMENTS: Final[dict[str, Replacement]] = {}
_FORMATS: Final[dict[str, list[str]]] = {}


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= _CACHE_SIZE:
        del cache[next(iter(cache))]  # the oldest entry: patterns from events churn, literals come back
    cache[key] = value


def _unsupported(pattern: str) -> str:
    """What RE2 accepts but an expression must not use, or ''."""
    escaped = False
    for char in pattern:
        if escaped and char == "C":
            # \C matches one byte, which can split a character of the (UTF-8) text.
            return "\\C (any byte) is not supported; use . for any character"
        escaped = not escaped and char == "\\"
    return ""


def _reason(message: str) -> str:
    """RE2's message, with the cause behind the common ones that come from Python's `re`."""
    if "invalid perl operator: (?=" in message or "invalid perl operator: (?!" in message or (
            "invalid perl operator: (?<=" in message or "invalid perl operator: (?<!" in message):
        return f"{message} (RE2 has no lookahead or lookbehind)"
    if "invalid escape sequence: \\" in message and message[-1:].isdigit():
        return f"{message} (RE2 has no backreferences)"
    return message


def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 pattern; TemplateError with RE2's reason when it is invalid."""
    found = _PATTERNS.get(pattern)
    if found is not None:
        return found
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise TemplateError(f"pattern is longer than {MAX_PATTERN_LENGTH:,} characters")
    unsupported = _unsupported(pattern)
    if unsupported:
        raise TemplateError(unsupported)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in pattern):
        # RE2 matches UTF-8; a lone surrogate (from a `\ud800` escape) has no UTF-8 form.
        raise TemplateError("pattern holds a lone surrogate (\\ud800-\\udfff), which is not text RE2 can match")
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else b""
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        raise TemplateError(_reason(text or "invalid pattern")) from None
    _remember(_PATTERNS, pattern, compiled)
    return compiled


def named_groups(compiled: Any) -> list[str]:
    """The pattern's group names, in the order their groups open."""
    index: dict[str, int] = compiled.groupindex
    return sorted(index, key=index.__getitem__)


# --- replacement templates: `\1`, `\g<name>`, `\g<1>`, `\\` -----------------------------------


def _digits(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes '²', which int() refuses."""
    return bool(text) and all("0" <= char <= "9" for char in text)


def _group_reference(template: str, at: int) -> tuple[str | int, int]:
    """The group `\\g<...>` at `at` names (a number or a name), and where the text goes on."""
    end = template.find(">", at + 3)
    if template[at + 2:at + 3] != "<" or end < 0 or end == at + 3:
        raise TemplateError("replacement has \\g without <name> or <number>")
    name = template[at + 3:end]
    return (int(name) if _digits(name) else name), end + 1


def parse_replacement(template: str) -> Replacement:
    """A replacement as (texts, groups): texts[0], then groups[0] and texts[1], and so on;
    a group is a number (`\\1`, `\\g<1>`) or a name (`\\g<name>`)."""
    found = _REPLACEMENTS.get(template)
    if found is not None:
        return found
    texts: list[str] = []
    groups: list[str | int] = []
    text: list[str] = []
    at = template.find("\\")
    start = 0
    while at >= 0:
        text.append(template[start:at])
        following = template[at + 1:at + 2]
        if following == "\\":
            text.append("\\")
            start = at + 2
        elif _digits(following):
            # `\12` is group 12; `\0` is always the whole match (`\01` is it, then a 1)
            digits = 2 if following != "0" and _digits(template[at + 2:at + 3]) else 1
            groups.append(int(template[at + 1:at + 1 + digits]))
            start = at + 1 + digits
        elif following == "g":
            reference, start = _group_reference(template, at)
            groups.append(reference)
        else:
            raise TemplateError("replacement escapes are \\1 to \\99, \\g<name> and \\\\ (a backslash)")
        if len(groups) > len(texts):
            texts.append("".join(text))
            text = []
        at = template.find("\\", start)
    text.append(template[start:])
    texts.append("".join(text))
    parsed = (tuple(texts), tuple(groups))
    _remember(_REPLACEMENTS, template, parsed)
    return parsed


def check_references(replacement: Replacement, compiled: Any) -> str:
    """'' when every group the replacement names exists in the pattern, else the reason."""
    count: int = compiled.groups
    names: dict[str, int] = compiled.groupindex
    for group in replacement[1]:
        if isinstance(group, int) and group > count:
            return f"replacement refers to group {group}, but the pattern has {count}"
        if isinstance(group, str) and group not in names:
            return "replacement refers to a group name the pattern does not have"
    return ""


# --- format() templates: `{}` and `{name}` ------------------------------------------------------

POSITIONAL: Final = ""  # the placeholder `{}`: the next argument


def _valid_name(name: str) -> bool:
    return (name[:1].isalpha() or name[:1] == "_") and all(c.isalnum() or c in "_-" for c in name)


def parse_format(template: str) -> list[str]:
    """A format template as [text, placeholder, text, placeholder, ..., text]: an odd count,
    placeholders at odd places, POSITIONAL for `{}` or the name in `{name}`. `{{` and `}}`
    are braces. Indexes, attributes, conversions and format specs (`{0}`, `{a.b}`, `{x!r}`,
    `{x:>5}`) are refused: a template only ever places values."""
    found = _FORMATS.get(template)
    if found is not None:
        return found
    parts: list[str] = []
    text: list[str] = []
    at, length = 0, len(template)
    while at < length:
        char = template[at]
        if char == "}":
            if template[at + 1:at + 2] != "}":
                raise TemplateError("format() template has a '}' without its '{' (write }} for a brace)")
            text.append("}")
            at += 2
        elif char == "{":
            if template[at + 1:at + 2] == "{":
                text.append("{")
                at += 2
                continue
            end = template.find("}", at)
            if end < 0:
                raise TemplateError("format() template has a '{' without its '}' (write {{ for a brace)")
            name = template[at + 1:end]
            if name and not _valid_name(name):
                raise TemplateError("format() placeholders are {} or {name} (a name of letters, digits, _ and -)")
            parts.extend(["".join(text), name])
            text = []
            at = end + 1
        else:
            next_brace = min(i for i in (template.find("{", at), template.find("}", at), length) if i >= 0)
            text.append(template[at:next_brace])
            at = next_brace
    parts.append("".join(text))
    placeholders = parts[1::2]
    if POSITIONAL in placeholders and any(placeholders):
        raise TemplateError("format() template mixes {} and {name} placeholders; use one kind")
    _remember(_FORMATS, template, parts)
    return parts


def cache_sizes() -> list[int]:
    """Entries held by the pattern, replacement and format caches (each at most 128)."""
    return [len(_PATTERNS), len(_REPLACEMENTS), len(_FORMATS)]
