"""PostgreSQL: `postgres.read` and `postgres.write` (docs/connectors.md, "PostgreSQL"), on
psycopg 3, which loads only when a graph runs one of them."""

from adapters.io.postgres.specs import SPECS

__all__ = ["SPECS"]
