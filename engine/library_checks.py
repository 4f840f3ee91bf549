"""Load-time checks of the literal arguments of `get`, `truncate_time` and `format_time`.

A path, a duration or a time zone written in the expression fails for every event if it is
wrong, so the loader reports it once at the argument's place (engine.literal_checks calls
this). Only the standard library and dependency-free engine modules are imported: the
checker runs in the loader.
"""

from typing import Final
from zoneinfo import ZoneInfo

from engine.durations import duration_ms
from engine.field_paths import PathError, parse_path

LIBRARY_LITERAL_FUNCTIONS: Final = frozenset({"get", "truncate_time", "format_time"})
_PATH_HINT: Final = "write a path such as 'a.b[0]' or \"payload['user id']\""
_DURATION_HINT: Final = "write a duration such as '500ms', '10s', '5m', '1h' or '1d'"
_ZONE_HINT: Final = "use an IANA time zone name such as 'UTC' or 'Europe/Paris'"


def known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def library_problems(function: str, literals: list[object], not_literal: object) -> list[tuple[int, str, str]]:
    """(argument index, message, hint) for each literal argument no event can make work."""
    if function == "get" and len(literals) >= 2 and isinstance(literals[1], str):
        try:
            parse_path(literals[1])
        except PathError as exc:
            return [(1, f"get() path is invalid: {exc}", _PATH_HINT)]
    if function == "truncate_time" and len(literals) == 2 and literals[1] is not not_literal and (
            not duration_ms(literals[1])):
        return [(1, "truncate_time() unit is not a duration", _DURATION_HINT)]
    zone = literals[2] if function == "format_time" and len(literals) == 3 else not_literal
    if isinstance(zone, str) and not known_zone(zone):
        return [(2, f"format_time() time zone '{zone}' is unknown", _ZONE_HINT)]
    return []
