"""Redis Streams: `redis.read` and `redis.write` (docs/connectors.md). redis-py."""

from engine.spec import NodeSpec

SPECS: tuple[NodeSpec, ...] = ()  # filled in by the connector's specs module
