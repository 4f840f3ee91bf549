"""Connecting to PostgreSQL, and which of its errors are permanent, transient or row-level.

SQLSTATE classes decide where the server gave one. Errors while connecting carry none (libpq
reports them as text), so their wording decides: libpq's messages are stable and English
unless the server's `lc_messages` says otherwise, in which case such an error reads as
transient and is retried (the stats show it) rather than failing the graph.
"""

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

from adapters.io.client import require
from adapters.io.postgres.params import Server, connect_options
from adapters.io.reconnect import CLOSED, CONNECTED, RECONNECTING, Link
from engine.node import NodeContext, NodeFailure

# Nothing changes by waiting: a wrong password, an unknown table or column, bad SQL, no grant.
PERMANENT_STATES: Final = {
    "28P01": "authentication failed; check the user and password",
    "28000": "the server refused this user (pg_hba.conf); check the user, the database and TLS",
    "3D000": "no such database",
    "42P01": "unknown table",
    "42703": "unknown column",
    "42601": "syntax error",
    "42501": "insufficient privilege; GRANT the role what it needs",
    "42P10": "`key` is not a unique index or constraint of the table",
}
# Worth retrying: the server going away or restarting, a conflict between transactions.
TRANSIENT_CLASSES: Final = ("08", "53", "57", "40")
# The value of one row: the row is refused, the rest of the batch can still land.
ROW_CLASSES: Final = ("22", "23")
PERMANENT_CONNECT_WORDS: Final = (
    ("password authentication failed", "authentication failed; check the user and password"),
    ("no password supplied", "the server wants a password; add one to `dsn` or set `password`"),
    ("no pg_hba.conf entry", "the server refused this user (pg_hba.conf); check the user, the database and TLS"),
    ("does not exist", ""),  # database or role: the server's own words say which
    ("certificate", "TLS failed"),
    ("does not support ssl", "TLS failed"),
    ("invalid dsn", "`dsn` is not a valid connection string or URL"),
    ("invalid connection option", "`dsn` has an option libpq does not know"),
    ("invalid sslmode", "`dsn` has an invalid sslmode"),
)


def psycopg() -> Any:
    return require("psycopg", "postgres", "postgres")


def where(dsn: str) -> str:
    """`host:port/db` for messages: never the DSN itself, which may hold a password."""
    try:
        info = psycopg().conninfo.conninfo_to_dict(dsn)
    except Exception:
        return "the server in `dsn`"
    host = str(info.get("host") or "localhost")
    return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"


def first_line(error: BaseException) -> str:
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def is_row_error(error: BaseException) -> bool:
    """A value of one row was refused (a constraint, a type): the others may still pass."""
    state = getattr(error, "sqlstate", None)
    if state:
        return str(state)[:2] in ROW_CLASSES
    pg = psycopg()
    return isinstance(error, (pg.DataError, pg.IntegrityError))  # refused client-side (a NUL in text)


def describe_row_error(error: BaseException) -> str:
    state = getattr(error, "sqlstate", None)
    diag = getattr(error, "diag", None)
    detail = getattr(diag, "message_detail", None) if diag is not None else None
    text = first_line(error) + (f" — {detail.splitlines()[0]}" if detail else "")
    return f"row refused: {text}" + (f" ({state})" if state else "")


def classifier(server_where: str) -> Any:
    """`classify` for `Link`: None when the error is transient, else the line to fail with."""

    def classify(error: BaseException) -> str | None:
        pg = psycopg()
        if not isinstance(error, pg.Error):
            return None if isinstance(error, OSError | TimeoutError) else f"unexpected {type(error).__name__}: {error}"
        state = error.sqlstate
        if state:
            state = str(state)
            if state[:2] in TRANSIENT_CLASSES:
                return None
            what = PERMANENT_STATES.get(state, "refused")
            return f"PostgreSQL at {server_where}: {what}: {first_line(error)} ({state})"
        if isinstance(error, pg.OperationalError | pg.InterfaceError):
            text = str(error).lower()
            for words, what in PERMANENT_CONNECT_WORDS:
                if words in text:
                    reason = _reason(error)
                    return f"PostgreSQL at {server_where}: " + (f"{what} ({reason})" if what else reason)
            return None  # refused, reset, timed out, shutting down: reconnect
        return f"PostgreSQL at {server_where}: {first_line(error)}"

    return classify


def _reason(error: BaseException) -> str:
    """libpq's own reason from a connection error (after `FATAL:`), without its preamble."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    for mark in ("FATAL:", "failed:"):
        if mark in text:
            text = text.rsplit(mark, 1)[1]
    return text.strip() or type(error).__name__


async def connect(server: Server, ctx: NodeContext) -> Any:
    """An autocommit connection in UTC (timestamptz read back as `...Z`); transactions are
    explicit blocks."""
    pg = psycopg()
    conn = await pg.AsyncConnection.connect(server.dsn, autocommit=True,
                                            application_name=f"headrace {ctx.name}", **connect_options(server))
    await conn.execute("SET TIME ZONE 'UTC'")
    return conn


async def close_quietly(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):  # a lost connection closes anyway; nothing to tell
            await conn.close()


async def first_connect(link: Link, connect: Callable[[], Awaitable[None]]) -> None:
    """`open`: one attempt. A permanent problem fails the graph now; a transient one (the
    server not up yet) leaves the link reconnecting, and the first read or write goes on
    trying there, where a stop of the graph can end the wait (`open` cannot be cancelled)."""
    try:
        await connect()
    except NodeFailure:
        raise
    except Exception as error:
        if link.classify(error) is not None:
            link.state = CLOSED
            raise link.failure(error) from None
        link.state = RECONNECTING
        link.last_error = f"{type(error).__name__}: {first_line(error)}"
        return
    link.state = CONNECTED
