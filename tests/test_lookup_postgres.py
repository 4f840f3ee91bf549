"""`lookup` with a PostgreSQL query as its table, against a real server (tests/servers.py):
enrichment with postgres.read's value mapping, refreshes that replace the table at once,
refreshes that fail and keep it, and the one-line problems of a table that cannot load."""

import asyncio
import copy
import json
import textwrap
import threading
import time

import pytest

from adapters.io.postgres.lookup_query import QueryTable
from engine.lookup import Lookup
from engine.node import ManualClock, NodeFailure
from engine.runtime import Runtime
from engine.secrets import printable_plan
from loader.api import load_text
from tests.runtime_support import RECORDED, build
from tests.runtime_support import test_registry as registry

LIMIT_S = 60.0
NETWORKS = ("CREATE TABLE networks (network bigint PRIMARY KEY, owner text, country text, "
            "since timestamptz, score numeric, meta jsonb, ratio double precision)",
            "INSERT INTO networks VALUES (10, 'acme', 'DE', '2024-05-01 12:00:00+00', 2.5, '{\"tier\": 1}', 0.5), "
            "(20, 'beta', 'FR', NULL, 7, NULL, NULL)")


def execute(server, *statements: str) -> None:
    with server.connect() as conn:
        for statement in statements:
            conn.execute(statement)


def graph(dsn: str, params: str, count: int = 4, keys: str = "i * 10", rate: str = "") -> str:
    return f"""
    version: 2
    nodes:
      src: {{type: generate, with: {{count: {count}, {rate} fields: {{n: i, network: "{keys}"}}}}}}
      lk: {{type: lookup, from: src, with: {{dsn: "{dsn}", {params}}}, on_error: dead_letter}}
      out: {{type: test.record, from: lk}}
      bad: {{type: test.record, from: lk.errors}}
    """


def run(text: str, fuse: bool = True, during: "threading.Thread | None" = None) -> dict[str, list[dict[str, object]]]:
    RECORDED.clear()
    runtime = build(text, fuse=fuse)
    if during is not None:
        during.start()

    async def go() -> bool:
        return await asyncio.wait_for(runtime.run(), LIMIT_S)
    try:
        assert asyncio.run(go()), runtime.failure
    finally:
        if during is not None:
            during.join()
    return copy.deepcopy(RECORDED)


def table_of(text: str) -> QueryTable:
    """The query table of node `lk`, built (first load done) but not running."""
    lookup = build(text).runners["lk"].impl
    assert isinstance(lookup, Lookup) and isinstance(lookup.source, QueryTable)
    return lookup.source


def wait_for_refresh(table: QueryTable, done: int) -> None:
    deadline = time.monotonic() + LIMIT_S
    while table.refreshes < done or table.loading:
        assert time.monotonic() < deadline, "the refresh did not end"
        time.sleep(0.01)


@pytest.mark.parametrize("fuse", [True, False])
def test_events_are_enriched_from_the_query_with_postgres_read_types(postgres_server, fuse):
    execute(postgres_server, *NETWORKS)
    text = graph(postgres_server.dsn, "query: 'SELECT * FROM networks', key: network", keys="[10, '20', 30, 20.0][i]")
    got = run(text, fuse)
    assert got["out"] == [
        {"n": 0, "network": 10, "owner": "acme", "country": "DE", "since": "2024-05-01T12:00:00Z", "score": 2.5,
         "meta": {"tier": 1}, "ratio": 0.5},  # the bigint 10 finds the event's 10 ...
        {"n": 1, "network": "20", "owner": "beta", "country": "FR", "since": None, "score": 7, "meta": None,
         "ratio": None},  # ... and its digits as text; numeric 7 is the whole number 7
        {"n": 2, "network": 30},  # no row: kept (on_missing: keep)
        {"n": 3, "network": 20.0},  # a fraction never matches, as in file tables
    ]
    renamed = run(graph(postgres_server.dsn, "query: 'SELECT network, owner FROM networks', key: network, "
                        "fields: {owner: network_owner}, on_missing: error", count=2), fuse)
    assert renamed["out"] == [{"n": 1, "network": 10, "network_owner": "acme"}]
    assert [e["error"] for e in renamed["bad"]] == [
        "no row in table from query \"SELECT network, owner FROM networks\" at "
        f"127.0.0.1:{postgres_server.port}/headrace for the event's key 'network'"]


def test_several_key_columns_and_text_keys(postgres_server):
    execute(postgres_server, "CREATE TABLE prices (shop text, sku int, price numeric)",
            "INSERT INTO prices VALUES ('a', 1, 2.5), ('b', 1, 4)")
    text = graph(postgres_server.dsn, "query: 'SELECT shop, sku, price FROM prices', key: [shop, sku], "
                 "on_missing: drop", count=3).replace('network: "i * 10"', "shop: \"['a', 'b', 'a'][i]\", sku: \"1\"")
    got = run(text)
    assert got["out"] == [{"n": 0, "shop": "a", "sku": 1, "price": 2.5}, {"n": 1, "shop": "b", "sku": 1, "price": 4},
                          {"n": 2, "shop": "a", "sku": 1, "price": 2.5}]


@pytest.mark.parametrize("fuse", [True, False])
def test_a_refresh_picks_up_an_updated_row_within_the_interval(postgres_server, fuse):
    execute(postgres_server, "CREATE TABLE versions (network int, a int, b int)",
            "INSERT INTO versions SELECT k, 0, 0 FROM generate_series(0, 9) k")
    changed_at: list[float] = []

    def update() -> None:
        deadline = time.monotonic() + LIMIT_S
        while len(RECORDED.get("out", ())) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        for version in range(1, 4):  # whole-table updates, each one transaction
            execute(postgres_server, f"UPDATE versions SET a = {version}, b = {version}")
            changed_at.append(time.monotonic())
            time.sleep(0.5)

    text = graph(postgres_server.dsn, "query: 'SELECT * FROM versions', key: network, refresh: 200ms",
                 count=1000, keys="i % 10", rate="rate: 400,")
    got = run(text, fuse, threading.Thread(target=update))
    seen = [(e["a"], e["b"]) for e in got["out"]]
    assert len(seen) == 1000
    assert all(a == b for a, b in seen)  # both fields of one row of one table: never a mix
    versions = [a for a, _ in seen]
    assert versions == sorted(versions)  # never back to an older table
    assert versions[0] == 0 and versions[-1] == 3 and {1, 2} <= set(versions)


def test_refresh_timing_within_the_interval(postgres_server):
    """With events flowing, the updated row is in the table one refresh (and one query) later."""
    execute(postgres_server, "CREATE TABLE t (network int, owner text)", "INSERT INTO t VALUES (10, 'old')")
    table = table_of(graph(postgres_server.dsn, "query: 'SELECT * FROM t', key: network, refresh: 200ms"))
    execute(postgres_server, "UPDATE t SET owner = 'new'")
    began = time.monotonic()
    while table.current()["10"]["owner"] != "new":
        assert time.monotonic() - began < 5.0
        time.sleep(0.01)
    assert time.monotonic() - began < 0.2 + 2.0  # the interval, and a connection and a query (slow CI)


def test_a_failing_refresh_keeps_the_old_table_logs_once_and_recovers(postgres_server, caplog):
    execute(postgres_server, *NETWORKS)
    table = table_of(graph(postgres_server.dsn, "query: 'SELECT network, owner FROM networks', key: network, "
                           "refresh: 1s"))
    clock = ManualClock(0.0)
    table.clock, table.next_refresh = clock, 1.0
    first = table.current()
    where = f"127.0.0.1:{postgres_server.port}/headrace"
    prefix = f"node 'lk' (lookup): table from query \"SELECT network, owner FROM networks\" at {where}"

    execute(postgres_server, "ALTER TABLE networks RENAME TO gone")
    for step in range(1, 4):  # three failed refreshes: the first is logged, the others within the minute not
        clock.advance(1.0)
        assert table.current() is first
        wait_for_refresh(table, step)
        assert table.current() is first
    assert [r.getMessage() for r in caplog.records] == [
        f"{prefix}: refresh failed, the previous table stays: unknown table: relation \"networks\" does not exist "
        "(42P01)"]

    postgres_server.stop()  # a server that went away: the same, and a line again only after a minute
    clock.advance(60.0)
    table.current()
    wait_for_refresh(table, 4)
    assert table.current() is first
    assert caplog.records[-1].getMessage().startswith(
        f"{prefix}: refresh failed (4 in a row), the previous table stays: PostgreSQL at {where} is unreachable: ")
    assert all("secret" not in r.getMessage() for r in caplog.records)

    postgres_server.start()
    execute(postgres_server, "ALTER TABLE gone RENAME TO networks", "UPDATE networks SET owner = 'new'")
    clock.advance(1.0)
    table.current()
    wait_for_refresh(table, 5)
    assert table.current() == {"10": {"owner": "new"}, "20": {"owner": "new"}}
    assert caplog.records[-1].getMessage() == f"{prefix}: refreshing works again after 4 failed refresh(es)"
    assert len(caplog.records) == 3


def test_the_graph_keeps_running_while_the_server_is_down(postgres_server, caplog):
    execute(postgres_server, *NETWORKS)

    def stop_soon() -> None:
        deadline = time.monotonic() + LIMIT_S
        while len(RECORDED.get("out", ())) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        postgres_server.stop()

    text = graph(postgres_server.dsn, "query: 'SELECT network, owner FROM networks', key: network, "
                 "refresh: 100ms", count=800, keys="10", rate="rate: 400,")
    got = run(text, True, threading.Thread(target=stop_soon))
    assert len(got["out"]) == 800 and all(e["owner"] == "acme" for e in got["out"])
    failed = [r.getMessage() for r in caplog.records if "refresh failed" in r.getMessage()]
    assert len(failed) == 1, failed  # then quiet: at most one line a minute
    assert failed[0].startswith("node 'lk' (lookup): table from query") and "secret" not in failed[0]


@pytest.mark.parametrize("query, message", [
    ("SELECT * FROM nowhere", "unknown table: relation \"nowhere\" does not exist (42P01)"),
    ("SELEC 1", "syntax error: syntax error at or near \"SELEC\" (42601)"),
    ("SELECT owner FROM networks", "it returns no key column 'network' (it returns owner)"),
    ("SELECT network, owner FROM networks UNION ALL SELECT 10, 'x'", "row 3: duplicate key (the same as row 1)"),
    ("SELECT network, owner FROM networks UNION ALL SELECT 30, 'x'",
     "row 3: more than max_rows (2) rows; raise max_rows or make the query return fewer"),
    ("SELECT NULL::int AS network", "row 1: key column 'network' is NULL; leave such rows out "
                                    "(WHERE network IS NOT NULL)"),
    ("SELECT 1.5 AS network", "row 1: key column 'network' must be text or a whole number; cast it in the query "
                              "(network::text or network::bigint)"),
])
def test_a_query_that_cannot_be_a_table_stops_the_graph_with_one_line(postgres_server, query, message):
    execute(postgres_server, *NETWORKS)
    with pytest.raises(NodeFailure) as failure:
        build(graph(postgres_server.dsn, f"query: \"{query}\", key: network, max_rows: 2"))
    shown = query if len(query) <= 60 else query[:59] + "…"
    assert str(failure.value) == (f"node 'lk' (lookup): table from query \"{shown}\" at "
                                  f"127.0.0.1:{postgres_server.port}/headrace: {message}")


def test_a_column_named_in_fields_must_be_returned(postgres_server):
    execute(postgres_server, *NETWORKS)
    with pytest.raises(NodeFailure) as failure:
        build(graph(postgres_server.dsn, "query: 'SELECT network, owner FROM networks', key: network, "
                    "fields: {country: c}"))
    assert str(failure.value).endswith("/headrace: it returns no column 'country' (it returns network, owner)")


def test_connection_problems_at_the_start_name_host_and_db_but_no_password(postgres_server):
    wrong = postgres_server.dsn.replace(":secret@", ":hunter22@")
    with pytest.raises(NodeFailure) as failure:
        build(graph(wrong, "query: 'SELECT 1 AS network', key: network"))
    text = str(failure.value)
    assert text.startswith(f"node 'lk' (lookup): table from query \"SELECT 1 AS network\" at "
                           f"127.0.0.1:{postgres_server.port}/headrace: authentication failed; check the user and "
                           "password")
    assert "hunter22" not in text and "\n" not in text
    postgres_server.stop()
    with pytest.raises(NodeFailure) as down:
        build(graph(postgres_server.dsn, "query: 'SELECT 1 AS network', key: network"))
    assert str(down.value).startswith(f"node 'lk' (lookup): table from query \"SELECT 1 AS network\" at "
                                      f"127.0.0.1:{postgres_server.port}/headrace: PostgreSQL at "
                                      f"127.0.0.1:{postgres_server.port}/headrace is unreachable: ")
    assert "secret" not in str(down.value)


def test_the_query_runs_read_only(postgres_server):
    execute(postgres_server, *NETWORKS, "CREATE SEQUENCE ids")
    refused = {}
    for query in ("SELECT nextval('ids') AS network", "DELETE FROM networks RETURNING network"):
        with pytest.raises(NodeFailure) as failure:
            build(graph(postgres_server.dsn, f"query: \"{query}\", key: network"))
        refused[query] = str(failure.value).rsplit("/headrace: ", 1)[1]
    assert refused == {  # a cursor takes only a SELECT, and the transaction is read-only
        "SELECT nextval('ids') AS network": "refused: cannot execute nextval() in a read-only transaction (25006)",
        "DELETE FROM networks RETURNING network": "syntax error: syntax error at or near \"DELETE\" (42601)"}
    with postgres_server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM networks").fetchone() == (2,)
        assert conn.execute("SELECT is_called FROM ids").fetchone() == (False,)


@pytest.mark.parametrize("params, message", [
    ("table: t.csv, query: 'SELECT 1', dsn: x", "`table` and `query` exclude each other"),
    ("key: network", "`lookup` needs a `table` (a CSV or JSON Lines file) or a `query`"),
    ("query: 'SELECT 1'", "`query` needs a `dsn`"),
    ("table: t.csv, refresh: 1s", "`refresh` applies only to a `query`"),
    ("table: t.csv, dsn: x", "`dsn` applies only to a `query`"),
    ("query: 'SELECT 1', dsn: x, format: csv", "`format` applies only to a `table` file"),
    ("query: 'SELECT 1', dsn: x, refresh: 0s", "0s"),
])
def test_where_the_table_comes_from_is_checked_at_load(params, message):
    text = f"""
    version: 2
    nodes:
      src: {{type: generate, with: {{count: 1, fields: {{network: "i"}}}}}}
      lk: {{type: lookup, from: src, with: {{key: network, {params}}}}}
      out: {{type: test.record, from: lk}}
    """.replace("key: network, key: network", "key: network")
    result = load_text("g.yaml", text, registry())
    assert result.plan is None
    assert any(message in p.message for p in result.problems), [p.message for p in result.problems]


def test_the_dsn_password_never_shows_in_the_plan():
    text = graph("postgresql://reader:pw-83ac21@db:5432/app", "query: 'SELECT 1 AS network', key: network")
    result = load_text("g.yaml", text, registry())
    assert result.plan is not None
    shown = json.dumps(printable_plan(result.plan, registry()))
    assert "pw-83ac21" not in shown and "postgresql://reader:****@db:5432/app" in shown


def test_the_dsn_takes_a_secret_variable(postgres_server):
    execute(postgres_server, *NETWORKS)
    dsn = postgres_server.dsn.replace(":secret@", ":${secret:PG_PASSWORD}@")
    result = load_text("g.yaml", textwrap.dedent(graph(dsn, "query: 'SELECT network, owner FROM networks', "
                                                            "key: network", count=2)),
                       registry(), {"PG_PASSWORD": postgres_server.password})
    assert result.plan is not None, [p.message for p in result.problems]
    RECORDED.clear()
    runtime = Runtime(result.plan, registry())
    assert asyncio.run(runtime.run()), runtime.failure
    assert RECORDED["out"] == [{"n": 0, "network": 0}, {"n": 1, "network": 10, "owner": "acme"}]
