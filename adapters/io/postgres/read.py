"""`postgres.read`: incremental polling. Each `read` runs `query` with `%(cursor)s` bound to the
`cursor.field` value of the last row emitted and takes at most `batch_size` rows of it from a
server-side cursor, so however many rows the query would return, no more than one batch is
ever held here; a `read` that finds none waits `poll_interval` and asks again.

The cursor is the source's resumable position: with a durable output edge it is committed
with the rows it follows, so a restart asks for exactly the rows after those (at-least-once:
rows on an edge not yet committed are read again). Nothing is acknowledged to the database.
"""

import asyncio
import json
from typing import Any, Final

from adapters.io.postgres.connection import classifier, close_quietly, connect, first_connect, where
from adapters.io.postgres.params import POLL_INTERVAL, PostgresReadParams, seconds
from adapters.io.postgres.values import to_json
from adapters.io.reconnect import CLOSED, Link
from engine.node import AsyncSource, Batch, Failures, NodeContext, NodeFailure
from engine.params import expect

CURSOR_NAME: Final = "headrace_read"


class PostgresRead(AsyncSource):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        self.params = expect(ctx.params, PostgresReadParams)
        self.where = where(self.params.server.dsn)
        self.link = Link(ctx, classifier(self.where))
        self.conn: Any = None
        self.field = self.params.cursor.field
        self.cursor: object = self.params.cursor.start  # bound to %(cursor)s
        self.poll_s = max(0.001, seconds(self.params.poll_interval, POLL_INTERVAL))
        self.batch_size = max(1, self.params.batch_size)
        self.rows_fetched = 0  # all rows taken from the server: tests bound it by what was handed on
        self.queries = 0

    def health(self) -> dict[str, object]:
        return self.link.health()

    def position(self) -> str:
        return json.dumps({"cursor": to_json(self.cursor)})

    def resume(self, position: str) -> None:
        try:
            saved = json.loads(position)
        except ValueError:
            return
        if isinstance(saved, dict) and "cursor" in saved:
            # A timestamp comes back as its RFC 3339 text: bound untyped, the server reads
            # it as the column's type.
            self.cursor = saved["cursor"]

    async def open(self) -> None:
        await first_connect(self.link, self._connect)

    def done_reading(self) -> None:
        self.link.stopping = True

    async def close(self) -> None:
        self.link.stopping = True
        self.link.state = CLOSED
        conn, self.conn = self.conn, None
        await close_quietly(conn)

    async def _connect(self) -> None:
        await close_quietly(self.conn)
        self.conn = None
        self.conn = await connect(self.params.server, self.ctx)
        await self._check()

    async def _check(self) -> None:
        """Declaring the cursor parses and plans the query: bad SQL, an unknown table or
        column fail the graph at the start, and the rows must have the cursor's field."""
        async with self.conn.transaction(), self.conn.cursor(name=CURSOR_NAME) as cur:
            await cur.execute(self.params.query, {"cursor": self.cursor})
            names = [column.name for column in cur.description or ()]
        if self.field not in names:
            raise NodeFailure(f"node '{self.ctx.name}': the rows of `query` have no column '{self.field}' "
                              f"(`cursor.field`); they have {', '.join(names) or 'none'}")

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        while True:
            events = await self.link.call(self._fetch, self._connect)
            if events:
                outs[0].extend(events)
                return True
            await asyncio.sleep(self.poll_s)

    async def _fetch(self) -> Batch:
        async with self.conn.transaction(), self.conn.cursor(name=CURSOR_NAME) as cur:
            await cur.execute(self.params.query, {"cursor": self.cursor})
            rows = await cur.fetchmany(self.batch_size)
            names = [column.name for column in cur.description or ()]
        self.queries += 1
        if not rows:
            return []
        self.rows_fetched += len(rows)
        last = rows[-1][names.index(self.field)]
        if last is None:
            raise NodeFailure(f"node '{self.ctx.name}': the cursor column '{self.field}' of a row is NULL; "
                              "the query must leave out rows without one")
        self.cursor = last
        return [{name: to_json(value) for name, value in zip(names, row, strict=True)} for row in rows]
