"""Load-time checks of arguments written as literals: a pattern, a replacement, a template.

`regex_extract(line, r'(?P<ip>\\S+')` fails for every event, so the loader reports it once,
at the argument's place in the file, before the graph runs. Arguments computed from the
event are checked per event by the functions themselves.
"""

from typing import Final

from engine.library_checks import LIBRARY_LITERAL_FUNCTIONS, library_problems
from engine.text_patterns import (
    POSITIONAL,
    TemplateError,
    check_references,
    compile_pattern,
    named_groups,
    parse_format,
    parse_replacement,
)

NOT_LITERAL: Final = object()  # an argument that is not a literal (a field, a call, ...)
REGEX_FUNCTIONS: Final = frozenset({"regex_match", "regex_extract", "regex_extract_all", "regex_replace"})
_PATTERN_HINT: Final = ("patterns use RE2 syntax (no backreferences, no lookaround); write them as raw "
                        "strings, e.g. r'(?P<status>\\d{3})'")
# What Python's string escapes make of `\1`, `\b`, `\0` in a pattern not written as r'...'.
_ESCAPED_CONTROLS: Final = frozenset(chr(code) for code in range(9))

# (index of the argument, message, hint)
LiteralProblem = tuple[int, str, str]


def literal_problems(function: str, literals: list[object]) -> list[LiteralProblem]:
    """Problems with the literal arguments of one call; `literals` holds NOT_LITERAL for
    every argument that is not one."""
    if function in LIBRARY_LITERAL_FUNCTIONS:
        return library_problems(function, literals, NOT_LITERAL)
    if function in REGEX_FUNCTIONS:
        return _regex_problems(function, literals)
    if function == "parse_user_agent":
        # Not a check: the graph will parse User-Agents, so load the rules now, at load time.
        from engine.agent_functions import load_rules

        load_rules()
    if function == "format" and literals:
        return _format_problems(literals)
    if function in ("pad_left", "pad_right") and len(literals) == 3:
        fill = literals[2]
        if isinstance(fill, str) and len(fill) != 1:
            return [(2, f"{function}() fill must be exactly one character", "e.g. pad_left(id, 8, '0')")]
    return []


def _regex_problems(function: str, literals: list[object]) -> list[LiteralProblem]:
    if len(literals) < 2 or literals[1] is NOT_LITERAL:
        return []
    pattern = literals[1]
    if not isinstance(pattern, str):
        return [(1, f"{function}() pattern must be text", _PATTERN_HINT)]
    if _ESCAPED_CONTROLS.intersection(pattern):
        hint = "write the pattern as a raw string r'...', or double the backslash"
        return [(1, f"{function}() pattern holds a control character, made by an escape such as \\b or \\1", hint)]
    try:
        compiled = compile_pattern(pattern)
    except TemplateError as exc:
        return [(1, f"{function}() pattern is invalid: {exc}", _PATTERN_HINT)]
    if function == "regex_extract" and not named_groups(compiled):
        return [(1, "regex_extract() pattern has no named groups to extract",
                 "name each group to extract, e.g. (?P<status>\\d{3}); or use regex_match for a yes/no")]
    if function == "regex_replace" and len(literals) == 3 and literals[2] is not NOT_LITERAL:
        return _replacement_problems(literals[2], compiled)
    return []


def _replacement_problems(replacement: object, compiled: object) -> list[LiteralProblem]:
    hint = "write groups as \\1 or \\g<name>, in a raw string r'...'"
    if not isinstance(replacement, str):
        return [(2, "regex_replace() replacement must be text", hint)]
    if _ESCAPED_CONTROLS.intersection(replacement):
        return [(2, "regex_replace() replacement holds a control character, made by an escape such as \\1", hint)]
    try:
        reason = check_references(parse_replacement(replacement), compiled)
    except TemplateError as exc:
        reason = str(exc)
    return [(2, f"regex_replace() {reason}", hint)] if reason else []


def _format_problems(literals: list[object]) -> list[LiteralProblem]:
    template = literals[0]
    if template is NOT_LITERAL:
        return []
    hint = "e.g. format('{} of {}', a, b) or format('{user} of {team}', {'user': a, 'team': b})"
    if not isinstance(template, str):
        return [(0, "format() template must be text", hint)]
    try:
        parts = parse_format(template)
    except TemplateError as exc:
        return [(0, str(exc), hint)]
    placeholders = parts[1::2]
    values = len(literals) - 1
    if placeholders and placeholders[0] != POSITIONAL:
        if values != 1:
            return [(0, f"format() with {{name}} placeholders takes one mapping after the template, got {values}",
                     hint)]
    elif values != len(placeholders):
        return [(0, f"format() template has {len(placeholders)} {{}} placeholders but {values} values follow it",
                 hint)]
    return []
