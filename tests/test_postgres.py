"""`postgres.write` and `postgres.read` against a real PostgreSQL (tests/servers.py), in-process:
round trips, upsert, refused rows, permanent errors, a server restart, the value mapping and
the bound on what a reader fetches ahead. Killed `engine run` processes: test_postgres_crash.py."""

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.runtime import Runtime
from tests.runtime_support import RECORDED, build, counted

LIMIT_S = 60.0


def graph(body: str) -> str:
    return "version: 2\nnodes:\n" + body


def write_lines(path: Path, events: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def rows(server, sql: str) -> list[tuple]:
    with server.connect() as conn:
        return conn.execute(sql).fetchall()


def execute(server, *statements: str) -> None:
    with server.connect() as conn:
        for statement in statements:
            conn.execute(statement)


def run(text: str) -> Runtime:
    """Run a graph whose sources end, to its end."""
    runtime = build(text)

    async def go() -> None:
        await asyncio.wait_for(runtime.run(), LIMIT_S)
    asyncio.run(go())
    return runtime


def run_until(text: str, done: Callable[[], bool], during: Callable[[], None] | None = None) -> Runtime:
    """Run a graph with a polling source until `done()`, then stop it. `during` runs once, in
    a thread, while the graph runs (a server restart)."""
    runtime = build(text)

    async def go() -> None:
        task = asyncio.ensure_future(runtime.run())
        helper = asyncio.ensure_future(asyncio.to_thread(during)) if during else None
        deadline = time.monotonic() + LIMIT_S
        while not done() and not task.done():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)
        runtime.request_stop()
        await asyncio.wait_for(task, LIMIT_S)
        if helper:
            await helper
    asyncio.run(go())
    return runtime


def test_insert_then_read_back_round_trip(postgres_server, tmp_path):
    execute(postgres_server, "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric)")
    events = [{"id": i, "customer": f"c{i % 7}", "total": i * 1.5} for i in range(2500)]
    path = write_lines(tmp_path / "in.jsonl", events)
    runtime = run(graph(f"""  src: {{type: file.read, with: {{path: "{path}"}}}}
  db: {{type: postgres.write, from: src, with: {{dsn: "{postgres_server.dsn}", table: orders, batch_size: 1000}}}}
"""))
    assert runtime.failure == "" or runtime.failure is None
    totals = rows(postgres_server, "SELECT count(*), sum(id), sum(total) FROM orders")
    assert totals == [(2500, sum(range(2500)), sum(i * 1.5 for i in range(2500)))]
    health = runtime.runners["db"].impl.health()
    assert health == {"connection": "closed", "reconnects": 0, "last_error": ""}  # closed at the end

    read = run_until(graph(f"""  src:
    type: postgres.read
    with:
      dsn: "{postgres_server.dsn}"
      query: "SELECT * FROM orders WHERE id > %(cursor)s ORDER BY id LIMIT 1000"
      cursor: {{field: id, start: -1}}
      poll_interval: 50ms
  out: {{type: test.record, from: src}}
"""), lambda: len(RECORDED.get("out", [])) >= 2500)
    assert RECORDED["out"] == events
    assert read.runners["src"].impl.position() == '{"cursor": 2499}'


def test_upsert_keeps_one_row_per_key_with_the_last_values(postgres_server, tmp_path):
    execute(postgres_server, "CREATE TABLE totals (k int PRIMARY KEY, n int NOT NULL, note text DEFAULT 'd')")
    events = [{"k": i % 10, "n": i} for i in range(1000)]
    path = write_lines(tmp_path / "in.jsonl", events)
    run(graph(f"""  src: {{type: file.read, with: {{path: "{path}"}}}}
  db: {{type: postgres.write, from: src, with: {{dsn: "{postgres_server.dsn}", table: totals, mode: upsert,
        key: k, batch_size: 64}}}}
"""))
    assert rows(postgres_server, "SELECT k, n, note FROM totals ORDER BY k") == [(k, 990 + k, "d") for k in range(10)]


def test_a_refused_row_is_dead_lettered_with_the_database_message_and_the_rest_lands(postgres_server, tmp_path):
    execute(postgres_server, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int CHECK (qty >= 0))")
    events = [{"id": i, "name": f"n{i}", "qty": i} for i in range(10)]
    events[3] = {"id": 3, "name": None, "qty": 1}  # NOT NULL
    events[5] = {"id": 5, "name": "n5", "qty": -1}  # CHECK
    events[7] = {"id": 7, "name": "n7", "qty": "seven"}  # not an integer
    events[8] = {"id": 8, "name": "n8", "qty": 8, "colour": "red"}  # no such column
    path = write_lines(tmp_path / "in.jsonl", events)
    runtime = run(graph(f"""  src: {{type: file.read, with: {{path: "{path}"}}}}
  db:
    type: postgres.write
    from: src
    on_error: dead_letter
    with: {{dsn: "{postgres_server.dsn}", table: items}}
  rejects: {{type: test.record, from: db.errors}}
"""))
    assert rows(postgres_server, "SELECT id FROM items ORDER BY id") == [(i,) for i in (0, 1, 2, 4, 6, 9)]
    refused = {r["event"]["id"]: r["error"] for r in RECORDED["rejects"]}
    assert sorted(refused) == [3, 5, 7, 8]
    assert 'null value in column "name"' in refused[3] and "(23502)" in refused[3]
    assert 'violates check constraint "items_qty_check"' in refused[5] and "(23514)" in refused[5]
    assert 'invalid input syntax for type integer: "seven"' in refused[7] and "(22P02)" in refused[7]
    assert refused[8] == "row refused: table items has no column 'colour'"
    assert all(r["node"] == "db" for r in RECORDED["rejects"])
    assert counted(runtime.stats()["nodes"]["db"], "in", "errors") == {"in": 10, "errors": 4}


def test_a_wrong_password_fails_at_once_with_one_line_and_no_password(postgres_server):
    dsn = postgres_server.dsn.replace(":secret@", ":hunter22@")
    started = time.monotonic()
    runtime = run(graph(f"""  src: {{type: generate, with: {{count: 10, fields: {{id: i}}}}}}
  db: {{type: postgres.write, from: src, with: {{dsn: "{dsn}", table: t}}}}
"""))
    assert time.monotonic() - started < 10  # no retry loop
    failure = runtime.failure
    assert failure.startswith(f"node 'db': PostgreSQL at 127.0.0.1:{postgres_server.port}/headrace: authentication "
                              "failed; check the user and password")
    assert 'password authentication failed for user "headrace"' in failure
    assert "\n" not in failure and "hunter22" not in failure


def test_an_unknown_table_fails_with_one_line(postgres_server):
    runtime = run(graph(f"""  src: {{type: generate, with: {{count: 10, fields: {{id: i}}}}}}
  db: {{type: postgres.write, from: src, with: {{dsn: "{postgres_server.dsn}", table: nowhere}}}}
"""))
    assert runtime.failure == (f"node 'db': PostgreSQL at 127.0.0.1:{postgres_server.port}/headrace: unknown table: "
                               'relation "nowhere" does not exist (42P01)')


@pytest.mark.parametrize(("query", "expected"), [
    ("SELECT * FROM nowhere WHERE id > %(cursor)s", 'unknown table: relation "nowhere" does not exist (42P01)'),
    ("SELECT nope FROM t WHERE id > %(cursor)s", 'unknown column: column "nope" does not exist (42703)'),
    ("SELEC id FROM t WHERE id > %(cursor)s", 'syntax error: syntax error at or near "SELEC" (42601)'),
    ("SELECT id AS other FROM t WHERE id > %(cursor)s", None),
])
def test_a_bad_query_fails_the_reader_with_one_line(postgres_server, query, expected):
    execute(postgres_server, "CREATE TABLE t (id int)")
    runtime = run(graph(f"""  src:
    type: postgres.read
    with: {{dsn: "{postgres_server.dsn}", query: "{query}", cursor: {{field: id, start: 0}}}}
  out: {{type: test.record, from: src}}
"""))
    where = f"node 'src': PostgreSQL at 127.0.0.1:{postgres_server.port}/headrace: "
    assert runtime.failure == (where + expected if expected else
                               "node 'src': the rows of `query` have no column 'id' (`cursor.field`); they have other")


def test_values_map_to_json(postgres_server):
    execute(postgres_server, """CREATE TABLE v (id int, n numeric, f numeric, big numeric, d double precision,
        ts timestamptz, plain timestamp, day date, j jsonb, b bytea, flag bool, t text, nothing text, arr int[])""",
            """INSERT INTO v VALUES (1, 42, 2.5, 123456789012345678901234567890, 'NaN',
        '2024-05-01 12:00:00.25+02', '2024-05-01 12:00:00', '2024-05-01', '{"a": [1, {"b": null}]}', '\\x00ff10',
        true, 'héllo', NULL, '{1,2}')""")
    run_until(graph(f"""  src:
    type: postgres.read
    with: {{dsn: "{postgres_server.dsn}", query: "SELECT * FROM v WHERE id > %(cursor)s",
           cursor: {{field: id, start: 0}}}}
  out: {{type: test.record, from: src}}
"""), lambda: bool(RECORDED.get("out")))
    assert RECORDED["out"] == [{
        "id": 1, "n": 42, "f": 2.5, "big": 123456789012345678901234567890, "d": "NaN",
        "ts": "2024-05-01T10:00:00.250000Z", "plain": "2024-05-01T12:00:00", "day": "2024-05-01",
        "j": {"a": [1, {"b": None}]}, "b": "AP8Q", "flag": True, "t": "héllo", "nothing": None, "arr": [1, 2]}]


def test_values_written_come_back_the_same(postgres_server, tmp_path):
    execute(postgres_server, """CREATE TABLE w (id int, n numeric, ts timestamptz, j jsonb, jt json, b bytea,
        flag bool, t text, obj text, arr text[], nothing int)""")
    event = {"id": 1, "n": 2.5, "ts": "2024-05-01T10:00:00.25Z", "j": {"a": [1, "x\ty"]}, "jt": "just text",
             "b": "AP8Q", "flag": False, "t": "tab\there\nand \\ backslash", "obj": {"k": 1},
             "arr": ["a b", 'q"uote', None], "nothing": None}
    path = write_lines(tmp_path / "in.jsonl", [event])
    run(graph(f"""  src: {{type: file.read, with: {{path: "{path}"}}}}
  db: {{type: postgres.write, from: src, with: {{dsn: "{postgres_server.dsn}", table: w}}}}
"""))
    (row,) = rows(postgres_server, "SELECT n, ts::text, j, jt, b, flag, t, obj, arr, nothing FROM w")
    assert row[0] == 2.5 and row[1] == "2024-05-01 10:00:00.25+00"
    assert row[2] == {"a": [1, "x\ty"]} and row[3] == "just text"
    assert bytes(row[4]) == b"\x00\xff\x10" and row[5] is False
    assert row[6] == event["t"] and row[7] == '{"k":1}' and row[8] == ["a b", 'q"uote', None] and row[9] is None


def test_the_sink_reconnects_after_a_server_restart_and_loses_nothing(postgres_server):
    execute(postgres_server, "CREATE TABLE s (id int PRIMARY KEY)")
    count = 6000

    def restart() -> None:
        while not rows(postgres_server, "SELECT 1 FROM s LIMIT 1"):
            time.sleep(0.02)
        postgres_server.restart()

    runtime = build(graph(f"""  src: {{type: generate, with: {{count: {count}, rate: 3000, fields: {{id: i}}}}}}
  db: {{type: postgres.write, from: src, with: {{dsn: "{postgres_server.dsn}", table: s, mode: upsert, key: id,
        batch_size: 100}}}}
"""))

    async def go() -> bool:
        helper = asyncio.ensure_future(asyncio.to_thread(restart))
        ok = await asyncio.wait_for(runtime.run(), LIMIT_S)
        await helper
        return ok
    assert asyncio.run(go()), runtime.failure
    assert rows(postgres_server, "SELECT count(*), min(id), max(id) FROM s") == [(count, 0, count - 1)]
    health = runtime.runners["db"].impl.health()
    assert health["reconnects"] >= 1 and health["last_error"]


def test_the_reader_reconnects_after_a_server_restart_and_goes_on_from_its_cursor(postgres_server):
    execute(postgres_server, "CREATE TABLE r (id int PRIMARY KEY)", "INSERT INTO r SELECT generate_series(1, 500)")
    restarted = []

    def restart_then_add() -> None:
        while len(RECORDED.get("out", [])) < 500:
            time.sleep(0.02)
        postgres_server.restart()
        execute(postgres_server, "INSERT INTO r SELECT generate_series(501, 800)")
        restarted.append(True)

    runtime = run_until(graph(f"""  src:
    type: postgres.read
    with: {{dsn: "{postgres_server.dsn}", query: "SELECT id FROM r WHERE id > %(cursor)s ORDER BY id",
           cursor: {{field: id, start: 0}}, poll_interval: 20ms, batch_size: 100}}
  out: {{type: test.record, from: src}}
"""), lambda: len(RECORDED.get("out", [])) >= 800, restart_then_add)
    assert [e["id"] for e in RECORDED["out"]] == list(range(1, 801))  # on from 500, not from the start
    assert runtime.runners["src"].impl.health()["reconnects"] >= 1


def test_a_slow_sink_bounds_what_the_reader_fetches_ahead(postgres_server):
    execute(postgres_server, "CREATE TABLE big (id int PRIMARY KEY, pad text)",
            "INSERT INTO big SELECT i, repeat('x', 100) FROM generate_series(1, 50000) i")
    batch, capacity = 200, 256
    seen: list[int] = []

    def check() -> bool:
        source = runtime.runners["src"].impl
        seen.append(source.rows_fetched - len(RECORDED.get("out", [])))
        return len(RECORDED.get("out", [])) >= 3000

    runtime = build(graph(f"""  src:
    type: postgres.read
    with: {{dsn: "{postgres_server.dsn}", query: "SELECT * FROM big WHERE id > %(cursor)s ORDER BY id",
           cursor: {{field: id, start: 0}}, batch_size: {batch}}}
  slow: {{type: test.slow, from: {{node: src, edge: {{capacity: {capacity}}}}}, with: {{per_pass: 7}}}}
  out: {{type: test.record, from: {{node: slow, edge: {{capacity: {capacity}}}}}}}
"""))

    async def go() -> None:
        task = asyncio.ensure_future(runtime.run())
        while not check():
            assert not task.done(), runtime.failure
            await asyncio.sleep(0.001)
        runtime.request_stop()
        await asyncio.wait_for(task, LIMIT_S)
    asyncio.run(go())
    # Ahead of the sink: at most the two edges, the slow node's held batch and the one read.
    assert max(seen) <= 2 * capacity + 2 * batch + 7, max(seen)
    assert runtime.runners["src"].impl.rows_fetched < 10000  # nowhere near the 50000 rows


def test_a_server_that_is_down_is_retried_and_a_stop_ends_the_wait(postgres_server):
    dsn = postgres_server.dsn
    postgres_server.stop()
    runtime = build(graph(f"""  src: {{type: generate, with: {{count: 10, fields: {{id: i}}}}}}
  db: {{type: postgres.write, from: src, with: {{dsn: "{dsn}", table: t}}}}
"""))

    async def go() -> bool:
        task = asyncio.ensure_future(runtime.run())
        sink = runtime.runners["db"].impl
        deadline = time.monotonic() + LIMIT_S
        while sink.health()["reconnects"] < 2:  # still trying, not failed
            assert not task.done() and time.monotonic() < deadline, runtime.failure
            await asyncio.sleep(0.02)
        assert sink.health()["connection"] == "reconnecting"
        assert "Connection refused" in str(sink.health()["last_error"])
        runtime.request_stop()
        runtime.request_stop()
        runtime.fail("stopped")  # what a second Ctrl-C does: the sink gives up its wait
        return await asyncio.wait_for(task, 10)
    assert asyncio.run(go()) is False
