"""sha256, sha1, md5, stable_hash, uuid4, to_unix_ms, from_unix_ms, truncate_time and
format_time with a time zone: against the standard library, in graphs, and at load time."""

import copy
import hashlib
import json
import random
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.compile_expr import ExprCompiler
from engine.expr import check
from engine.functions import describe_error
from engine.node import ManualClock
from engine.stable_hash import canonical_text, stable_hash
from loader import load_text
from tests.runtime_support import RECORDED, run_graph
from tests.runtime_support import test_registry as registry_with_test_nodes

SETTINGS = settings(max_examples=200, deadline=None)
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=10)


def run(source: str, event: dict[str, object] | None = None, seed: int = 0) -> object:
    assert check(source) == [], source
    return ExprCompiler(random.Random(seed), ManualClock()).value(source, "t").fn(event or {})


def failure(source: str, event: dict[str, object]) -> str:
    compiled = ExprCompiler(random.Random(0), ManualClock()).value(source, "t")
    with pytest.raises(Exception) as caught:
        compiled.fn(event)
    return describe_error(caught.value)


@SETTINGS
@given(st.text())
def test_hashes_of_text_are_hashlibs_of_its_utf8(text):
    data = text.encode("utf-8", "surrogatepass")
    event = {"x": text}
    assert run("sha256(x)", event) == hashlib.sha256(data).hexdigest()
    assert run("sha1(x)", event) == hashlib.sha1(data).hexdigest()
    assert run("md5(x)", event) == hashlib.md5(data).hexdigest()


@SETTINGS
@given(json_values.filter(lambda v: not isinstance(v, str)))
def test_hashes_of_other_values_are_of_their_canonical_json(value):
    data = canonical_text(value).encode()
    assert run("sha256(x)", {"x": value}) == hashlib.sha256(data).hexdigest()
    assert run("stable_hash(x)", {"x": value}) == stable_hash(value)


def test_equal_values_hash_equal_whatever_the_key_order():
    assert run("sha256(a) == sha256(b)", {"a": {"x": 1, "y": [2.0]}, "b": {"y": [2], "x": 1}}) is True
    assert run("sha256(5)") == run("sha256('5')")
    assert run("stable_hash('alice')") == 12405121866166422378


def test_uuid4_is_a_version_4_uuid_from_the_nodes_generator():
    first = [run("uuid4()", seed=42) for _ in range(2)]
    assert first[0] == first[1] and UUID4.match(first[0])
    assert run("uuid4()", seed=43) != first[0]
    compiled = ExprCompiler(random.Random(1), ManualClock()).value("uuid4()", "t")
    assert len({compiled.fn({}) for _ in range(100)}) == 100


SEEDED = """
version: 1
nodes:
  gen: {type: generate, with: {count: 50, seed: %s, fields: {n: i, id: uuid4(), r: rand()}}}
  tagged: {type: map, from: gen, with: {set: {key: "sha256(id)[:8]"}}}
  got: {type: test.record, from: tagged}
"""


def _events(seed: int, fuse: bool) -> list[dict[str, object]]:
    RECORDED.clear()
    _, ok = run_graph(SEEDED % seed, fuse=fuse)
    assert ok
    return copy.deepcopy(RECORDED["got"])


@pytest.mark.parametrize("fuse", [True, False])
def test_a_seeded_graph_gives_the_same_ids_on_every_run(fuse):
    first, again = _events(7, fuse), _events(7, fuse)
    assert first == again and len(first) == 50
    assert len({e["id"] for e in first}) == 50
    assert all(UUID4.match(str(e["id"])) for e in first)
    assert _events(8, fuse) != first


def test_fused_and_unfused_seeded_graphs_give_the_same_ids():
    assert _events(7, True) == _events(7, False)


GRAPH_WITH_IDS = """\
version: 1
nodes:
  orders: {type: file.read, with: {path: orders.jsonl}}
  tagged: {type: map, from: orders, with: {set: {trace: uuid4(), who: "sha256(user)[:12]"}}}
  out: {type: file.write, from: tagged, with: {path: out.jsonl}}
"""
TEST_OF_IDS = """\
version: 1
graph: ids.yaml
tests:
  - name: ids are the same in every run
    inputs:
      orders: [{user: ann}, {user: bob}]
    expect:
      out:
        equals:
          - {user: ann, trace: f8ed1fd0-0c6a-40cb-9fa4-4a46c2608a59, who: 49915e0d7d4b}
          - {user: bob, trace: e7a22db7-10b5-4391-88f4-a0df0d98c38e, who: 81b637d8fcd2}
"""


def test_a_graph_test_can_expect_the_ids_uuid4_gives(cli, tmp_path):
    """Graph tests seed each node's generator, so a map's uuid4() is reproducible there."""
    (tmp_path / "ids.yaml").write_text(GRAPH_WITH_IDS)
    (tmp_path / "ids.test.yaml").write_text(TEST_OF_IDS)
    for _ in range(2):
        code, out, err = cli("test", str(tmp_path / "ids.test.yaml"))
        assert code == 0, out + err


# --- time ---------------------------------------------------------------------------------

MS = st.integers(-62_000_000_000_000, 253_000_000_000_000)  # years 5 to 9999


@SETTINGS
@given(MS)
def test_unix_ms_round_trip(millis):
    assert run("to_unix_ms(from_unix_ms(n))", {"n": millis}) == millis
    assert run("from_unix_ms(n)", {"n": millis}) == millis / 1000


@SETTINGS
@given(st.floats(-6.2e10, 2.5e11, allow_nan=False))
def test_to_unix_ms_is_milliseconds_rounded(seconds):
    assert run("to_unix_ms(t)", {"t": seconds}) == round(seconds * 1000)


@SETTINGS
@given(st.integers(-6_000_000_000, 250_000_000_000), st.sampled_from(["1s", "10s", "5m", "1h", "1d", "500ms"]))
def test_truncate_time_is_the_start_of_its_unit(seconds, unit):
    step = {"1s": 1, "10s": 10, "5m": 300, "1h": 3600, "1d": 86400, "500ms": 0.5}[unit]
    start = run("truncate_time(t, u)", {"t": seconds + 0.25, "u": unit})
    assert start <= seconds + 0.25 < start + step
    assert (start / step).is_integer()


def test_truncate_time_to_a_day_is_midnight_utc():
    start = run("truncate_time('2026-11-21T10:42:13.5Z', '1d')")
    assert datetime.fromtimestamp(start, UTC).isoformat() == "2026-11-21T00:00:00+00:00"


@SETTINGS
@given(st.integers(0, 4_000_000_000), st.sampled_from(["Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC"]))
def test_format_time_in_a_zone_is_zoneinfos(seconds, zone):
    local = datetime.fromtimestamp(seconds, ZoneInfo(zone))
    assert run("format_time(t, '%Y-%m-%d %H:%M %z', z)", {"t": seconds, "z": zone}) == local.strftime(
        "%Y-%m-%d %H:%M %z")
    assert run("format_time(t, None, z)", {"t": seconds, "z": zone}) == local.isoformat()
    assert run("parse_time(format_time(t, None, z))", {"t": seconds, "z": zone}) == seconds


def test_format_time_keeps_its_old_answers_without_a_zone():
    assert run("format_time(1795255200)") == "2026-11-21T10:00:00Z"
    assert run("format_time(1795255200, '%H:%M')") == "10:00"


@pytest.mark.parametrize(("source", "event", "message"), [
    ("format_time(0, None, z)", {"z": "Mars/Olympus"},
     "format_time() time zone (third argument) is unknown; use an IANA time zone name such as 'UTC' or 'Europe/Paris'"),
    ("format_time(0, None, z)", {"z": 5}, "format_time() time zone must be text, not number"),
    ("truncate_time(0, u)", {"u": "1 hour"},
     "truncate_time() unit is not a duration; write a duration such as '500ms', '10s', '5m', '1h' or '1d'"),
    ("truncate_time(0, u)", {"u": 60}, "truncate_time() unit must be a duration text, not number"),
    ("to_unix_ms(t)", {"t": "yesterday"}, "parse_time() needs ISO 8601 text, e.g. 2026-11-21T10:00:00Z"),
    ("to_unix_ms(t)", {"t": [1]}, "to_unix_ms() needs epoch seconds or ISO text, not list"),
    ("from_unix_ms(t)", {"t": "1"}, "from_unix_ms() needs a number, not text"),
])
def test_time_errors(source, event, message):
    assert failure(source, event) == message
    assert "Mars" not in message


# --- load problems --------------------------------------------------------------------------

GRAPH = """version: 1
nodes:
  gen: {type: generate, with: {count: 1, fields: {t: i}}}
  m:
    type: map
    from: gen
    with:
      set:
        a: "%s"
  out: {type: "null", from: m}
"""


@pytest.mark.parametrize(("expression", "column", "message"), [
    ("format_time(t, None, 'Mars/Olympus')", 34, "format_time() time zone 'Mars/Olympus' is unknown"),
    ("truncate_time(t, '1 hour')", 30, "truncate_time() unit is not a duration"),
    ("get(t, 'a..b', 0)", 20, "get() path is invalid: expected a field name at character 3"),
])
def test_a_bad_literal_argument_is_a_load_problem_at_its_place(expression, column, message):
    result = load_text("g.yaml", GRAPH % expression, registry_with_test_nodes())
    assert [(p.code, p.line, p.column, p.message) for p in result.problems] == [("HR053", 9, column, message)]


def test_json_of_canonical_text_is_json():
    assert json.loads(canonical_text({"b": [1.0, "é"], "a": None})) == {"a": None, "b": [1, "é"]}
