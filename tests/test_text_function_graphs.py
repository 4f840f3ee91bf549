"""Text and parsing functions in graphs: the same events fused and unfused, bad input through
`on_error`, and literal patterns and templates checked at load time, at their place."""

import asyncio
import copy
import textwrap

import pytest

from loader.api import load_text
from tests.runtime_support import RECORDED, build
from tests.runtime_support import test_registry as registry

# Access-log-like lines built in the source, then taken apart by a fusable chain.
PIPELINE = r"""
version: 1
nodes:
  lines:
    type: generate
    with:
      count: 40
      fields:
        line: >-
          format('{} - - "GET /shop/{}?id={}&tag=x+y HTTP/1.1" {} {}', '10.0.0.' + str(i % 3),
          ['cart', 'item', 'pay'][i % 3], i, [200, 404][i % 2], i * 10)
        body: "to_json({'id': i, 'tags': ['a', 'b']}) if i % 5 else '{broken'"
  parse:
    type: map
    from: lines
    with:
      set:
        hit: regex_extract(line, r'^(?P<ip>\S+) .*"(?P<method>[A-Z]+) (?P<url>\S+) [^"]*" (?P<status>\d{3})')
        numbers: regex_extract_all(line, r'\d+')
  fields:
    type: map
    from: parse
    with:
      set:
        ip: hit.ip
        url: parse_url('http://host' + hit.url)
        status: int(hit.status)
        masked: regex_replace(hit.ip, r'\.(\d+)$', r'.x\1')
        label: title(replace(hit.method, 'GET', 'get request'))
        padded: pad_left(len(numbers), 3, '0')
        short: truncate(line, 8)
        kv: parse_kv(format('ip={} status={}', hit.ip, hit.status))
        row: parse_csv_line(format('{},"{}"', hit.ip, hit.url))
        b64: base64_decode(base64_encode(hit.url))
        encoded: url_encode(hit.url)
      remove: [hit, numbers]
  ok:
    type: filter
    from: fields
    with: {where: "regex_match(url.path, r'^/shop/(cart|item)$') and status == 200"}
  decoded:
    type: map
    from: ok
    on_error: dead_letter
    with:
      set:
        doc: parse_json(body)
        back: url_decode(encoded)
  got: {type: test.record, from: decoded}
  rejected: {type: test.record, from: decoded.errors}
"""


def run(text: str, fuse: bool) -> tuple[bool, dict[str, list[dict[str, object]]]]:
    RECORDED.clear()
    runtime = build(text, fuse=fuse)
    ok = asyncio.run(runtime.run())
    return ok, copy.deepcopy(RECORDED)


def test_the_functions_give_the_same_events_fused_and_unfused() -> None:
    fused = run(PIPELINE, fuse=True)
    alone = run(PIPELINE, fuse=False)
    assert fused == alone
    ok, recorded = fused
    assert ok
    got = recorded["got"]
    # status 200 on even i; path cart or item: i % 3 in (0, 1); body broken when i % 5 == 0
    assert [e["url"]["query"]["id"] for e in got] == [str(i) for i in range(40)
                                                     if i % 2 == 0 and i % 3 != 2 and i % 5]
    first = got[0]
    assert first["ip"] == "10.0.0.1" and first["masked"] == "10.0.0.x1"
    assert first["url"] == {"scheme": "http", "host": "host", "port": None, "path": "/shop/item",
                            "query": {"id": "4", "tag": "x y"}, "fragment": None}
    assert first["label"] == "Get Request"
    assert first["padded"] == "009"  # 10 0 0 1, the id 4, 1 1 of HTTP/1.1, 200 and 40: nine numbers
    assert first["short"] == "10.0.0.1"
    assert first["kv"] == {"ip": "10.0.0.1", "status": "200"}
    assert first["row"] == ["10.0.0.1", "/shop/item?id=4&tag=x+y"]
    assert first["b64"] == first["back"] == "/shop/item?id=4&tag=x+y"
    assert first["doc"] == {"id": 4, "tags": ["a", "b"]}
    rejected = recorded["rejected"]
    assert [r["event"]["url"]["query"]["id"] for r in rejected] == ["0", "10", "30"]
    assert {r["error"] for r in rejected} == {
        "parse_json() text is not valid JSON (at character 2) in set.doc 'parse_json(body)'"}


def test_a_chain_with_these_functions_is_fused() -> None:
    runtime = build(PIPELINE, fuse=True)
    source = runtime.segments[0].segment.source
    assert "regex_extract" in source and "parse_json" in source


def problems(text: str, name: str = "g.yaml") -> list[tuple[str, int, int, str, str]]:
    result = load_text(name, textwrap.dedent(text), registry())
    return [(p.code, p.line, p.column, p.message, p.hint) for p in result.problems]


MAP = """\
version: 1
nodes:
  src: {type: generate, with: {count: 1, fields: {line: "'a b'"}}}
  m:
    type: map
    from: src
    with:
      set:
        %s
  out: {type: test.record, from: m}
"""


@pytest.mark.parametrize(("field", "column", "message"), [
    (r"ip: regex_extract(line, r'^(?P<ip>\S+')", 33, r"regex_extract() pattern is invalid: missing ): ^(?P<ip>\S+"),
    (r"same: regex_match(line, r'(a)\1')", 33,
     r"regex_match() pattern is invalid: invalid escape sequence: \1 (RE2 has no backreferences)"),
    (r"ahead: regex_match(line, 'a(?=b)')", 34,
     "regex_match() pattern is invalid: invalid perl operator: (?= (RE2 has no lookahead or lookbehind)"),
    (r"word: regex_match(line, '\bword')", 33,
     r"regex_match() pattern holds a control character, made by an escape such as \b or \1"),
    (r"parts: regex_extract(line, r'(\w+) (\w+)')", 36, "regex_extract() pattern has no named groups to extract"),
    (r"swap: regex_replace(line, r'(\w+) (\w+)', r'\3 \1')", 51,
     "regex_replace() replacement refers to group 3, but the pattern has 2"),
    ("text: format('{} and {}', line)", 22, "format() template has 2 {} placeholders but 1 values follow it"),
    ("text: format('{0.__class__}', line)", 22,
     "format() placeholders are {} or {name} (a name of letters, digits, _ and -)"),
])
def test_an_invalid_literal_argument_is_a_load_problem_at_its_place(field: str, column: int, message: str) -> None:
    found = problems(MAP % field)
    assert [(code, line, col, text) for code, line, col, text, _ in found] == [("HR053", 9, column, message)]
    assert found[0][4]  # every one comes with a hint


def test_an_invalid_pattern_in_a_block_scalar_points_into_the_block() -> None:
    text = MAP % "ip: |\n          lower(line) +\n            regex_extract(line, '(?P<ip>[a-')"
    assert [(code, line, col) for code, line, col, _, _ in problems(text)] == [("HR053", 11, 33)]


def test_an_invalid_pattern_in_toml_is_a_load_problem_at_its_place() -> None:
    text = """\
    version = 1
    [nodes.src]
    type = "generate"
    with = { count = 1, fields = { line = "'a'" } }
    [nodes.m]
    type = "map"
    from = "src"
    [nodes.m.with.set]
    ip = "regex_match(line, '[z-a]')"
    [nodes.out]
    type = "test.record"
    from = "m"
    """
    assert [(code, line, col, text) for code, line, col, text, _ in problems(text, "g.toml")] == [
        ("HR053", 9, 25, "regex_match() pattern is invalid: invalid character class range: z-a")]


@pytest.mark.parametrize(("field", "code", "column", "message", "hint"), [
    ("t: replace(line, 'a')", "HR043", 12, "replace() takes 3 arguments, got 2", "check the call to replace()"),
    ("t: pad_left(line)", "HR043", 12, "pad_left() takes 2 to 3 arguments, got 1", "check the call to pad_left()"),
    ("t: regex_match(line)", "HR043", 12, "regex_match() takes 2 arguments, got 1", "check the call to regex_match()"),
    ("t: regexp_match(line, 'a')", "HR042", 12, "unknown function 'regexp_match'", "did you mean 'regex_match'?"),
    ("t: parse_jsn(line)", "HR042", 12, "unknown function 'parse_jsn'", "did you mean 'parse_json'?"),
])
def test_wrong_calls_are_load_problems(field: str, code: str, column: int, message: str, hint: str) -> None:
    assert problems(MAP % field) == [(code, 9, column, message, hint)]


def test_patterns_read_from_events_are_checked_per_event_not_at_load() -> None:
    assert problems(MAP % "t: regex_match(line, line)") == []
