"""Grouping keys built from event fields, shared by `aggregate` groups and `coalesce` edges.

Python would merge values JSON keeps apart (`true == 1`) and cannot hash lists or objects;
each value becomes a hashable stand-in so that equal JSON values, and only those, share a key.
"""

import json
from typing import Final

# Tags that keep keys apart which Python would merge (True == 1) or cannot hash.
_BOOL_KEY: Final = "\x00bool"
_JSON_KEY: Final = "\x00json"


def key_part(value: object) -> object:
    """A hashable stand-in for one key value; equal JSON values give equal parts."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return (_BOOL_KEY, value)
    if isinstance(value, (int, float)):
        return value
    try:
        return (_JSON_KEY, json.dumps(value, sort_keys=True, default=str))
    except (TypeError, ValueError):
        return (_JSON_KEY, repr(value))
