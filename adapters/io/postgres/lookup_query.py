"""The reference table of a `lookup` node read from a PostgreSQL query (`query:` and `dsn:`).

The first load happens when the node is built: a query that cannot run (server unreachable,
wrong password, bad SQL) or whose rows cannot be a table (a missing key column, a duplicate
key, more rows than `max_rows`) stops the graph before it starts, with one line naming the
node, the query and `host:port/db` (never the DSN, which may hold a password).

Afterwards `current()` starts a refresh in a thread at most once per `refresh` (of the
graph's clock), so neither the event loop nor the scheduler waits for the database; the
new rows replace the old ones in one assignment once complete, so every batch is enriched
from one version of the table. A refresh that fails keeps the previous table, logs one line
(then at most one a minute while it keeps failing, and one when it works again) and is
tried again at the next interval. Each load opens its own short connection: nothing is held
open between refreshes, and a restarted server is simply met at the next one.

Values are mapped as `postgres.read` maps them (values.py `to_json`); keys compare as the
file tables' do (engine/lookup.py `key_text`): text, or a whole number as its digits.
"""

import logging
import threading
from typing import Any, Final

from adapters.io.postgres.connection import classifier, first_line, psycopg, where
from adapters.io.postgres.params import Server, connect_options, seconds
from adapters.io.postgres.values import to_json
from engine.lookup import DEFAULT_REFRESH, Lookup, LookupParams, Rows, TableSource, key_text
from engine.node import Clock, Event, NodeContext, NodeFailure, Transform
from engine.params import expect

LOG: Final = logging.getLogger("headrace")
FETCH_ROWS: Final = 10_000  # rows per round trip of the server-side cursor
LOG_EVERY_S: Final = 60.0  # while refreshes keep failing, one line a minute at most
# A query that runs longer is cancelled (a failed load): a hung refresh must not stop the
# ones after it for good. `refresh` when longer.
STATEMENT_TIMEOUT_S: Final = 60.0
SHOWN_QUERY: Final = 60  # characters of the query that messages show


class QueryProblem(Exception):
    """The query's rows cannot be a table; the message is one line (it names the row)."""


def short_query(query: str) -> str:
    """The query as messages name it: one line, at most SHOWN_QUERY characters."""
    text = " ".join(query.split())
    return text if len(text) <= SHOWN_QUERY else text[:SHOWN_QUERY - 1] + "…"


def build_rows(names: list[str], rows: Any, params: LookupParams) -> Rows:
    """The query's rows as the table, keyed, holding the fields they add (the rules of file
    tables, with rows numbered in the order the query returned them). Raises QueryProblem."""
    key = params.key
    chosen = params.fields
    for column in key + tuple(column for column, _ in chosen or ()):
        if column not in names:
            kind = "key column" if column in key else "column"
            raise QueryProblem(f"it returns no {kind} '{column}' (it returns {', '.join(names) or 'none'})")
    positions = [names.index(column) for column in key]
    table: Rows = {}
    first_row: dict[object, int] = {}
    for number, row in enumerate(rows, 1):
        parts: list[str] = []
        for column, at in zip(key, positions, strict=True):
            part = key_text(to_json(row[at]))
            if part is None:
                if row[at] is None:
                    raise QueryProblem(f"row {number}: key column '{column}' is NULL; leave such rows out "
                                       f"(WHERE {column} IS NOT NULL)")
                raise QueryProblem(f"row {number}: key column '{column}' must be text or a whole number; "
                                   f"cast it in the query ({column}::text or {column}::bigint)")
            parts.append(part)
        row_key: object = parts[0] if len(parts) == 1 else tuple(parts)
        if row_key in first_row:
            raise QueryProblem(f"row {number}: duplicate key (the same as row {first_row[row_key]})")
        if len(table) >= params.max_rows:
            raise QueryProblem(f"row {number}: more than max_rows ({params.max_rows}) rows; "
                               "raise max_rows or make the query return fewer")
        first_row[row_key] = number
        record = dict(zip(names, row, strict=True))
        if chosen is None:
            added: Event = {name: to_json(value) for name, value in record.items() if name not in key}
        else:
            added = {new: to_json(record[column]) for column, new in chosen}
        table[row_key] = added
    return table


def load_query(params: LookupParams, application: str) -> Rows:
    """Every row of the query, as the table. Raises QueryProblem or psycopg's errors."""
    pg = psycopg()
    server = Server(params.dsn)
    timeout_s = max(STATEMENT_TIMEOUT_S, seconds(params.refresh, DEFAULT_REFRESH))
    with pg.connect(params.dsn, autocommit=True, application_name=application, **connect_options(server)) as conn:
        conn.execute("SET TIME ZONE 'UTC'")  # timestamptz as `...Z`, as postgres.read reads it
        conn.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
        # Read only, and through a server-side cursor: a table over max_rows is refused
        # after max_rows + 1 rows, not after all of them arrived.
        with conn.transaction(), conn.cursor(name="headrace_lookup") as cur:
            conn.execute("SET TRANSACTION READ ONLY")
            cur.itersize = FETCH_ROWS
            cur.execute(params.query)
            names = [column.name for column in cur.description or ()]
            return build_rows(names, cur, params)


class QueryTable(TableSource):
    def __init__(self, params: LookupParams, ctx: NodeContext) -> None:
        super().__init__()
        self.params = params
        self.ctx = ctx
        self.clock: Clock = ctx.clock
        self.server_where = where(params.dsn)
        self.classify = classifier(self.server_where)
        self.application = f"headrace {ctx.name}"
        self.name = f"query \"{short_query(params.query)}\" at {self.server_where}"
        self.prefix = f"node '{ctx.name}' (lookup): table from {self.name}"
        self.refresh_s = max(0.001, seconds(params.refresh, DEFAULT_REFRESH))
        try:
            self.rows = load_query(params, self.application)
        except (QueryProblem, psycopg().Error, OSError) as exc:
            raise NodeFailure(ctx.mask(f"{self.prefix}: {self.explain(exc)}")) from None
        self.next_refresh = self.clock.now() + self.refresh_s
        self.lock = threading.Lock()
        self.refreshed: Rows | None = None  # rows a refresh finished, to take
        self.loading = False
        self.refreshes = 0  # loads after the first, done or failed: tests and the log read them
        self.failures = 0  # refreshes failed in a row
        self.logged_at = 0.0  # when a failure was last logged (time.monotonic via the clock)

    def describe(self) -> str:
        return f"table from {self.name}"

    def explain(self, error: BaseException) -> str:
        """One line for a failed load: the server's reason, never the DSN."""
        if isinstance(error, QueryProblem):
            return str(error)
        said: str | None = self.classify(error)
        if said is None:  # unreachable, restarting, a timeout: the server may come back
            state = getattr(error, "sqlstate", None)
            if state:  # said by the server: a cancelled (timed out) query, a conflict
                return f"PostgreSQL at {self.server_where}: {first_line(error)} ({state})"
            return f"PostgreSQL at {self.server_where} is unreachable: {first_line(error)}"
        return said.removeprefix(f"PostgreSQL at {self.server_where}: ")

    def current(self) -> Rows:
        if self.refreshed is not None:
            with self.lock:
                done, self.refreshed = self.refreshed, None
            if done is not None:
                self.rows = done  # the whole new table at once
        now = self.clock.now()
        if now >= self.next_refresh and not self.loading:
            self.next_refresh = now + self.refresh_s
            self.loading = True
            threading.Thread(target=self._refresh, name=f"lookup {self.ctx.name}", daemon=True).start()
        return self.rows

    def _refresh(self) -> None:
        try:
            rows = load_query(self.params, self.application)
            with self.lock:
                self.refreshed = rows
            if self.failures:
                LOG.warning(self.ctx.mask(f"{self.prefix}: refreshing works again after "
                                          f"{self.failures} failed refresh(es)"))
            self.failures = 0
        except Exception as exc:  # whatever went wrong, the previous table stays
            self.failures += 1
            now = self.clock.now()
            if self.failures == 1 or now - self.logged_at >= LOG_EVERY_S:
                self.logged_at = now
                again = f" ({self.failures} in a row)" if self.failures > 1 else ""
                LOG.warning(self.ctx.mask(f"{self.prefix}: refresh failed{again}, the previous table stays: "
                                          f"{self.explain(exc)}"))
        finally:
            self.refreshes += 1
            self.loading = False


def make_query_lookup(ctx: NodeContext) -> Transform:
    return Lookup(ctx, QueryTable(expect(ctx.params, LookupParams), ctx))
