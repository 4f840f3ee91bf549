"""`postgres.write`: each batch in chunks of `batch_size` events, one transaction each; `insert`
through COPY, `upsert` through `INSERT ... ON CONFLICT (key) DO UPDATE`.

A chunk the database refuses for a row-level reason (a constraint, a value of the wrong type)
is written again row by row, each row under a savepoint: the refused rows go to `on_error`
with the database's message, the others commit. A lost connection reconnects (`Link`) and
writes the chunk again: at-least-once, since a commit whose answer was lost is repeated
(`upsert` makes that harmless).
"""

from functools import partial
from typing import Any, Final

from adapters.io.postgres.connection import (
    classifier,
    close_quietly,
    connect,
    describe_row_error,
    first_connect,
    is_row_error,
    psycopg,
    where,
)
from adapters.io.postgres.params import UPSERT, PostgresWriteParams
from adapters.io.postgres.values import RowMaker, ValueRefused, kind_of
from adapters.io.reconnect import CLOSED, CONNECTED, Link
from engine.node import AsyncSink, Batch, Event, NodeContext, NodeFailure
from engine.params import expect

COLUMNS_SQL: Final = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")

Columns = tuple[str, ...]
Row = list[object]
Refused = list[tuple[Event, str]]


class PostgresWrite(AsyncSink):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.params = expect(ctx.params, PostgresWriteParams)
        self.where = where(self.params.server.dsn)
        self.link = Link(ctx, classifier(self.where))
        self.conn: Any = None
        self.kinds: dict[str, str] = {}  # the table's columns: what each needs of a value
        self.statements: dict[Columns, Any] = {}
        self.row_makers: dict[Columns, RowMaker] = {}
        self.table_sql: Any = None
        self.rows_written = 0
        self.chunks_retried_by_row = 0

    def health(self) -> dict[str, object]:
        return self.link.health()

    async def open(self) -> None:
        await first_connect(self.link, self._connect)

    async def close(self) -> None:
        self.link.stopping = True
        self.link.state = CLOSED
        conn, self.conn = self.conn, None
        await close_quietly(conn)

    async def _connect(self) -> None:
        await close_quietly(self.conn)
        self.conn = None
        pg = psycopg()
        self.conn = await connect(self.params.server, self.ctx)
        self.table_sql = pg.sql.Identifier(*self.params.table.split(".", 1))
        async with self.conn.cursor() as cur:
            await cur.execute(COLUMNS_SQL, (self.table_sql.as_string(self.conn),))
            self.kinds = {name: kind_of(type_name, category) for name, type_name, category in await cur.fetchall()}
        self.row_makers.clear()  # the table may have changed while the connection was down
        self._check()

    def _check(self) -> None:
        """Names the node's parameters use must be the table's: else nothing can be written."""
        params = self.params
        for what, names in (("columns", params.columns), ("key", params.key)):
            missing = [name for name in names if name not in self.kinds]
            if missing:
                raise NodeFailure(f"node '{self.ctx.name}': PostgreSQL at {self.where}: table {params.table} has no "
                                  f"column {', '.join(repr(n) for n in missing)} (`{what}`)")
        if params.columns and params.mode == UPSERT and not set(params.key) <= set(params.columns):
            raise NodeFailure(f"node '{self.ctx.name}': `key` must be among `columns`")

    async def write(self, batch: Batch) -> None:
        size = max(1, self.params.batch_size)
        for at in range(0, len(batch), size):
            if self.link.state != CONNECTED:  # the rows are built from the table's columns
                await self.link.call(_nothing, self._connect)
            groups, refused = self._rows(batch[at:at + size])
            if groups:
                refused += await self.link.call(partial(self._write_chunk, groups), self._connect)
            for event, message in refused:
                self.give_up([event], message)

    def _rows(self, chunk: Batch) -> tuple[dict[Columns, list[tuple[Event, Row]]], Refused]:
        """The chunk as rows, grouped by the columns they fill (one COPY or statement per group;
        with `columns` unset, an event's own fields, so the others keep their defaults)."""
        groups: dict[Columns, list[tuple[Event, Row]]] = {}
        refused: Refused = []
        fixed = self.params.columns
        for event in chunk:
            columns = fixed or tuple(event)
            maker = self.row_makers.get(columns)
            if maker is None:
                problem = self._columns_problem(columns)
                if problem:
                    refused.append((event, problem))
                    continue
                maker = self.row_makers[columns] = RowMaker(columns, [self.kinds[c] for c in columns],
                                                            copy=self.params.mode != UPSERT)
            try:
                row = maker.row(event)
            except ValueRefused as refusal:
                refused.append((event, f"row refused: {refusal}"))
                continue
            groups.setdefault(columns, []).append((event, row))
        return groups, refused

    def _columns_problem(self, columns: Columns) -> str:
        unknown = [c for c in columns if c not in self.kinds]
        if unknown:
            return f"row refused: table {self.params.table} has no column {', '.join(repr(c) for c in unknown)}"
        if not columns:
            return "row refused: the event has no fields"
        missing = [k for k in self.params.key if k not in columns] if self.params.mode == UPSERT else []
        if missing:
            return f"row refused: the event has no key field {', '.join(repr(k) for k in missing)}"
        return ""

    async def _write_chunk(self, groups: dict[Columns, list[tuple[Event, Row]]]) -> Refused:
        """One transaction; when a row is refused, every row again under its own savepoint."""
        pg = psycopg()
        try:
            async with self.conn.transaction():
                for columns, rows in groups.items():
                    await self._send(columns, [row for _, row in rows])
            self.rows_written += sum(len(rows) for rows in groups.values())
            return []
        except pg.Error as error:
            if not is_row_error(error):
                raise
        self.chunks_retried_by_row += 1
        refused: Refused = []
        async with self.conn.transaction():
            for columns, rows in groups.items():
                for event, row in rows:
                    try:
                        async with self.conn.transaction():  # a savepoint
                            await self._send(columns, [row])
                    except pg.Error as error:
                        if not is_row_error(error):
                            raise
                        refused.append((event, describe_row_error(error)))
        self.rows_written += sum(len(rows) for rows in groups.values()) - len(refused)
        return refused

    async def _send(self, columns: Columns, rows: list[Row]) -> None:
        statement = self.statements.get(columns)
        if statement is None:
            statement = self.statements[columns] = self._statement(columns)
        async with self.conn.cursor() as cur:
            if self.params.mode == UPSERT:
                await cur.executemany(statement, rows)
                return
            async with cur.copy(statement) as copy:
                for row in rows:
                    await copy.write_row(row)

    def _statement(self, columns: Columns) -> Any:
        sql = psycopg().sql
        names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        if self.params.mode != UPSERT:
            return sql.SQL("COPY {} ({}) FROM STDIN").format(self.table_sql, names)
        key = self.params.key
        updates = [c for c in columns if c not in key]
        action = sql.SQL("DO NOTHING") if not updates else sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates))
        return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
            self.table_sql, names, sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            sql.SQL(", ").join(sql.Identifier(k) for k in key), action)


async def _nothing() -> None:
    """An operation that only needs the connection `Link.call` makes first."""
