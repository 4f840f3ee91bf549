"""JSON Lines through orjson give the values the `json` module gave, wherever they differ.

The reference is the path Headrace used before orjson: `formats.decode_jsonl` on the line
decoded as UTF-8 with replacement, and `json.dumps(..., ensure_ascii=False,
separators=(",", ":"), default=str)` for writing.
"""

import datetime
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.fast_json import decode_jsonl_lines, encode_jsonl_bytes, has_long_digits
from adapters.io.formats import BadRecord, decode_jsonl


def old_decode(lines: list[bytes]) -> list[object]:
    out: list[object] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", errors="replace")
        if number == 1:
            text = text.removeprefix("\ufeff")
        record = decode_jsonl(text, number)
        if record is not None:
            out.append(record)
    return out


def old_encode(events: list[dict]) -> bytes:
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
                   for e in events).encode("utf-8")


def comparable(records: list[object]) -> list[object]:
    """BadRecords by what a user sees of them; NaN made comparable (NaN != NaN)."""
    def value(v: object) -> object:
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [value(x) for x in v]
        return (type(v).__name__, v)
    return [(r.message(), r.raw) if isinstance(r, BadRecord) else value(r) for r in records]


def new_decode(lines: list[bytes]) -> list[object]:
    out: list[object] = []
    decode_jsonl_lines(lines, 0, out, has_long_digits(b"\n".join(lines)))
    return out


# Each line is one where orjson alone would give another value, or no value.
DIFFERENT_LINES = [
    b'\xef\xbb\xbf{"bom": 1}',  # a byte-order mark on line 1
    b'{"big": 18446744073709551616}',  # beyond 64 bits: orjson gives a float
    b'{"small": -9223372036854775809}',
    b'{"nested": [1, {"x": 123456789012345678901234567890}]}',
    b'{"nan": NaN, "inf": Infinity, "ninf": -Infinity}',
    b'{"huge": 1e400}',  # json: inf; orjson refuses
    b'{"lone": "\\ud800"}',  # a lone surrogate escape
    b'{"bad": "\xff\xfe"}',  # not UTF-8: replaced, as before
    b"",
    b"   \r",
    b"\x0c",  # whitespace to str.strip, not to JSON
    b"not json",
    b"[1, 2]",
    b'"text"',
    b'{"a": 1} trailing',
    b'{"dup": 1, "dup": 2}',
    b'{"ok": 1.5, "s": "h\xc3\xa9llo", "n": null, "t": true}',
    b'{"ts": 1733212345000000000}',  # 19 digits but inside 64 bits
]


def test_every_line_orjson_reads_differently_gets_the_old_value_or_message():
    assert comparable(new_decode(DIFFERENT_LINES)) == comparable(old_decode(DIFFERENT_LINES))
    values = new_decode(DIFFERENT_LINES)
    assert values[0] == {"bom": 1}
    assert values[1] == {"big": 18446744073709551616} and isinstance(values[1]["big"], int)


def test_a_block_without_long_numbers_is_decoded_in_one_go_and_a_bad_line_still_found():
    lines = [b'{"i": %d}' % i for i in range(1000)] + [b"{oops"] + [b'{"i": 1000}']
    out: list[object] = []
    assert decode_jsonl_lines(lines, 41, out, False) is True  # lines 42 to 1043
    bad = BadRecord(1042, "invalid JSON (Expecting property name enclosed in double quotes at column 2)", "{oops")
    assert comparable(out) == comparable([{"i": i} for i in range(1000)] + [bad, {"i": 1000}])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12)
events = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=8))
def test_decoding_json_written_by_json_gives_json_loads_values(batch):
    lines = [json.dumps(e, ensure_ascii=e_ascii, separators=sep).encode("utf-8", "surrogatepass")
             for e, e_ascii, sep in zip(batch, [True, False] * 8, [(",", ":"), (", ", ": ")] * 8)]
    assert comparable(new_decode(lines)) == comparable(old_decode(lines))


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=8))
def test_encoding_gives_the_values_json_wrote(batch):
    try:
        expected = old_encode(batch)
    except UnicodeEncodeError:  # a lone surrogate: neither path can write it as UTF-8
        with pytest.raises(UnicodeEncodeError):
            encode_jsonl_bytes(batch)
        return
    written = encode_jsonl_bytes(batch)
    assert written.count(b"\n") == len(batch)
    parsed = [json.loads(line) for line in written.split(b"\n")[:-1]]  # not splitlines: "\x85" is a line end to it
    assert comparable(parsed) == comparable([json.loads(line) for line in expected.split(b"\n")[:-1]])


def test_where_orjson_would_write_other_values_the_old_text_is_written():
    odd = [
        {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")},  # orjson: null
        {1: "int key", None: "none key", False: "bool key", 2.5: "float key"},  # orjson refuses
        {"big": 2 ** 64, "neg": -(2 ** 63) - 1},  # orjson refuses
        {"when": datetime.datetime(2026, 12, 3, 10, 0, tzinfo=datetime.UTC)},  # default=str, as before
        {"set": {1}},  # not JSON at all: default=str
        {"tuple": (1, "a")},
    ]
    for event in odd:
        assert encode_jsonl_bytes([event]) == old_encode([event]), event
    assert encode_jsonl_bytes(odd) == old_encode(odd)


def test_plain_events_are_written_as_before_key_order_and_text_included():
    batch = [{"z": 1, "a": "h\u00e9llo \u2603", "q": 'say "hi"\n', "n": None, "f": 2.5, "b": False, "l": [1, {}]}]
    assert encode_jsonl_bytes(batch) == old_encode(batch)


def test_small_floats_differ_only_in_their_exponents_text():
    written = encode_jsonl_bytes([{"x": 1e-05, "y": 1e16, "z": 0.1}])
    assert written == b'{"x":0.00001,"y":1e+16,"z":0.1}\n'
    assert json.loads(written) == {"x": 1e-05, "y": 1e16, "z": 0.1}


def test_a_line_nested_too_deeply_is_a_bad_record_not_an_exception():
    deep = b"[" * 100_000 + b"]" * 100_000
    out: list[object] = []
    assert decode_jsonl_lines([b'{"a": 1}', b'{"x": ' + deep + b"}"], 0, out, False) is True
    assert out[0] == {"a": 1}
    assert isinstance(out[1], BadRecord) and out[1].line_number == 2 and "nested too deeply" in out[1].problem
