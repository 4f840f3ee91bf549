"""The spec of `lookup`: its table is a file this package reads (lookup_table.py), or a
PostgreSQL query (adapters/io/postgres/lookup_query.py, loaded only for a graph with one);
the node itself, and its part of fused loops, are the engine's (engine/lookup.py)."""

from typing import Final

from adapters.io.client import require
from adapters.io.files.lookup_table import make_lookup
from engine.findings import Finding
from engine.lookup import (
    CSV_TABLE,
    DEFAULT_MAX_ROWS,
    DEFAULT_REFRESH,
    JSONL_TABLE,
    KEEP,
    LOOKUP_CODE,
    MISSING_CHOICES,
    LookupParams,
    parse_lookup,
)
from engine.node import NodeContext, Transform
from engine.params import expect
from engine.spec import FORWARDED, STEP, TRANSFORM, FusionRole, NodeSpec, param, params_schema

NAME: Final[dict[str, object]] = {"type": "string", "minLength": 1}
POSITIVE_DURATION: Final[dict[str, object]] = {"type": "string", "pattern": "^0*[1-9][0-9]*(ms|s|m|h|d)$"}
MISSING_KEY: Final = "HR020"
BAD_COMBINATION: Final = "HR025"


def make_any_lookup(ctx: NodeContext) -> Transform:
    """A file table, or a query table where the PostgreSQL connector (psycopg) is installed."""
    if not expect(ctx.params, LookupParams).query:
        return make_lookup(ctx)
    require("psycopg", "postgres", ctx.name)
    from adapters.io.postgres.lookup_query import make_query_lookup
    return make_query_lookup(ctx)


def check_lookup(params: object) -> list[Finding]:
    """Where the table comes from: a file (`table`) or a query (`query` with `dsn`), not both."""
    lookup = expect(params, LookupParams)
    if lookup.table and lookup.query:
        return [Finding(BAD_COMBINATION, ("query",), "`table` and `query` exclude each other: the table is a file "
                        "or a query's rows", "keep one of them", at_key=True)]
    if not lookup.table and not lookup.query:
        return [Finding(MISSING_KEY, ("table",), "`lookup` needs a `table` (a CSV or JSON Lines file) or a "
                        "`query` (PostgreSQL, with `dsn`)", "add `table: graphs/data/networks.csv`", at_key=True)]
    if lookup.query and not lookup.dsn:
        return [Finding(MISSING_KEY, ("dsn",), "`query` needs a `dsn`: the PostgreSQL server it runs on",
                        "add `dsn: \"postgresql://reader:${secret:PG_PASSWORD}@db:5432/app\"`", at_key=True)]
    if lookup.query and lookup.format:
        return [Finding(BAD_COMBINATION, ("format",), "`format` applies only to a `table` file",
                        "remove `format`", at_key=True)]
    # A `refresh` spelled out at its default is the same as none (schema defaults are harmless).
    for name, value in (("dsn", lookup.dsn != ""), ("refresh", lookup.refresh != DEFAULT_REFRESH)):
        if value and not lookup.query:
            return [Finding(BAD_COMBINATION, (name,), f"`{name}` applies only to a `query`",
                            f"remove `{name}`, or give a `query` instead of `table`", at_key=True)]
    return []

LOOKUP: Final = NodeSpec(
    name="lookup",
    kind=TRANSFORM,
    summary="Enriches each event with the fields of the row its key picks in a reference table (a CSV or "
            "JSON Lines file, reloaded when the file changes: an event sees the old or the new table, "
            "never a mix). Keys compare as text (a whole number as its digits); the table's fields "
            "replace event fields of the same name. Memory: about 200 bytes per row plus about 60 "
            "bytes and the text per value (a row of a short key and two short text values: about 400 bytes, "
            "so 1,000,000 rows take about 400 MB; measured by tests/test_lookup.py). Where the PostgreSQL "
            "connector is installed the table can instead be the rows of a `query`, run again every "
            "`refresh` (see [Connectors](connectors.md#lookup-tables-from-a-query)).",
    params=params_schema({
        "table": param(NAME, "The table file, relative to the working directory (as `file.read`'s path). "
                       "CSV has a header row and its values stay text; JSON Lines keeps JSON's types. Checked for "
                       "changes at most once a second and read again in the background: replace it by renaming "
                       "a complete file over it; a reload that fails keeps the previous table and logs one line. "
                       "Give `table` or `query`, not both.",
                       "graphs/data/networks.csv"),
        "query": param(NAME, "Instead of `table`: a PostgreSQL SELECT whose rows are the table (the key "
                       "column(s) and the value columns, named as `key` and `fields` name them). Values map as "
                       "`postgres.read` maps them (numeric to numbers, timestamps to RFC 3339 text, json to "
                       "objects). Key columns must be text or whole numbers (integer types, or numeric without "
                       "a fraction): a number matches the event's whole number or its digits as text, as in "
                       "file tables; cast others (`id::text`). Runs read-only; loaded before the graph starts "
                       "(a failure stops it, naming the query and host:port/db) and again every `refresh`.",
                       "SELECT network, owner, country FROM networks"),
        "dsn": param(NAME, "With `query`: the PostgreSQL server, as `postgres.read`'s `dsn` (libpq string or "
                     "URL). Only its password is masked wherever the graph is shown.",
                     "postgresql://reader:${secret:PG_PASSWORD}@db.internal:5432/app"),
        "refresh": param(POSITIVE_DURATION, "With `query`: how often it runs again, in the background while "
                         "events arrive; the new rows replace the table at once (an event sees the old or the new "
                         "table). A refresh that fails (server down, query error, a duplicate key) keeps the "
                         "previous table, logs one line (then one a minute at most) and is tried again at the "
                         "next interval.", "30s", default=DEFAULT_REFRESH),
        "format": param({"enum": [CSV_TABLE, JSONL_TABLE]},
                        "How the table is encoded. Omitted: CSV for a `.csv` file, JSON Lines otherwise.",
                        CSV_TABLE),
        "key": param({"anyOf": [NAME, {"type": "array", "minItems": 1, "items": NAME}]},
                     "The field or fields that pick a row: the same names in the event and the table.",
                     "network"),
        "fields": param({"anyOf": [{"type": "array", "items": NAME},
                                   {"type": "object", "additionalProperties": NAME}]},
                        "The columns to add, as a list, or a mapping of column -> the field it becomes. "
                        "Omitted: every column but the key columns.",
                        {"owner": "network_owner", "country": "country"}),
        "on_missing": param({"enum": list(MISSING_CHOICES)},
                            "An event whose key finds no row: `keep` it unchanged, `drop` it, or `error` "
                            "(a failed event for `on_error`).", "drop", default=KEEP),
        "max_rows": param({"type": "integer", "minimum": 1},
                          "A table with more rows cannot be loaded (the graph does not start; a reload "
                          "keeps the previous table).", 50000, default=DEFAULT_MAX_ROWS),
    }, required=("key",)),
    factory=make_any_lookup,
    parse=parse_lookup,
    checks=check_lookup,
    secrets=("dsn",),
    # The event it received (no row, `keep`), or a new one; fused on an event nobody else
    # holds, that event with the row's fields set.
    fusion=FusionRole(STEP, FORWARDED, LOOKUP_CODE),
    example="type: lookup\nfrom: requests\nwith:\n  table: graphs/data/networks.csv\n  key: network\n"
            "  fields: [owner, country]\n  on_missing: keep",
)
