"""Time in expressions beyond parsing: `to_unix_ms`, `from_unix_ms`, `truncate_time`, and
`format_time` in a time zone.

Times are epoch seconds (floats), as everywhere in the engine; ISO text is read with
`parse_time` first. Time zones are IANA names (`Europe/Paris`) looked up with `zoneinfo`,
which keeps each loaded zone, so naming one per event costs a dictionary lookup.
"""

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from engine.durations import duration_ms
from engine.functions import ExprValueError, format_time, parse_time, type_name

DURATION_HINT = "write a duration such as '500ms', '10s', '5m', '1h' or '1d'"
ZONE_HINT = "use an IANA time zone name such as 'UTC' or 'Europe/Paris'"


def _seconds(moment: object, function: str) -> Any:
    if isinstance(moment, str):
        return parse_time(moment)
    if isinstance(moment, bool) or not isinstance(moment, (int, float)):
        raise TypeError(f"{function}() needs epoch seconds or ISO text, not {type_name(moment)}")
    if isinstance(moment, float) and not math.isfinite(moment):
        raise ExprValueError(f"{function}() needs a finite time")
    return moment


def to_unix_ms(moment: object) -> int:
    """Whole milliseconds since the epoch (rounded to the nearest)."""
    millis: Any = _seconds(moment, "to_unix_ms") * 1000  # Any: see functions.round_number
    rounded: int = round(millis)
    return rounded


def from_unix_ms(millis: object) -> float:
    """Epoch seconds (a float) from milliseconds since the epoch."""
    if isinstance(millis, bool) or not isinstance(millis, (int, float)):
        raise TypeError(f"from_unix_ms() needs a number, not {type_name(millis)}")
    if isinstance(millis, float) and not math.isfinite(millis):
        raise ExprValueError("from_unix_ms() needs a finite number")
    return millis / 1000


_ZONE_NAMES: list[frozenset[str]] = []  # every IANA name this machine knows, once loaded


def zone_names() -> frozenset[str]:
    """The zone names there are. Loaded when an expression that formats times is compiled
    (engine/compile_expr.py), so evaluating one never walks the zone directories, and an
    unknown name read from an event is refused without opening a file."""
    if not _ZONE_NAMES:
        _ZONE_NAMES.append(frozenset(available_timezones()))
    return _ZONE_NAMES[0]


def zone(name: str) -> ZoneInfo:
    """The zone called `name`; raises ValueError (no payload in the message) when unknown."""
    if name not in zone_names():
        raise ValueError("unknown time zone")
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError("unknown time zone") from None


def truncate_time(moment: object, unit: object) -> float:
    """`moment` rounded down to a multiple of `unit` since the epoch (days are UTC days)."""
    seconds = _seconds(moment, "truncate_time")
    step = duration_ms(unit)
    if step is None or step == 0:
        if not isinstance(unit, str):
            raise TypeError(f"truncate_time() unit must be a duration text, not {type_name(unit)}")
        raise ExprValueError(f"truncate_time() unit is not a duration; {DURATION_HINT}")
    millis = math.floor(seconds * 1000)
    return float(millis - millis % step) / 1000


def format_time_in(moment: object, pattern: object = None, zone_name: object = None) -> str:
    """`format_time(t[, format[, tz]])`: without `tz` as before (UTC); with it, the local
    time there, ISO 8601 with its offset when there is no format."""
    if zone_name is None:
        return format_time(moment, pattern)
    if not isinstance(zone_name, str):
        raise TypeError(f"format_time() time zone must be text, not {type_name(zone_name)}")
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(f"format_time() format must be text, not {type_name(pattern)}")
    try:
        where = zone(zone_name)
    except ValueError:
        raise ExprValueError(f"format_time() time zone (third argument) is unknown; {ZONE_HINT}") from None
    seconds = _seconds(moment, "format_time")
    try:
        local = datetime.fromtimestamp(seconds, where)
    except (OverflowError, OSError, ValueError):
        raise ExprValueError("format_time() time is out of range") from None
    if pattern is None:
        return local.isoformat()
    try:
        return local.strftime(pattern)
    except ValueError:
        raise ExprValueError("format_time() format is invalid") from None
