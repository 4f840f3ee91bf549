"""Values between PostgreSQL and events (docs/connectors.md, "PostgreSQL", value mapping).

Reading, psycopg's loaded values become JSON values. Writing, every event value becomes the
text PostgreSQL parses for the target column, the same whether it travels in COPY (insert)
or as an untyped parameter (upsert, and the row-by-row retry): a row is accepted or refused
for the same reasons by either path.
"""

import base64
import binascii
import datetime
import decimal
import json
import math
from typing import Final

JSON_KIND: Final = "json"
BYTEA_KIND: Final = "bytea"
ARRAY_KIND: Final = "array"
PLAIN_KIND: Final = "plain"


class ValueRefused(Exception):
    """An event value that cannot become the column's text (bad base64 for bytea)."""


# -- reading -------------------------------------------------------------------------------

def to_json(value: object) -> object:
    """One loaded column value as a JSON value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity: PostgreSQL's own spelling, as text.
        return value if math.isfinite(value) else _special_float(value)
    if isinstance(value, decimal.Decimal):
        return decimal_to_json(value)
    if isinstance(value, datetime.datetime):
        return rfc3339(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()  # an interval: seconds, as a number
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}  # json/jsonb (already JSON) and hstore
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]  # arrays, and JSON arrays
    return str(value)  # uuid, inet, ranges, enums...: their text


def decimal_to_json(value: decimal.Decimal) -> object:
    """numeric: an int when integral (exact at any size), else a float (about 15 significant
    digits); NaN and infinities as text."""
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def rfc3339(value: datetime.datetime) -> str:
    """`2024-05-01T12:00:00.250000Z`; a timestamp without time zone has no offset."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _special_float(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


# -- writing -------------------------------------------------------------------------------

def kind_of(type_name: str, category: str) -> str:
    """What a column needs of a value, from its type (`format_type`) and pg_type.typcategory."""
    if type_name in ("json", "jsonb"):
        return JSON_KIND
    if type_name == "bytea":
        return BYTEA_KIND
    if category == "A":
        return ARRAY_KIND
    return PLAIN_KIND


def to_text(value: object, kind: str) -> str | None:
    """One event value as the text PostgreSQL reads into a column of `kind`; None is NULL."""
    if value is None:
        return None
    if kind == JSON_KIND:
        return dump_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return bytea_text(value) if kind == BYTEA_KIND else value
    if isinstance(value, list) and kind == ARRAY_KIND:
        return array_text(value)
    return dump_json(value)  # an object (or a list) into a text column: its JSON


# Values PostgreSQL reads as they are: in COPY psycopg writes an int or float as the text
# PostgreSQL parses anyway; as parameters (upsert) only text travels untyped, so an int there
# is made text too (a typed int would be cast by other rules than COPY's parsing).
COPY_AS_IS: Final = frozenset({str, int, float, type(None)})
PARAM_AS_IS: Final = frozenset({str, type(None)})


class RowMaker:
    """Builds the rows of one column list: the hot path of `postgres.write`, so the values
    PostgreSQL takes as they are pass untouched and only the others are converted."""

    def __init__(self, columns: tuple[str, ...], kinds: list[str], copy: bool) -> None:
        self.columns = columns
        self.as_is = COPY_AS_IS if copy else PARAM_AS_IS
        self.special = [(i, column, kind) for i, (column, kind) in enumerate(zip(columns, kinds, strict=True))
                        if kind != PLAIN_KIND]

    def row(self, event: dict[str, object]) -> list[object]:
        """Raises ValueRefused for a value the column cannot take."""
        as_is = self.as_is
        row = [v if v.__class__ in as_is else to_text(v, PLAIN_KIND) for v in map(event.get, self.columns)]
        for i, column, kind in self.special:
            row[i] = to_text(event.get(column), kind)
        return row


def dump_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def bytea_text(value: str) -> str:
    """base64 text (what `postgres.read` makes of bytea) as bytea's hex input."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueRefused("not base64 text, as a bytea column needs") from None
    return "\\x" + raw.hex()


def array_text(values: list[object]) -> str:
    """A JSON list as an array literal: `{1,2,NULL}`, `{"a b","c\\"d"}`, nested for lists in lists."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, list):
            items.append(array_text(value))
        else:
            text = to_text(value, PLAIN_KIND) or ""
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"
