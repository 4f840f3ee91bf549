"""Text, parsing and encoding functions: their values, their per-event errors (which quote
no payload), their resource guards, and property tests against plain Python."""

import base64
import csv
import json
import random
import re
import time
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import text_patterns
from engine.compile_expr import ExprCompiler
from engine.expr import check
from engine.functions import MAX_SEQUENCE_LENGTH, ExprLimitError, ExprValueError, describe_error
from engine.node import ManualClock

EVENT: dict[str, object] = {
    "line": '203.0.113.9 - - [21/Nov/2026:10:00:00 +0000] "GET /shop/cart?id=7 HTTP/1.1" 200 512',
    "name": "ann LEE  o'neil",
    "n": 42,
    "kv": 'level=info msg="disk almost full" user=ann flag',
    "row": 'a,"b, c",,"say ""hi"""',
    "url": "https://Shop.Example.com:8443/cart/view?id=7&tag=a&tag=b&q=x+y#top",
    "doc": '{"user": {"id": 7, "tags": ["a", "b"]}, "ok": true}',
    "secret": "p@ss w0rd!",
    "pattern": "(?P<word>[a-z]+)",
}


def run(source: str, event: dict[str, object] | None = None) -> object:
    assert check(source) == [], source  # only what the loader accepts reaches the compiler
    return ExprCompiler(random.Random(0), ManualClock()).value(source, "test").fn(EVENT if event is None else event)


def failure(source: str, event: dict[str, object] | None = None) -> str:
    with pytest.raises(Exception) as info:
        run(source, event)
    assert isinstance(info.value, Exception)
    return describe_error(info.value)


VALUES = [
    ("replace(name, 'n', 'N')", "aNN LEE  o'Neil"),
    ("title(name)", "Ann Lee  O'neil"),
    ("pad_left(n, 6, '0')", "000042"),
    ("pad_left('ab', 4)", "  ab"),
    ("pad_right('ab', 4, '.')", "ab.."),
    ("pad_left('abcdef', 3)", "abcdef"),
    ("truncate(name, 3)", "ann"),
    ("truncate('ab', 10)", "ab"),
    ("format('{} is {}', 'n', n)", "n is 42"),
    ("format('{user}: {n} {{ok}}', {'user': 'ann', 'n': None})", "ann: None {ok}"),
    ("format('plain')", "plain"),
    ("regex_match(line, r'\" 200 ')", True),
    ("regex_match(line, r'^GET')", False),
    ("regex_extract(line, r'^(?P<ip>\\S+) .*\"(?P<method>[A-Z]+) (?P<path>[^ ?]+)')",
     {"ip": "203.0.113.9", "method": "GET", "path": "/shop/cart"}),
    ("regex_extract(line, r'(?P<a>x)|(?P<b>GET)')", {"a": None, "b": "GET"}),
    ("regex_extract(line, r'(?P<never>zzz)')", None),
    ("regex_extract(line, r'(\\d+)/(?P<month>[A-Z][a-z]+)')", {"month": "Nov"}),  # unnamed groups only group
    ("regex_extract_all('a1 b22 c', r'\\d+')", ["1", "22"]),
    ("regex_extract_all('a1 b22 c', r'(\\w)(\\d+)')", ["a1", "b22"]),
    ("regex_extract_all('a=1 b=22', r'(?P<k>\\w)=(?P<v>\\d+)')", [{"k": "a", "v": "1"}, {"k": "b", "v": "22"}]),
    ("regex_extract_all('none', r'\\d')", []),
    ("regex_replace('2026-11-21', r'(\\d+)-(\\d+)-(\\d+)', r'\\3/\\2/\\1')", "21/11/2026"),
    ("regex_replace('a1b22', r'(?P<d>\\d+)', r'<\\g<d>\\\\>')", "a<1\\>b<22\\>"),
    ("regex_replace('aXbX', 'X', '')", "ab"),
    ("regex_replace('abc', 'x*', '-')", "-a-b-c-"),
    ("regex_replace('héllo wörld', r'\\pL+', r'[\\0]')", "[héllo] [wörld]"),
    ("regex_match(secret, pattern)", True),  # a pattern read from the event works too
    ("regex_extract('abc', pattern)", {"word": "abc"}),
    ("parse_json(doc)", {"user": {"id": 7, "tags": ["a", "b"]}, "ok": True}),
    ("parse_json(doc).user.tags[1]", "b"),
    ("parse_json('3.5')", 3.5),
    ("to_json({'a': [1, 2.5, None, True, 'é']})", '{"a":[1,2.5,null,true,"é"]}'),
    ("parse_kv(kv)", {"level": "info", "msg": "disk almost full", "user": "ann", "flag": True}),
    ("parse_kv('a:1;b:2;;c', ';', ':')", {"a": "1", "b": "2", "c": True}),
    ("parse_kv('a=1=2 a=3')", {"a": "3"}),
    ("parse_csv_line(row)", ["a", "b, c", "", 'say "hi"']),
    ("parse_csv_line('a|b', '|')", ["a", "b"]),
    ("parse_csv_line('')", []),
    ("parse_url(url)", {"scheme": "https", "host": "shop.example.com", "port": 8443, "path": "/cart/view",
                        "query": {"id": "7", "tag": "a", "q": "x y"}, "fragment": "top"}),
    ("parse_url('/just/a/path')", {"scheme": None, "host": None, "port": None, "path": "/just/a/path",
                                   "query": {}, "fragment": None}),
    ("base64_encode('héllo')", "aMOpbGxv"),
    ("base64_decode('aMOpbGxv')", "héllo"),
    ("base64_decode('aMOpbGxv\\n')", "héllo"),
    ("base64_decode('Pj4-Pw')", ">>>?"),  # the URL-safe alphabet, padding left out
    ("url_encode('a b/é?&')", "a%20b%2F%C3%A9%3F%26"),
    ("url_decode('a%20b+%2f%C3%A9')", "a b+/é"),
]


@pytest.mark.parametrize(("source", "expected"), VALUES, ids=[source for source, _ in VALUES])
def test_value(source: str, expected: object) -> None:
    result = run(source)
    assert result == expected
    assert type(result) is type(expected)


ERRORS = [
    ("parse_json(secret)", "parse_json() text is not valid JSON (at character 1)"),
    ("parse_json('[1, 2')", "parse_json() text is not valid JSON (at character 6)"),
    ("parse_json('NaN')", "parse_json() text is not valid JSON (NaN, Infinity or a huge number)"),
    ("parse_json('[' * 100000)", "parse_json() text nests too deeply"),
    ("parse_json(n)", "parse_json() needs text, not number"),
    ("to_json(float('nan'))", "to_json() cannot write NaN or infinity"),
    ("base64_decode(secret)", "base64_decode() text is not base64"),
    ("base64_decode('//79')", "base64_decode() result is binary, not UTF-8 text"),
    ("url_decode('100%')", "url_decode() text has a % that is not followed by two hex digits"),
    ("url_decode('%zz' + secret)", "url_decode() text has a % that is not followed by two hex digits"),
    ("url_decode('%ff')", "url_decode() text does not decode to UTF-8 text"),
    ("parse_csv_line('a,\"b')", "parse_csv_line() text is not one well-formed CSV line"),
    ("parse_csv_line('a', ';;')",
     "parse_csv_line() separator must be one character other than a quote or line break"),
    ("parse_url('http://[::1')", "parse_url() text is not a valid URL (a bad port or [IPv6] host)"),
    ("parse_url('http://host:99999/')", "parse_url() text is not a valid URL (a bad port or [IPv6] host)"),
    ("parse_kv(kv, '')", "parse_kv() pair separator is empty"),
    ("replace(secret, '', 'x')", "replace() text to replace is empty"),
    ("truncate(secret, -1)", "truncate() length must not be negative"),
    ("truncate(secret, '3')", "truncate() length must be a whole number, not text"),
    ("pad_left(secret, 5, fill)", "pad_left() fill must be exactly one character"),
    ("lower(regex_extract(secret, r'(?P<x>zzz)'))", "lower() needs text, not None"),
    ("regex_match(n, 'a')", "regex_match() needs text, not number"),
    ("regex_match(secret, secret)", "regex_match() pattern is not a valid RE2 regular expression"),
    ("regex_match(secret, '(' + secret)", "regex_match() pattern is not a valid RE2 regular expression"),
    ("regex_extract(secret, secret[0])",
     "regex_extract() pattern has no named groups; name them, e.g. (?P<status>\\d+)"),
    ("regex_replace(secret, 'a', bad)", "regex_replace() replacement refers to a group the pattern does not have"),
    ("format(t, secret, secret)", "format() template has 1 {} placeholders but 2 values follow it"),
    ("format(secret + '{', 1)", "format() template has a '{' without its '}' (write {{ for a brace)"),
    ("format('{x}', {'y': secret})", "format() mapping has no item for one of the template's {name} placeholders"),
    ("format('{x}', secret)", "format() with {name} placeholders needs one mapping argument after the template"),
]


@pytest.mark.parametrize(("source", "message"), ERRORS, ids=[source for source, _ in ERRORS])
def test_bad_input_is_a_clear_error_without_the_payload(source: str, message: str) -> None:
    event = {**EVENT, "fill": "ab", "bad": "\\3", "secret": "p@ss (w0rd!", "t": "{}"}
    text = failure(source, event)
    assert text == message
    assert "p@ss" not in text and "w0rd" not in text


def test_bad_input_errors_are_value_errors_the_node_policy_handles() -> None:
    with pytest.raises(ExprValueError):
        run("parse_json('{')")
    with pytest.raises(ExprValueError):
        run("base64_decode('***')")


# --- resource guards ----------------------------------------------------------------------


def test_a_pathological_pattern_on_a_long_line_stays_fast() -> None:
    event = {"s": "a" * 1_000_000 + "!"}
    started = time.perf_counter()
    assert run(r"regex_match(s, r'^(a+)+$')", event) is False
    assert run(r"regex_replace(s, r'(a|aa)+b', 'x')", event) == event["s"]
    assert run(r"regex_extract(s, r'(?P<x>(a*)*b)')", event) is None
    assert time.perf_counter() - started < 5  # Python's re would not finish in any lifetime


@pytest.mark.parametrize(("source", "message"), [
    ("pad_left('a', 10 ** 9)", f"pad_left() would give more than {MAX_SEQUENCE_LENGTH:,} characters"),
    ("pad_right('a', 10 ** 9, '.')", f"pad_right() would give more than {MAX_SEQUENCE_LENGTH:,} characters"),
    ("replace(s, 'a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')",
     f"replace() would give more than {MAX_SEQUENCE_LENGTH:,} characters"),
    ("regex_replace(s, 'a', r'\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0')",
     f"regex_replace() would give more than {MAX_SEQUENCE_LENGTH:,} characters"),
    ("format('{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}', s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, "
     "s, s, s, s, s, s)", f"format() would give more than {MAX_SEQUENCE_LENGTH:,} characters"),
])
def test_results_past_the_sequence_limit_are_refused(source: str, message: str) -> None:
    with pytest.raises(ExprLimitError) as info:
        run(source, {"s": "a" * 500_000})
    assert str(info.value) == message


def test_regex_extract_all_counts_the_mappings_it_builds() -> None:
    # An empty pattern with named groups matches at every position: a mapping per character
    # of a long line would take gigabytes long before 10,000,000 matches.
    started = time.perf_counter()
    with pytest.raises(ExprLimitError) as info:
        run("regex_extract_all(s, '(?P<a>)(?P<b>)(?P<c>)')", {"s": "x" * 2_000_000})
    assert str(info.value) == f"regex_extract_all() would give more than {MAX_SEQUENCE_LENGTH:,} items"
    assert time.perf_counter() - started < 30
    assert len(run(r"regex_extract_all(s, r'\w+')", {"s": "ab " * 1000})) == 1000


@pytest.mark.parametrize("function", ["regex_match(s, 'b')", "regex_extract(s, '(?P<x>b)')",
                                      "regex_extract_all(s, 'b')", "regex_replace(s, 'b', 'c')"])
def test_text_with_a_lone_surrogate_is_a_clear_error(function: str) -> None:
    # JSON input may hold "\ud800", which has no UTF-8 form for RE2 to match.
    name = function.split("(")[0]
    assert failure(function, {"s": "ab\ud800"}) == (
        f"{name}() text holds a lone surrogate (\\ud800-\\udfff), which RE2 cannot match")


def test_parse_kv_of_a_long_line_with_an_unclosed_quote_is_linear() -> None:
    line = 'a="' + " b=1" * 200_000
    started = time.perf_counter()
    assert run("parse_kv(s)", {"s": line}) == {"a": line[2:]}
    assert time.perf_counter() - started < 5  # quadratic, it took minutes
    # Spaces inside quotes are kept as written.
    assert run("parse_kv(s)", {"s": 'm="a  b\tc" x=1'}) == {"m": "a  b\tc", "x": "1"}
    assert run("parse_kv(s, ';', ':')", {"s": 'a:"x;y";;b:2'}) == {"a": "x;y", "b": "2"}


def test_pattern_caches_stay_bounded() -> None:
    for index in range(1000):
        assert run("regex_match(s, p)", {"s": f"x{index}", "p": f"x{index}$"}) is True
        run("regex_replace('a', 'a', r)", {"r": f"\\g<0>{index}"})
        run("format(t, 1)", {"t": f"{index}{{}}"})
    sizes = text_patterns.cache_sizes()
    assert all(size <= 128 for size in sizes), sizes


# --- properties against plain Python --------------------------------------------------------

SETTINGS = settings(max_examples=150, deadline=None)
texts = st.text(max_size=40)
words = st.text(alphabet=st.sampled_from("ab \t\nÉéςΣßǆx'-"), max_size=30)


def _title_reference(value: str) -> str:
    return "".join(part if part.isspace() else part.capitalize() for part in re.split(r"(\s+)", value) if part)


@SETTINGS
@given(texts, st.text(min_size=1, max_size=3), st.text(max_size=3))
def test_replace_is_str_replace(value: str, old: str, new: str) -> None:
    assert run("replace(s, a, b)", {"s": value, "a": old, "b": new}) == value.replace(old, new)


@SETTINGS
@given(words)
def test_title_capitalizes_each_whitespace_separated_word(value: str) -> None:
    assert run("title(s)", {"s": value}) == _title_reference(value)


@SETTINGS
@given(texts, st.integers(0, 60), st.characters())
def test_pad_and_truncate_are_rjust_ljust_and_slices(value: str, width: int, fill: str) -> None:
    event = {"s": value, "n": width, "c": fill}
    assert run("pad_left(s, n, c)", event) == value.rjust(width, fill)
    assert run("pad_right(s, n, c)", event) == value.ljust(width, fill)
    assert run("truncate(s, n)", event) == value[:width]


@SETTINGS
@given(texts)
def test_base64_round_trips_and_matches_the_base64_module(value: str) -> None:
    encoded = run("base64_encode(s)", {"s": value})
    assert encoded == base64.b64encode(value.encode()).decode()
    assert run("base64_decode(s)", {"s": encoded}) == value


@SETTINGS
@given(texts)
def test_url_encoding_round_trips_and_matches_urllib(value: str) -> None:
    encoded = run("url_encode(s)", {"s": value})
    assert encoded == urllib.parse.quote(value, safe="")
    assert run("url_decode(s)", {"s": encoded}) == value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(json_values)
def test_json_round_trips_and_matches_the_json_module(value: object) -> None:
    written = run("to_json(x)", {"x": value})
    assert written == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert run("parse_json(s)", {"s": written}) == value


@SETTINGS
@given(st.lists(st.text(alphabet=st.sampled_from('ab,;" \t'), max_size=6), min_size=1, max_size=5),
       st.sampled_from([",", ";", "\t"]))
def test_parse_csv_line_reads_what_the_csv_module_writes(fields: list[str], separator: str) -> None:
    line = _csv_line(fields, separator)
    assert run("parse_csv_line(s, sep)", {"s": line, "sep": separator}) == next(csv.reader([line], delimiter=separator))


def _csv_line(fields: list[str], separator: str) -> str:
    import io
    out = io.StringIO()
    csv.writer(out, delimiter=separator, lineterminator="").writerow(fields)
    return out.getvalue()


@SETTINGS
@given(st.text(alphabet=st.sampled_from("ab1 -"), max_size=30))
def test_regex_functions_agree_with_python_re_on_patterns_both_accept(value: str) -> None:
    for pattern in (r"[a-z]+", r"(?P<d>\d)(?P<w>\w?)", r"a*", r"\s+|-"):
        event = {"s": value, "p": pattern}
        assert run("regex_match(s, p)", event) == (re.search(pattern, value) is not None)
        python_all = [m.groupdict() if m.re.groupindex else m.group(0) for m in re.finditer(pattern, value)]
        assert run("regex_extract_all(s, p)", event) == python_all
        assert run("regex_replace(s, p, '<\\\\0>')", event) == re.sub(pattern, r"<\g<0>>", value)


def test_parse_user_agent_names_browser_os_and_device() -> None:
    iphone = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.0 Mobile/15E148 Safari/604.1")
    assert run("parse_user_agent(ua)", {"ua": iphone}) == {
        "browser": {"family": "Mobile Safari", "major": "17", "minor": "0", "patch": None},
        "os": {"family": "iOS", "major": "17", "minor": "2", "patch": None},
        "device": {"family": "iPhone", "brand": "Apple", "model": "iPhone"},
    }
    assert run("parse_user_agent('')")["browser"] == {"family": "Other", "major": None, "minor": None, "patch": None}
    started = time.perf_counter()
    assert run("parse_user_agent(ua).os.family", {"ua": "(" * 4000}) == "Other"  # RE2: no backtracking
    assert time.perf_counter() - started < 5
    assert failure("parse_user_agent(ua)", {"ua": "x" * 5000}) == (
        "parse_user_agent() text is longer than 4,096 characters")
