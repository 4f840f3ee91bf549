"""Durations as written in graph files: `500ms`, `10s`, `5m`, `1h`, `1d`."""

import re
from typing import Final

_DURATION: Final = re.compile(r"^([0-9]+)(ms|s|m|h|d)$")
_UNIT_MS: Final[dict[str, int]] = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(value: object) -> int | None:
    """Milliseconds, or None when `value` is not a duration (the schema reports that)."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_MS[match.group(2)]
