"""PostgreSQL: `postgres.read` and `postgres.write` (docs/connectors.md). psycopg 3."""

from engine.spec import NodeSpec

SPECS: tuple[NodeSpec, ...] = ()  # filled in by the connector's specs module
