"""Specs of `postgres.read` and `postgres.write` (docs/connectors.md, "PostgreSQL"). psycopg
loads only when a graph runs one of them."""

from typing import Final

from adapters.io.client import require
from adapters.io.postgres.params import (
    CONNECT_TIMEOUT,
    INSERT,
    POLL_INTERVAL,
    READ_BATCH,
    UPSERT,
    WRITE_BATCH,
    parse_postgres_read,
    parse_postgres_write,
)
from engine.node import AsyncSink, AsyncSource, NodeContext
from engine.spec import FIELD_LIST, FRESH, SINK, SOURCE, NodeSpec, param, params_schema

SECRETS: Final = ("dsn", "password")
NAME: Final[dict[str, object]] = {"type": "string", "minLength": 1}
NAMES: Final[dict[str, object]] = {"anyOf": [NAME, {**FIELD_LIST, "minItems": 1}]}
POSITIVE_DURATION: Final[dict[str, object]] = {"type": "string", "pattern": "^0*[1-9][0-9]*(ms|s|m|h|d)$"}


def make_postgres_read(ctx: NodeContext) -> AsyncSource:
    require("psycopg", "postgres", ctx.name)
    from adapters.io.postgres.read import PostgresRead
    return PostgresRead(ctx)


def make_postgres_write(ctx: NodeContext) -> AsyncSink:
    require("psycopg", "postgres", ctx.name)
    from adapters.io.postgres.write import PostgresWrite
    return PostgresWrite(ctx)


def server_params() -> dict[str, dict[str, object]]:
    """The connection parameters both node types take."""
    return {
        "dsn": param(NAME, "libpq connection string or URL: `postgresql://user:password@host:5432/db` or "
                     "`host=db dbname=app user=etl`; libpq's options (sslmode, sslrootcert, "
                     "target_session_attrs...) work. Only its password is masked wherever the graph is shown.",
                     "postgresql://etl:${PG_PASSWORD}@db.internal:5432/shop"),
        "password": param({"type": "string"}, "Password, instead of the one in `dsn`.", "${PG_PASSWORD}"),
        "connect_timeout": param(POSITIVE_DURATION, "Limit for one connection attempt (whole seconds).", "5s",
                                 default=CONNECT_TIMEOUT),
        "tls": param({
            "type": "object", "additionalProperties": False,
            "properties": {
                "ca_file": {"type": "string", "description": "PEM file of the CAs to trust (libpq sslrootcert)."},
                "cert_file": {"type": "string", "description": "PEM client certificate (libpq sslcert)."},
                "key_file": {"type": "string", "description": "Key of `cert_file` (libpq sslkey)."},
                "insecure_skip_verify": {"type": "boolean",
                                         "description": "Encrypt but accept any certificate and host name "
                                                        "(sslmode=require): tests only."},
            }},
            "TLS: sets sslmode=verify-full (the chain and the host name are checked), or require with "
            "`insecure_skip_verify`; overrides the ssl options of `dsn`.", {"ca_file": "certs/ca.pem"}),
    }


POSTGRES_WRITE: Final = NodeSpec(
    name="postgres.write",
    kind=SINK,
    since=2,  # introduced with format 2
    summary="Writes events as rows of a table, `batch_size` per transaction: `insert` through COPY, "
            "`upsert` through INSERT ... ON CONFLICT (key) DO UPDATE. A row the database refuses (a "
            "constraint, a bad value) goes to `on_error` with the database's message and the rest "
            "commits; a lost connection reconnects and writes again (at-least-once). "
            "See [Connectors](connectors.md#postgresql).",
    params=params_schema({
        **server_params(),
        "table": param(NAME, "The table, `name` or `schema.name`, taken literally (case-sensitive, no quoting).",
                       "orders"),
        "mode": param({"enum": [INSERT, UPSERT]},
                      "`insert` (COPY); `upsert`: a row whose `key` exists is updated.", UPSERT, default=INSERT),
        "key": param(NAMES, "The conflict columns of `upsert`: a unique index or constraint of the table.",
                     ["order_id"]),
        "columns": param(NAMES, "Columns to fill, from the event fields of the same names (a missing field "
                         "is NULL; other fields are left out). Default: each event's own fields, so the "
                         "table's defaults fill the rest.", ["order_id", "total", "updated_at"]),
        "batch_size": param({"type": "integer", "minimum": 1, "maximum": 1000000},
                            "Most rows per transaction.", 1000, default=WRITE_BATCH),
    }, required=("dsn", "table")),
    factory=make_postgres_write,
    parse=parse_postgres_write,
    secrets=SECRETS,
    example="type: postgres.write\nfrom: totals\nwith:\n  dsn: \"${PG_DSN:-postgresql://etl@db:5432/shop}\"\n"
            "  table: order_totals\n  mode: upsert\n  key: [customer]",
)

POSTGRES_READ: Final = NodeSpec(
    name="postgres.read",
    kind=SOURCE,
    since=2,  # introduced with format 2, whose `edge: {durable: true}` makes its delivery at-least-once
    summary="Polls a query for new rows: `%(cursor)s` is bound to the `cursor.field` value of the last row "
            "emitted, which is also the resumable position saved with durable edges; at most `batch_size` "
            "rows per read (server-side cursor). Values map to JSON (numeric to numbers, timestamps to "
            "RFC 3339 text, json/jsonb to objects, bytea to base64). See [Connectors](connectors.md#postgresql).",
    params=params_schema({
        **server_params(),
        "query": param(NAME, "SELECT with `%(cursor)s`, ordered by the cursor column ascending.",
                       "SELECT * FROM orders WHERE id > %(cursor)s ORDER BY id LIMIT 1000"),
        "cursor": param({
            "type": "object", "additionalProperties": False, "required": ["field", "start"],
            "properties": {
                "field": {"type": "string", "minLength": 1,
                          "description": "The column whose last value is bound to `%(cursor)s`."},
                "start": {"type": ["integer", "number", "string"],
                          "description": "The value bound before any row was read (a number, or text "
                                         "such as a timestamp)."},
            }},
            "Where the query continues from.", {"field": "id", "start": 0}),
        "poll_interval": param(POSITIVE_DURATION, "Wait after a query returned no rows.", "5s",
                               default=POLL_INTERVAL),
        "batch_size": param({"type": "integer", "minimum": 1, "maximum": 1000000},
                            "Most rows taken per read; the query runs again for the next ones.", 1000,
                            default=READ_BATCH),
    }, required=("dsn", "query", "cursor")),
    factory=make_postgres_read,
    parse=parse_postgres_read,
    secrets=SECRETS,
    output=FRESH,  # each row is a new dict
    example="type: postgres.read\nwith:\n  dsn: \"${PG_DSN:-postgresql://reader@db:5432/shop}\"\n"
            "  query: \"SELECT * FROM orders WHERE id > %(cursor)s ORDER BY id LIMIT 1000\"\n"
            "  cursor: {field: id, start: 0}\n  poll_interval: 2s",
)

SPECS: Final = (POSTGRES_READ, POSTGRES_WRITE)
