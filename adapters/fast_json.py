"""JSON Lines through orjson, with exact fallbacks to the `json` module where they differ.

orjson decodes and encodes several times faster than `json`, but not always to the same
values. Every line or event orjson would treat differently goes through the `json`
path that Headrace always used, so values stay what they were:

- integers beyond 64 bits: orjson reads them as floats (a line with a run of 19 or more
  digits is decoded by `json`) and refuses to write them;
- `NaN`, `Infinity`, lone surrogates, invalid UTF-8, a byte-order mark: orjson refuses to
  read them; `json` reads them (invalid bytes replaced) as before;
- non-finite floats: orjson writes `null`; `json` writes `NaN`/`Infinity` as before;
- keys that are not text, and values of other types (`default=str`): orjson refuses.

Floats are written in orjson's shortest form, which differs from Python's `repr` only in
the exponent of small numbers (`0.00001` where `repr` says `1e-05`): the same value.
"""

import json
import re
from typing import Final

import orjson

from adapters.io.formats import BadRecord, decode_jsonl
from engine.node import Event

Record = Event | BadRecord

# orjson reads an integer outside the 64-bit range as a float; the shortest such literal has
# 19 digits. A block is searched once, with every digit made "0" and every other byte a
# space (a regular expression for 19 digits costs as much as decoding the block).
_LONG_DIGITS: Final = re.compile(rb"\d{19}")
_DIGITS_ONLY: Final = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_NINETEEN_DIGITS: Final = b"0" * 19
_WRITE_OPTIONS: Final = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_NULL: Final = b"null"
_ONLY_DICTS: Final = frozenset({dict})


def has_long_digits(data: bytes) -> bool:
    return data.translate(_DIGITS_ONLY).find(_NINETEEN_DIGITS) >= 0


def line_text(raw: bytes, number: int) -> str:
    """A line as the `json` path reads it: invalid bytes replaced, a first-line BOM dropped."""
    text = raw.decode("utf-8", errors="replace")
    if number == 1 and text.startswith("\ufeff"):
        text = text[1:]
    return text


def decode_jsonl_lines(lines: list[bytes], number: int, out: list[Record], long_digits: bool) -> bool:
    """Appends the records of `lines` (complete lines without their newline; the first is
    line `number + 1`) to `out`; blank lines are not records. Returns whether any record
    is bad."""
    loads = orjson.loads
    if not long_digits:
        try:
            values = list(map(loads, lines))  # the common case, without a Python loop
        except orjson.JSONDecodeError:
            pass
        else:
            if set(map(type, values)) <= _ONLY_DICTS:
                out.extend(values)
                return False
    bad = False
    for raw in lines:
        number += 1
        try:
            value = loads(raw)
        except orjson.JSONDecodeError:
            value = None
        if type(value) is dict and not (long_digits and _LONG_DIGITS.search(raw)):
            out.append(value)
            continue
        record = decode_jsonl(line_text(raw, number), number)
        if record is not None:
            bad = bad or isinstance(record, BadRecord)
            out.append(record)
    return bad


def _refuse(value: object) -> object:
    raise TypeError  # any type orjson does not know goes through `json` (and its `default=str`)


def _json_line(event: Event) -> bytes:
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    # A lone surrogate cannot be UTF-8: the error names the node (`file.write` catches it).
    return text.encode("utf-8")


def encode_jsonl_bytes(events: list[Event]) -> bytes:
    """One JSON object per line, UTF-8, keys in event order."""
    dumps = orjson.dumps
    try:
        lines = [dumps(event, default=_refuse, option=_WRITE_OPTIONS) for event in events]
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return b"".join([_one_line(event) for event in events])
    text = b"".join(lines)
    if _NULL not in text:
        return text
    # `null` may stand for a non-finite float that `json` writes as NaN or Infinity.
    return b"".join([line if _NULL not in line else _json_line(event) for line, event in zip(lines, events)])


def _one_line(event: Event) -> bytes:
    try:
        line = orjson.dumps(event, default=_refuse, option=_WRITE_OPTIONS)
    except TypeError:
        return _json_line(event)
    return line if _NULL not in line else _json_line(event)


def loads_body(text: bytes) -> object:
    """A whole JSON document (an `http.listen` body): orjson, or `json` where they differ.
    Raises json.JSONDecodeError with `json`'s message and position."""
    if not has_long_digits(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text.decode("utf-8"))
