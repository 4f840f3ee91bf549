"""The parsing and encoding functions of expressions: JSON, key=value pairs, one CSV line,
URLs, base64 and percent-encoding.

Bad input (text that is not JSON, base64 garbage, a broken `%` escape) is an ExprValueError
naming the function and what it expected: the node's `on_error` decides what happens to the
event, and the message, which ends up in logs, quotes nothing from it.
"""

import base64
import binascii
import csv
import json
import urllib.parse
from collections.abc import Callable
from typing import Final

from engine.functions import MAX_SEQUENCE_LENGTH, ExprLimitError, ExprValueError, type_name

_HEX: Final = frozenset("0123456789abcdefABCDEF")
_JSON_CONSTANTS: Final = frozenset({"NaN", "Infinity", "-Infinity"})


def _text(value: object, function: str) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"{function}() needs text, not {type_name(value)}")


def _separator(value: object, function: str, what: str) -> str:
    separator = _text(value, function)
    if not separator:
        raise ExprValueError(f"{function}() {what} is empty")
    return separator


# --- JSON -----------------------------------------------------------------------------------


def _refuse_constant(name: str) -> object:
    # NaN and Infinity are not JSON; Python's json would read them as floats no sink can write.
    raise ValueError(name)


def parse_json(text: object) -> object:
    """The value the JSON text holds: a mapping, list, text, number, bool or None."""
    value = _text(text, "parse_json")
    try:
        return json.loads(value, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ExprValueError(f"parse_json() text is not valid JSON (at character {exc.pos + 1})") from None
    except RecursionError:
        raise ExprValueError("parse_json() text nests too deeply") from None
    except ValueError:
        # NaN or Infinity, or an integer past Python's 4,300 digits.
        raise ExprValueError("parse_json() text is not valid JSON (NaN, Infinity or a huge number)") from None


def to_json(value: object) -> str:
    """Compact JSON text (`{"a":1}`), keys in the order they are held."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise ExprValueError("to_json() value nests too deeply") from None
    except ValueError as exc:
        if str(exc).startswith("Out of range float"):
            raise ExprValueError("to_json() cannot write NaN or infinity") from None
        raise ExprLimitError("to_json() number too large to write") from None
    except TypeError:
        raise TypeError("to_json() needs a JSON value (mappings with text keys, lists, text, numbers)") from None


# --- key=value pairs and CSV ------------------------------------------------------------------


def _unquote(value: str) -> str:
    """`"a \\"b\\""` -> `a "b"`: double quotes removed, `\\"` and `\\\\` unescaped."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _pairs(text: str, pair_separator: str) -> list[str]:
    """The pairs of `text`, keeping a double-quoted value whole (`msg="a b"`): split on
    `pair_separator` (or runs of whitespace) outside quotes, in one pass over the text (a
    line with an unclosed quote must not cost time quadratic in its length)."""
    if '"' not in text:
        return text.split(pair_separator) if pair_separator else text.split()
    out: list[str] = []
    start = 0
    at = 0
    length = len(text)
    inside = False
    escaped = False
    first = pair_separator[:1]
    while at < length:
        char = text[at]
        if inside:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                inside = False
            at += 1
        elif char == '"':
            inside = True
            at += 1
        elif pair_separator and char == first and text.startswith(pair_separator, at):
            out.append(text[start:at])
            at += len(pair_separator)
            start = at
        elif not pair_separator and char.isspace():
            out.append(text[start:at])
            at += 1
            start = at
        else:
            at += 1
    out.append(text[start:])  # an unclosed quote: the rest as written
    return out if pair_separator else [pair for pair in out if pair]


def parse_kv(text: object, pair_separator: object = None, kv_separator: object = "=") -> dict[str, object]:
    """`a=1 b="two words" flag` -> {'a': '1', 'b': 'two words', 'flag': True}: pairs split on
    whitespace (or `pair_separator`), keys from values on the first `kv_separator`; a pair
    without one is a flag (True); a later key wins. Values stay text."""
    value = _text(text, "parse_kv")
    pairs = "" if pair_separator is None else _separator(pair_separator, "parse_kv", "pair separator")
    equals = _separator(kv_separator, "parse_kv", "key-value separator")
    out: dict[str, object] = {}
    for pair in _pairs(value, pairs):
        key, found, rest = pair.strip().partition(equals)
        if not key and not found:
            continue  # an empty pair, e.g. between two separators
        out[_unquote(key.strip())] = _unquote(rest.strip()) if found else True
    return out


def parse_csv_line(text: object, separator: object = ",") -> list[str]:
    """The fields of one line of CSV, as Python's csv module reads them (quotes `"` doubled
    inside a quoted field)."""
    value = _text(text, "parse_csv_line")
    delimiter = _text(separator, "parse_csv_line")
    if len(delimiter) != 1 or delimiter in ('"', "\n", "\r"):
        raise ExprValueError("parse_csv_line() separator must be one character other than a quote or line break")
    try:
        return next(csv.reader([value], delimiter=delimiter, strict=True), [])
    except csv.Error:
        # A quote in the wrong place, a line break outside quotes, or a field past the csv limit.
        raise ExprValueError("parse_csv_line() text is not one well-formed CSV line") from None


# --- URLs ---------------------------------------------------------------------------------------


def parse_url(text: object) -> dict[str, object]:
    """{scheme, host, port, path, query, fragment}: parts that are absent are None (the path
    ''); the query is a mapping of its first value per key, `+` read as a space."""
    value = _text(text, "parse_url")
    try:
        parts = urllib.parse.urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ExprValueError("parse_url() text is not a valid URL (a bad port or [IPv6] host)") from None
    query: dict[str, object] = {}
    for key, item in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(key, item)
    return {
        "scheme": parts.scheme or None, "host": parts.hostname, "port": port, "path": parts.path,
        "query": query, "fragment": parts.fragment or None,
    }


def url_encode(text: object) -> str:
    """Percent-encoding of the UTF-8 bytes of the text; only `A-Z a-z 0-9 - _ . ~` stay."""
    try:
        return urllib.parse.quote(_text(text, "url_encode"), safe="")
    except UnicodeEncodeError:
        raise ExprValueError("url_encode() text holds a lone surrogate, which UTF-8 cannot encode") from None


def url_decode(text: object) -> str:
    """The text of a percent-encoded one; `+` stays `+` (use parse_url for query strings)."""
    value = _text(text, "url_decode")
    at = value.find("%")
    while at >= 0:
        if value[at + 1:at + 2] not in _HEX or value[at + 2:at + 3] not in _HEX:
            raise ExprValueError("url_decode() text has a % that is not followed by two hex digits")
        at = value.find("%", at + 3)
    try:
        return urllib.parse.unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise ExprValueError("url_decode() text does not decode to UTF-8 text") from None


# --- base64 ---------------------------------------------------------------------------------


def base64_encode(text: object) -> str:
    """Standard base64 (with `=` padding) of the text's UTF-8 bytes."""
    value = _text(text, "base64_encode")
    if len(value) > MAX_SEQUENCE_LENGTH // 2:  # UTF-8 may take 4 bytes a character, base64 4/3 of those
        raise ExprLimitError(f"base64_encode() would give more than {MAX_SEQUENCE_LENGTH:,} characters")
    try:
        return base64.b64encode(value.encode("utf-8")).decode("ascii")
    except UnicodeEncodeError:
        raise ExprValueError("base64_encode() text holds a lone surrogate, which UTF-8 cannot encode") from None


def base64_decode(text: object) -> str:
    """The UTF-8 text that base64 (standard or URL-safe alphabet, padding optional) encodes."""
    value = _text(text, "base64_decode").strip()
    if not value.isascii():
        raise ExprValueError("base64_decode() text is not base64")
    value = value.replace("-", "+").replace("_", "/")
    value += "=" * (-len(value) % 4)
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ExprValueError("base64_decode() text is not base64") from None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise ExprValueError("base64_decode() result is binary, not UTF-8 text") from None


def encoding_functions() -> dict[str, Callable[..., object]]:
    return {
        "parse_json": parse_json, "to_json": to_json, "parse_kv": parse_kv, "parse_csv_line": parse_csv_line,
        "parse_url": parse_url, "url_encode": url_encode, "url_decode": url_decode,
        "base64_encode": base64_encode, "base64_decode": base64_decode,
    }
