"""`lookup`: events enriched from a CSV or JSON Lines table, fused or not, reloaded atomically."""

import asyncio
import json
import os
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.io.files.lookup_table import FileTable, load_rows
from engine.fusion import ChainFinder
from engine.lookup import Lookup, parse_lookup
from engine.node import NodeFailure
from loader.api import load_text
from tests.runtime_support import RECORDED, build, fused_like_unfused
from tests.runtime_support import test_registry as registry

NETWORKS = "network,owner,country\n10,acme,DE\n20,\"Beta, Inc\",FR\n"


def graph(table: Path, params: str, count: int = 4, keys: str = "i * 10", policy: str = "dead_letter") -> str:
    return f"""
    version: 1
    nodes:
      src: {{type: generate, with: {{count: {count}, fields: {{n: i, network: "{keys}"}}}}}}
      lk: {{type: lookup, from: src, with: {{table: "{table}", {params}}}, on_error: {policy}}}
      after: {{type: map, from: lk, with: {{set: {{seen: "n + 1"}}}}}}
      out: {{type: test.record, from: after}}
      {"bad: {type: test.record, from: lk.errors}" if policy == "dead_letter" else ""}
    """


@pytest.fixture
def networks(tmp_path: Path) -> Path:
    path = tmp_path / "networks.csv"
    path.write_text(NETWORKS)
    return path


def test_every_other_column_is_added_by_default(networks):
    got = fused_like_unfused(graph(networks, "key: network"))
    assert got["out"] == [
        {"n": 0, "network": 0, "seen": 1},  # no row: kept as it is
        {"n": 1, "network": 10, "owner": "acme", "country": "DE", "seen": 2},  # 10 finds the text "10"
        {"n": 2, "network": 20, "owner": "Beta, Inc", "country": "FR", "seen": 3},
        {"n": 3, "network": 30, "seen": 4},
    ]


def test_fields_pick_and_rename_columns(networks):
    listed = fused_like_unfused(graph(networks, "key: network, fields: [country]", count=2))
    assert listed["out"][1] == {"n": 1, "network": 10, "country": "DE", "seen": 2}
    renamed = fused_like_unfused(graph(networks, "key: network, fields: {owner: network_owner}", count=2))
    assert renamed["out"][1] == {"n": 1, "network": 10, "network_owner": "acme", "seen": 2}


def test_on_missing_drop_and_error(networks):
    dropped = fused_like_unfused(graph(networks, "key: network, on_missing: drop"))
    assert [e["n"] for e in dropped["out"]] == [1, 2]
    failed = fused_like_unfused(graph(networks, "key: network, on_missing: error"))
    assert [e["n"] for e in failed["out"]] == [1, 2]
    assert [(e["error"], e["event"]["n"]) for e in failed["bad"]] == [
        (f"no row in table {networks} for the event's key 'network'", 0),
        (f"no row in table {networks} for the event's key 'network'", 3)]


def test_the_table_replaces_event_fields_and_keeps_the_event_it_received(networks):
    text = graph(networks, "key: network", count=2).replace('network: "i * 10"', 'network: "i * 10", owner: "\'me\'"')
    got = fused_like_unfused(text)
    assert got["out"] == [{"n": 0, "network": 0, "owner": "me", "seen": 1},
                          {"n": 1, "network": 10, "owner": "acme", "country": "DE", "seen": 2}]


def test_several_key_fields_and_a_jsonl_table_with_types(tmp_path):
    table = tmp_path / "prices.jsonl"
    table.write_text('{"shop": "a", "sku": 1, "price": 2.5, "tags": ["x"]}\n\n'
                     '{"shop": "b", "sku": 1, "price": 4}\n')
    text = graph(table, "key: [shop, sku]", count=3, keys="i").replace(
        'network: "i"', "shop: \"'a' if i < 2 else 'b'\", sku: \"i % 2 if i < 2 else 1\"")
    got = fused_like_unfused(text)
    assert got["out"] == [{"n": 0, "shop": "a", "sku": 0, "seen": 1},
                          {"n": 1, "shop": "a", "sku": 1, "price": 2.5, "tags": ["x"], "seen": 2},
                          {"n": 2, "shop": "b", "sku": 1, "price": 4, "seen": 3}]


def test_keys_that_cannot_be_text_never_match(networks):
    got = fused_like_unfused(graph(networks, "key: network, on_missing: drop", count=4,
                     keys="[10.0, True, None, '10'][i]"))
    assert [e["n"] for e in got["out"]] == [3]  # only the text "10": not 10.0, true or null


def test_lookup_fuses_as_a_step(networks):
    plan = load_text("g.yaml", graph(networks, "key: network"), registry()).plan
    assert plan is not None
    assert ChainFinder(plan, registry()).chains() == [["src", "lk", "after"]]


@pytest.mark.parametrize("content, message", [
    (None, "cannot read table {path}: No such file or directory"),
    ("owner,country\nacme,DE\n", "table {path}: the header has no key column 'network'"),
    ("network,owner\n10,a\n20,b\n10,c\n", "table {path}: line 4: duplicate key (the same as line 2)"),
    ("network,owner\n10,a\n20,b\n30,c\n", "table {path}: line 4: more than max_rows (2) rows; "
                                          "raise max_rows or make the table smaller"),
    ("network,owner\n10,a,b\n", "table {path}: line 2: 3 values but 2 columns"),
    ("", "table {path}: the file is empty: a CSV table needs a header row"),
])
def test_a_table_that_cannot_be_loaded_stops_the_graph_naming_the_file(tmp_path, content, message):
    path = tmp_path / "t.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(NodeFailure) as failure:
        build(graph(path, "key: network, max_rows: 2"))
    assert str(failure.value) == "node 'lk' (lookup): " + message.format(path=path)


@pytest.mark.parametrize("content, message", [
    ('{"network": "1"}\nnot json\n', "line 2: not valid JSON"),
    ('{"network": "1"}\n[1]\n', "line 2: expected a JSON object"),
    ('{"network": "1"}\n{"owner": "x"}\n', "line 2: no key column 'network'"),
    ('{"network": 1.5}\n', "line 1: key column 'network' must be text or a whole number"),
    ('{"network": "1"}\n{"network": 1}\n', "line 2: duplicate key (the same as line 1)"),
    ('{"network": "1"}\n{"network": "2", "a": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
     "line 2: JSON nests too deeply"),
])
def test_jsonl_table_problems_name_the_line(tmp_path, content, message):
    path = tmp_path / "t.jsonl"
    path.write_text(content)
    with pytest.raises(NodeFailure) as failure:
        build(graph(path, "key: network"))
    assert str(failure.value) == f"node 'lk' (lookup): table {path}: {message}"


def write_version(path: Path, version: int, keys: int) -> None:
    """The whole table at `version`, renamed over the old one (as editors and ConfigMaps do)."""
    temporary = path.with_suffix(".tmp")
    rows = "".join(f"{k},{version},{version}\n" for k in range(keys))
    temporary.write_text("network,a,b\n" + rows)
    os.replace(temporary, path)


@pytest.mark.parametrize("fuse", [True, False])
def test_a_reload_is_atomic_while_events_flow(tmp_path, fuse):
    path = tmp_path / "t.csv"
    write_version(path, 0, 50)
    text = graph(path, "key: network", count=3000, keys="i % 50").replace("count: 3000,", "count: 3000, rate: 3000,")
    RECORDED.clear()
    runtime = build(text, fuse=fuse)
    lookup = runtime.runners["lk"].impl
    assert isinstance(lookup, Lookup) and isinstance(lookup.source, FileTable)
    lookup.source.check_every_s = 0.005
    lookup.source.next_check = 0.0
    stop = threading.Event()

    def rewrite() -> None:
        version = 0
        while not stop.is_set():
            version += 1
            write_version(path, version, 50)
            time.sleep(0.02)

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        assert asyncio.run(runtime.run()), runtime.failure
    finally:
        stop.set()
        writer.join()
    versions = [(e["a"], e["b"]) for e in RECORDED["out"]]
    assert len(versions) == 3000
    assert all(a == b for a, b in versions)  # both fields from the same row of one table
    seen = [int(str(a)) for a, _ in versions]
    assert seen == sorted(seen)  # never back to an older table once a newer one was used
    assert len(set(seen)) > 3  # it did reload, several times


def test_a_bad_reload_keeps_the_old_table_and_logs_one_line(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_text(NETWORKS)
    now = [0.0]

    class Clock:
        def now(self) -> float:
            return now[0]

    table = FileTable(parse_lookup({"table": str(path), "key": "network"}), "node 'lk' (lookup)", Clock())  # type: ignore[arg-type]
    first = table.current()
    path.write_text("network,owner\n10,a\n10,b\n")  # a duplicate key
    now[0] = 5.0
    table.current()  # sees the change: reads the file again, in a thread
    deadline = time.time() + 5
    while (table.loading or table.failed is None) and time.time() < deadline:
        time.sleep(0.01)
    assert table.current() is first
    assert [r.getMessage() for r in caplog.records] == [
        f"node 'lk' (lookup): reloading table {path} failed, the previous table stays: "
        "line 3: duplicate key (the same as line 2)"]
    now[0] = 10.0
    table.current()  # the same bad version is not read again
    assert not table.loading and len(caplog.records) == 1


def test_memory_per_row_is_as_documented(tmp_path):
    """The spec says about 400 bytes for a row of a short key and two short text values."""
    path = tmp_path / "t.csv"
    count = 20000
    path.write_text("network,owner,kind\n" + "".join(f"10.{i // 256}.{i % 256}.0/24,owner {i},isp\n"
                                                     for i in range(count)))
    tracemalloc.start()
    try:
        rows = load_rows(parse_lookup({"table": str(path), "key": "network"}))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows) == count
    assert 250 < held / count < 550, held / count


def test_bad_parameters_are_load_problems(networks):
    result = load_text("g.yaml", graph(networks, "key: network, on_missing: ignore"), registry())
    assert result.plan is None
    assert any("on_missing" in p.message or "ignore" in p.message for p in result.problems), \
        [p.message for p in result.problems]
    missing = load_text("g.yaml", graph(networks, "fields: [owner]"), registry())
    assert missing.plan is None and any("'key'" in p.message for p in missing.problems)


def test_rows_hold_the_chosen_fields(networks):
    rows = load_rows(parse_lookup({"table": str(networks), "key": "network", "fields": {"owner": "o"}}))
    assert rows == {"10": {"o": "acme"}, "20": {"o": "Beta, Inc"}}
    assert json.dumps(rows)  # plain JSON values only


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.dictionaries(st.integers(0, 9), st.text("abc", max_size=3), max_size=6),
       keys=st.lists(st.one_of(st.integers(0, 12), st.sampled_from(["3", "x", None, True, 2.0])), min_size=1,
                     max_size=8),
       on_missing=st.sampled_from(["keep", "drop", "error"]))
def test_matches_plain_python(tmp_path, table, keys, on_missing):
    """Fused and unfused runs enrich as a plain dict lookup on the key's text does."""
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"network": k, "v": v}) + "\n" for k, v in table.items()))
    literal = repr(keys)
    got = fused_like_unfused(graph(path, f"key: network, on_missing: {on_missing}", count=len(keys),
                                   keys=f"{literal}[i]"))
    by_text = {str(k): v for k, v in table.items()}
    expected: list[dict[str, object]] = []
    failed: list[int] = []
    for i, key in enumerate(keys):
        text = key if isinstance(key, str) else str(key) if type(key) is int else None
        event: dict[str, object] = {"n": i, "network": key}
        if text in by_text:
            expected.append({**event, "v": by_text[text], "seen": i + 1})
        elif on_missing == "keep":
            expected.append({**event, "seen": i + 1})
        elif on_missing == "error":
            failed.append(i)
    assert got["out"] == expected
    assert [e["event"]["n"] for e in got["bad"]] == failed
